package arrowio

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// spineBatchRows is the most rows a SpineBatch holds.
const spineBatchRows = 4096

// SpineReader streams a training-set spine: rows naming an entity and a
// point in time, in any format Supported recognizes, plus any other columns,
// which pass through unchanged to the OutputWriter. It holds one batch of at
// most 4096 rows at a time. It is not safe for concurrent use.
type SpineReader struct {
	path   string
	sc     *arrow.Schema // every column of the spine, passed through
	ei, ai int           // the entity and time columns in sc
	src    spineSource
	last   *SpineBatch
	err    error // fatal, sticky
	closed bool
}

// spineSource yields a spine's rows as records of at most spineBatchRows
// rows, owned by the caller; io.EOF at the end.
type spineSource interface {
	next() (arrow.Record, error)
	close() error
}

// SpineBatch is a batch of spine rows, at most a few thousand. Entities,
// Times and Valid have one element per row and stay valid for good; the
// batch's passthrough columns are valid until the next call to the
// SpineReader's Next or Close, so write the batch before reading the next.
type SpineBatch struct {
	// Entities holds each row's entity as canonical text: a string as is,
	// an integer in decimal; "" for a null.
	Entities []string
	// Times holds each row's point in time in epoch ms.
	Times []int64
	// Valid is false for a row whose entity or time is null or unparseable:
	// the output gets nulls for its features.
	Valid []bool

	rec      arrow.Record // the passthrough columns
	released bool
}

// rows returns the number of rows in the batch.
func (b *SpineBatch) rows() int { return len(b.Entities) }

func (b *SpineBatch) release() {
	if !b.released {
		b.released = true
		b.rec.Release()
	}
}

// OpenSpine opens the spine file at path. entityColumn names the column of
// entity ids: a string or integer column (integers become their decimal
// text). atColumn names the column of lookup times: an Arrow timestamp of
// any unit and time zone, integer epoch ms, RFC 3339 strings, or a date. In
// CSV every column is text: the entity is taken as is and the time parsed as
// RFC 3339, "YYYY-MM-DD HH:MM:SS[.fff][±hh:mm]" or integer epoch ms. In
// NDJSON the columns are the keys of the objects, typed by a first pass over
// the file: bool, int64, float64 or utf8 (a key whose values mix types
// becomes utf8, holding each non-string value's JSON text).
//
// The error names the file and the column when a column is missing or of a
// type that cannot serve. Every column of the spine, these two included,
// passes through to the output. A spine row cannot be skipped without
// shifting the output, so a CSV row of the wrong width or an invalid NDJSON
// line is a fatal error naming its line; a null or unparseable entity or
// time only makes the row not Valid.
func OpenSpine(path, entityColumn, atColumn string) (*SpineReader, error) {
	return openSpine(path, entityColumn, atColumn, memory.DefaultAllocator)
}

func openSpine(path, entityColumn, atColumn string, mem memory.Allocator) (sr *SpineReader, err error) {
	f, c, err := detect(path)
	if err != nil {
		return nil, err
	}
	var (
		src spineSource
		sc  *arrow.Schema
	)
	switch f {
	case formatCSV:
		src, sc, err = openCSVSpine(path, c, mem)
	case formatNDJSON:
		src, sc, err = openNDJSONSpine(path, c, mem)
	default:
		var rs recordSource
		if rs, err = openRecords(path, f, mem, spineBatchRows); err == nil {
			src, sc = &arrowSpine{path: path, src: rs}, rs.schema()
		}
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			src.close()
		}
	}()
	r := &SpineReader{path: path, sc: sc, src: src}
	if r.ei, err = spineColumn(path, sc, entityColumn, entityAccepts, "an entity column (expected string or integer)"); err != nil {
		return nil, err
	}
	if r.ai, err = spineColumn(path, sc, atColumn, timeAccepts, "a spine time column (expected timestamp, integer epoch ms, RFC 3339 string or date)"); err != nil {
		return nil, err
	}
	return r, nil
}

