package arrowio

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// This file checks Arrow's flatbuffer metadata (schemas, IPC messages, IPC
// file footers) before arrow/go reads it. arrow/go v15 trusts that metadata:
// it sizes Go slices from vector lengths (make([]arrow.Field, n)) and
// recurses through nested fields without a depth limit, so one flipped byte
// can make it ask for terabytes or loop forever, and the Go runtime dies of
// "out of memory" or a stack overflow, which no recover catches. The checks
// here make sure every table, vector and string lies inside the buffer and
// that fields nest at most maxNesting deep; arrow's own reading then fails
// (or panics, which catch turns into an error) instead of crashing.

// maxNesting bounds how deep fields may nest, as Arrow C++ does (64).
const maxNesting = 64

var errFlatbuf = errors.New("corrupt Arrow metadata")

// fbuf is a flatbuffer whose every read is bounds-checked.
type fbuf []byte

func (b fbuf) u16(at int) (int, error) {
	if at < 0 || at+2 > len(b) {
		return 0, errFlatbuf
	}
	return int(binary.LittleEndian.Uint16(b[at:])), nil
}

func (b fbuf) u32(at int) (int, error) {
	if at < 0 || at+4 > len(b) {
		return 0, errFlatbuf
	}
	return int(binary.LittleEndian.Uint32(b[at:])), nil
}

func (b fbuf) i64(at int) (int64, error) {
	if at < 0 || at+8 > len(b) {
		return 0, errFlatbuf
	}
	return int64(binary.LittleEndian.Uint64(b[at:])), nil
}

// fbTable is a flatbuffer table whose vtable has been checked.
type fbTable struct {
	b      fbuf
	pos    int
	vt     int // the vtable's position
	vtSize int
}

// root returns the buffer's root table.
func (b fbuf) root() (fbTable, error) {
	off, err := b.u32(0)
	if err != nil {
		return fbTable{}, err
	}
	return b.table(off)
}

func (b fbuf) table(pos int) (fbTable, error) {
	so, err := b.u32(pos)
	if err != nil {
		return fbTable{}, err
	}
	vt := pos - int(int32(uint32(so)))
	vtSize, err := b.u16(vt)
	if err != nil || vtSize < 4 || vt+vtSize > len(b) {
		return fbTable{}, errFlatbuf
	}
	tSize, err := b.u16(vt + 2)
	if err != nil || pos+tSize > len(b) {
		return fbTable{}, errFlatbuf
	}
	return fbTable{b: b, pos: pos, vt: vt, vtSize: vtSize}, nil
}

// field returns the position of a slot's value, or 0 when it is absent.
func (t fbTable) field(slot int) (int, error) {
	at := 4 + 2*slot
	if at+2 > t.vtSize {
		return 0, nil
	}
	off, err := t.b.u16(t.vt + at)
	if err != nil || off == 0 {
		return 0, err
	}
	return t.pos + off, nil
}

// ref returns the position an offset slot points to, or 0 when absent.
func (t fbTable) ref(slot int) (int, error) {
	at, err := t.field(slot)
	if at == 0 || err != nil {
		return 0, err
	}
	off, err := t.b.u32(at)
	if err != nil {
		return 0, err
	}
	return at + off, nil
}

// sub returns the table of a slot; ok is false when it is absent.
func (t fbTable) sub(slot int) (fbTable, bool, error) {
	at, err := t.ref(slot)
	if at == 0 || err != nil {
		return fbTable{}, false, err
	}
	sub, err := t.b.table(at)
	return sub, err == nil, err
}

// vector checks that a vector slot's elements lie inside the buffer and
// returns where they start and how many there are.
func (t fbTable) vector(slot, elemSize int) (start, n int, err error) {
	at, err := t.ref(slot)
	if at == 0 || err != nil {
		return 0, 0, err
	}
	n, err = t.b.u32(at)
	if err != nil {
		return 0, 0, err
	}
	start = at + 4
	if n > (len(t.b)-start)/elemSize {
		return 0, 0, errFlatbuf
	}
	return start, n, nil
}

// tables returns the tables of a vector-of-tables slot.
func (t fbTable) tables(slot int) ([]fbTable, error) {
	start, n, err := t.vector(slot, 4)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]fbTable, n)
	for i := range out {
		at := start + 4*i
		off, err := t.b.u32(at)
		if err != nil {
			return nil, err
		}
		if out[i], err = t.b.table(at + off); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t fbTable) byteSlot(slot int) (int, error) {
	at, err := t.field(slot)
	if at == 0 || err != nil {
		return 0, err
	}
	if at >= len(t.b) {
		return 0, errFlatbuf
	}
	return int(t.b[at]), nil
}

func (t fbTable) i64Slot(slot int) (int64, error) {
	at, err := t.field(slot)
	if at == 0 || err != nil {
		return 0, err
	}
	return t.b.i64(at)
}

// checkKeyValues checks a custom_metadata slot: a vector of KeyValue
// tables, each two strings.
func checkKeyValues(t fbTable, slot int) error {
	kvs, err := t.tables(slot)
	for _, kv := range kvs {
		if err != nil {
			break
		}
		if _, _, err = kv.vector(0, 1); err == nil {
			_, _, err = kv.vector(1, 1)
		}
	}
	return err
}

// checkSchema checks a Schema table (Schema.fbs): fields, custom_metadata,
// features.
func checkSchema(s fbTable) error {
	fields, err := s.tables(1)
	if err != nil {
		return err
	}
	// Offsets may point back to a table already visited: bound the
	// fields visited by what the buffer could hold.
	budget := len(s.b)/8 + 1
	for _, f := range fields {
		if err := checkField(f, 1, &budget); err != nil {
			return err
		}
	}
	if err := checkKeyValues(s, 2); err != nil {
		return err
	}
	_, _, err = s.vector(3, 8)
	return err
}