func spineColumn(path string, sc *arrow.Schema, name string, ok func(arrow.DataType) bool, what string) (int, error) {
	idx := sc.FieldIndices(name)
	if len(idx) == 0 {
		names := make([]string, sc.NumFields())
		for i, f := range sc.Fields() {
			names[i] = f.Name
		}
		return 0, fmt.Errorf("%s: no column %s (columns: %s)", path, name, strings.Join(names, ", "))
	}
	if dt := sc.Field(idx[0]).Type; !ok(dt) {
		return 0, fmt.Errorf("%s: column %s has type %s, which cannot be %s", path, name, dt, what)
	}
	return idx[0], nil
}

func entityAccepts(dt arrow.DataType) bool {
	if d, ok := dt.(*arrow.DictionaryType); ok {
		dt = d.ValueType
	}
	return dt.ID() == arrow.NULL || isString(dt) || isInteger(dt)
}

func timeAccepts(dt arrow.DataType) bool {
	if d, ok := dt.(*arrow.DictionaryType); ok {
		dt = d.ValueType
	}
	switch dt.ID() {
	case arrow.NULL, arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64:
		return true
	}
	return isString(dt) || isInteger(dt)
}

// Next returns the next batch of rows; io.EOF at the end. It ends the
// passthrough columns of the batch it returned before.
func (r *SpineReader) Next() (b *SpineBatch, err error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.last != nil {
		r.last.release()
		r.last = nil
	}
	defer func() {
		if err != nil && err != io.EOF {
			r.err = err
		}
	}()
	rec, err := r.src.next()
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			rec.Release()
			b, err = nil, panicError(r.path, p)
		}
	}()
	n := int(rec.NumRows())
	b = &SpineBatch{Entities: make([]string, n), Times: make([]int64, n), Valid: make([]bool, n), rec: rec}
	entity := entityAt(rec.Column(r.ei))
	at := timeAt(rec.Column(r.ai))
	for i := 0; i < n; i++ {
		e, eok := entity(i)
		t, tok := at(i)
		b.Entities[i], b.Times[i], b.Valid[i] = e, t, eok && tok
	}
	r.last = b
	return b, nil
}

// Close releases the reader's memory, including the last batch's
// passthrough columns, and closes the file. Later calls do nothing.
func (r *SpineReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.last != nil {
		r.last.release()
		r.last = nil
	}
	if r.err == nil {
		r.err = fmt.Errorf("%s: spine reader is closed", r.path)
	}
	return r.src.close()
}

// entityAt returns the canonical text of a row's entity, and false for a
// null.
func entityAt(arr arrow.Array) func(int) (string, bool) {
	if d, ok := arr.(*array.Dictionary); ok {
		inner := entityAt(d.Dictionary())
		return func(i int) (string, bool) {
			if d.IsNull(i) {
				return "", false
			}
			return inner(d.GetValueIndex(i))
		}
	}
	if isString(arr.DataType()) {
		str := stringAt(arr)
		return func(i int) (string, bool) {
			if arr.IsNull(i) {
				return "", false
			}
			return strings.Clone(str(i)), true
		}
	}
	if isInteger(arr.DataType()) {
		num := intAt(arr)
		return func(i int) (string, bool) {
			if arr.IsNull(i) {
				return "", false
			}
			v, u, ok := num(i)
			if !ok {
				return strconv.FormatUint(u, 10), true
			}
			return strconv.FormatInt(v, 10), true
		}
	}
	return func(int) (string, bool) { return "", false }
}

// timeAt returns a row's time in epoch ms, and false for a null or a value
// that is not a time.
func timeAt(arr arrow.Array) func(int) (int64, bool) {
	var ms func(i int) (int64, bool)
	switch a := arr.(type) {
	case *array.Dictionary:
		inner := timeAt(a.Dictionary())
		return func(i int) (int64, bool) {
			if a.IsNull(i) {
				return 0, false
			}
			return inner(a.GetValueIndex(i))
		}
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		ms = func(i int) (int64, bool) { return unitToMillis(int64(a.Value(i)), unit) }
	case *array.Date32:
		ms = func(i int) (int64, bool) { return int64(a.Value(i)) * msPerDay, true }
	case *array.Date64:
		ms = func(i int) (int64, bool) { return int64(a.Value(i)), true }
	default:
		switch {
		case isInteger(arr.DataType()):
			num := intAt(arr)
			ms = func(i int) (int64, bool) {
				v, _, ok := num(i)
				return v, ok
			}
		case isString(arr.DataType()):
			str := stringAt(arr)
			ms = func(i int) (int64, bool) {
				v, reason := parseTextTime(strings.TrimSpace(str(i)))
				return v, reason == ""
			}
		default:
			return func(int) (int64, bool) { return 0, false }
		}
	}
	return func(i int) (int64, bool) {
		if arr.IsNull(i) {
			return 0, false
		}
		return ms(i)
	}
}

// arrowSpine cuts a Parquet or IPC file's records into spine batches.
type arrowSpine struct {
	path string
	src  recordSource
	cur  arrow.Record
	off  int64
}

func (s *arrowSpine) next() (rec arrow.Record, err error) {
	for s.cur == nil || s.off >= s.cur.NumRows() {
		if s.cur != nil {
			s.cur.Release()
			s.cur = nil
		}
		if s.cur, err = s.src.next(); err != nil {
			return nil, err
		}
		s.off = 0
	}
	end := min(s.off+spineBatchRows, s.cur.NumRows())
	if s.off == 0 && end == s.cur.NumRows() {
		rec = s.cur
		rec.Retain()
	} else {
		rec = s.cur.NewSlice(s.off, end)
	}
	s.off = end
	return rec, nil
}

func (s *arrowSpine) close() error {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
	return s.src.close()
}

// csvSpine reads a CSV spine with encoding/csv (see csvEvents for why):
// every column is utf8, an empty cell a null.
type csvSpine struct {
	path  string
	in    *textInput
	r     *csv.Reader
	sc    *arrow.Schema
	mem   memory.Allocator
	width int
	line  int // the line of the last record read
}

func openCSVSpine(path string, c codec, mem memory.Allocator) (*csvSpine, *arrow.Schema, error) {
	in, err := openText(path, c)
	if err != nil {
		return nil, nil, err
	}
	r, header, err := newCSVReader(path, in)
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	fields := make([]arrow.Field, len(header))
	for i, h := range header {
		fields[i] = arrow.Field{Name: h, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	sc := arrow.NewSchema(fields, nil)
	return &csvSpine{path: path, in: in, r: r, sc: sc, mem: mem, width: len(header)}, sc, nil
}

func (s *csvSpine) next() (arrow.Record, error) {
	bs := make([]*array.StringBuilder, s.width)
	for i := range bs {
		bs[i] = array.NewStringBuilder(s.mem)
		defer bs[i].Release()
	}
	n := 0
	for n < spineBatchRows {
		s.in.lines.start()
		rec, err := s.r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s:%d: invalid CSV: %w", s.path, pe.StartLine, pe.Err)
			}
			return nil, csvReadError(s.path, s.line, err)
		}
		line, _ := s.r.FieldPos(0)
		s.line = line
		if len(rec) != s.width {
			return nil, fmt.Errorf("%s:%d: row has %d cells, the header has %d", s.path, line, len(rec), s.width)
		}
		for i, cell := range rec {
			if cell == "" {
				bs[i].AppendNull()
			} else {
				bs[i].Append(cell)
			}
		}
		n++
	}
	if n == 0 {
		return nil, io.EOF
	}
	cols := make([]arrow.Array, s.width)
	for i, b := range bs {
		cols[i] = b.NewArray()
	}
	rec := array.NewRecord(s.sc, cols, int64(n))
	releaseAll(cols)
	return rec, nil
}

func (s *csvSpine) close() error { return s.in.Close() }

// The seen bits mark what kinds of JSON value a key of an NDJSON spine has
// held.
const (
	seenNull = 1 << iota
	seenBool
	seenInt
	seenFloat
	seenString
	seenOther // objects and arrays
)

// columnType is the Arrow type of an NDJSON spine column from the kinds
// of value it holds.
func columnType(seen int) arrow.DataType {
	switch seen &^ seenNull {
	case seenBool:
		return arrow.FixedWidthTypes.Boolean
	case seenInt:
		return arrow.PrimitiveTypes.Int64
	case seenFloat, seenInt | seenFloat:
		return arrow.PrimitiveTypes.Float64
	}
	return arrow.BinaryTypes.String
}