// Arrow's Type union tags that hold vectors or strings.
const (
	typeTimestamp = 10
	typeUnion     = 14
)

// checkField checks a Field table: name, type, dictionary, children,
// custom_metadata.
func checkField(f fbTable, depth int, budget *int) error {
	if depth > maxNesting {
		return fmt.Errorf("%w: fields nest deeper than %d", errFlatbuf, maxNesting)
	}
	if *budget--; *budget < 0 {
		return fmt.Errorf("%w: cyclic fields", errFlatbuf)
	}
	if _, _, err := f.vector(0, 1); err != nil {
		return err
	}
	tag, err := f.byteSlot(2)
	if err != nil {
		return err
	}
	typ, ok, err := f.sub(3)
	if err != nil {
		return err
	}
	if ok {
		switch tag {
		case typeTimestamp:
			_, _, err = typ.vector(1, 1)
		case typeUnion:
			_, _, err = typ.vector(1, 4)
		}
		if err != nil {
			return err
		}
	}
	if dict, ok, err := f.sub(4); err != nil {
		return err
	} else if ok {
		if _, _, err := dict.sub(1); err != nil {
			return err
		}
	}
	children, err := f.tables(5)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := checkField(c, depth+1, budget); err != nil {
			return err
		}
	}
	return checkKeyValues(f, 6)
}

// Arrow's MessageHeader union tags.
const (
	headerSchema          = 1
	headerDictionaryBatch = 2
	headerRecordBatch     = 3
)

// checkMessage checks the metadata of an IPC message (Message.fbs) and
// returns its body length.
func checkMessage(meta []byte) (bodyLen int64, err error) {
	m, err := fbuf(meta).root()
	if err != nil {
		return 0, err
	}
	tag, err := m.byteSlot(1)
	if err != nil {
		return 0, err
	}
	h, ok, err := m.sub(2)
	if err != nil {
		return 0, err
	}
	if ok {
		switch tag {
		case headerSchema:
			err = checkSchema(h)
		case headerDictionaryBatch:
			var rb fbTable
			if rb, ok, err = h.sub(1); ok {
				err = checkRecordBatch(rb)
			}
		case headerRecordBatch:
			err = checkRecordBatch(h)
		}
		if err != nil {
			return 0, err
		}
	}
	if err := checkKeyValues(m, 4); err != nil {
		return 0, err
	}
	if bodyLen, err = m.i64Slot(3); err == nil && bodyLen < 0 {
		err = errFlatbuf
	}
	return bodyLen, err
}

// checkRecordBatch checks a RecordBatch table: nodes and buffers (structs
// of 16 bytes), compression, variadic buffer counts.
func checkRecordBatch(rb fbTable) error {
	if _, _, err := rb.vector(1, 16); err != nil {
		return err
	}
	_, nbuf, err := rb.vector(2, 16)
	if err != nil {
		return err
	}
	if _, _, err := rb.sub(3); err != nil {
		return err
	}
	start, n, err := rb.vector(4, 8)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		// Each count sizes a slice in arrow/go; none can exceed the
		// buffers the batch has.
		c, err := rb.b.i64(start + 8*i)
		if err != nil || c < 0 || c > int64(nbuf) {
			return errFlatbuf
		}
	}
	return nil
}

// checkFooter checks the footer of an IPC file (File.fbs): its schema and
// that every block it lists lies inside a file of size bytes.
func checkFooter(footer []byte, size int64) error {
	f, err := fbuf(footer).root()
	if err != nil {
		return err
	}
	s, ok, err := f.sub(1)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no schema", errFlatbuf)
	}
	if err := checkSchema(s); err != nil {
		return err
	}
	for _, slot := range []int{2, 3} {
		start, n, err := f.vector(slot, 24)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			at := start + 24*i
			off, err1 := f.b.i64(at)
			meta, err2 := f.b.u32(at + 8)
			body, err3 := f.b.i64(at + 16)
			if err := errors.Join(err1, err2, err3); err != nil {
				return err
			}
			if off < 0 || body < 0 || int64(meta) > size || off > size-int64(meta) || body > size-off-int64(meta) {
				return fmt.Errorf("%w: a record batch lies outside the file", errFlatbuf)
			}
		}
	}
	return checkKeyValues(f, 4)
}

// checkStoredSchema checks the Arrow schema that Arrow writers store in a
// Parquet file's key-value metadata under ARROW:schema: base64 of an IPC
// schema message, as pqarrow decodes it.
func checkStoredSchema(serialized string) error {
	var decoded []byte
	var err error
	if len(serialized)%4 == 0 {
		decoded, err = base64.StdEncoding.DecodeString(serialized)
	}
	if len(decoded) == 0 || err != nil {
		if decoded, err = base64.RawStdEncoding.DecodeString(serialized); err != nil {
			return nil // pqarrow will fail on it too, cleanly
		}
	}
	b := fbuf(decoded)
	n, err := b.u32(0)
	if err != nil {
		return err
	}
	at := 4
	if uint32(n) == 0xFFFFFFFF { // continuation marker, then the length
		if n, err = b.u32(4); err != nil {
			return err
		}
		at = 8
	}
	if n > len(decoded)-at {
		return errFlatbuf
	}
	bodyLen, err := checkMessage(decoded[at : at+n])
	if err == nil && bodyLen > int64(len(decoded)-at-n) {
		err = fmt.Errorf("%w: a body of %d bytes", errFlatbuf, bodyLen)
	}
	return err
}