// jsonKind classifies one JSON value.
func jsonKind(raw []byte) int {
	switch raw[0] {
	case 'n':
		return seenNull
	case 't', 'f':
		return seenBool
	case '"':
		return seenString
	case '{', '[':
		return seenOther
	}
	for _, c := range raw {
		if c == '.' || c == 'e' || c == 'E' {
			return seenFloat
		}
	}
	if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
		return seenFloat
	}
	return seenInt
}

// parseObject calls fn with each key and raw value of the JSON object in
// line, in order.
func parseObject(line []byte, fn func(key string, raw []byte)) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("expected a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		fn(key, raw)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}

// ndjsonSpine reads an NDJSON spine whose schema a first pass inferred.
type ndjsonSpine struct {
	path string
	in   *textInput
	sc   *arrow.Schema
	pos  map[string]int
	mem  memory.Allocator
	line int64
	buf  []byte
}

func openNDJSONSpine(path string, c codec, mem memory.Allocator) (*ndjsonSpine, *arrow.Schema, error) {
	// First pass: the columns, in order of first appearance, and their
	// types.
	in, err := openText(path, c)
	if err != nil {
		return nil, nil, err
	}
	var (
		names []string
		seen  = map[string]int{}
		buf   []byte
		line  int64
	)
	for {
		l, err := readLine(in.r, &buf)
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			in.Close()
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if isBlank(l) {
			continue
		}
		err = parseObject(l, func(key string, raw []byte) {
			if _, ok := seen[key]; !ok {
				names = append(names, key)
			}
			seen[key] |= jsonKind(raw)
		})
		if err != nil {
			in.Close()
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
	in.Close()

	fields := make([]arrow.Field, len(names))
	pos := make(map[string]int, len(names))
	for i, name := range names {
		fields[i] = arrow.Field{Name: name, Type: columnType(seen[name]), Nullable: true}
		pos[name] = i
	}
	sc := arrow.NewSchema(fields, nil)
	if in, err = openText(path, c); err != nil {
		return nil, nil, err
	}
	return &ndjsonSpine{path: path, in: in, sc: sc, pos: pos, mem: mem}, sc, nil
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func (s *ndjsonSpine) next() (arrow.Record, error) {
	nf := s.sc.NumFields()
	bs := make([]array.Builder, nf)
	for i := range bs {
		bs[i] = array.NewBuilder(s.mem, s.sc.Field(i).Type)
		defer bs[i].Release()
	}
	row := make([][]byte, nf)
	n := 0
	for n < spineBatchRows {
		l, err := readLine(s.in.r, &s.buf)
		if err == io.EOF {
			break
		}
		s.line++
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", s.path, s.line, err)
		}
		if isBlank(l) {
			continue
		}
		clear(row)
		err = parseObject(l, func(key string, raw []byte) {
			if i, ok := s.pos[key]; ok {
				row[i] = raw
			}
		})
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", s.path, s.line, err)
		}
		for i, raw := range row {
			if err := appendJSON(bs[i], raw); err != nil {
				return nil, fmt.Errorf("%s:%d: key %s: %w", s.path, s.line, s.sc.Field(i).Name, err)
			}
		}
		n++
	}
	if n == 0 {
		return nil, io.EOF
	}
	cols := make([]arrow.Array, nf)
	for i, b := range bs {
		cols[i] = b.NewArray()
	}
	rec := array.NewRecord(s.sc, cols, int64(n))
	releaseAll(cols)
	return rec, nil
}

// appendJSON appends one raw JSON value (nil for a missing key) to a
// builder of the type columnType chose for its key.
func appendJSON(b array.Builder, raw []byte) error {
	if raw == nil || raw[0] == 'n' {
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.BooleanBuilder:
		b.Append(raw[0] == 't')
	case *array.Int64Builder:
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return err
		}
		b.Append(v)
	case *array.Float64Builder:
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil && !math.IsInf(v, 0) {
			return err
		}
		b.Append(v)
	case *array.StringBuilder:
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return err
			}
			b.Append(s)
		} else {
			b.Append(string(raw))
		}
	}
	return nil
}

func (s *ndjsonSpine) close() error { return s.in.Close() }
