package arrowio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/metadata"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// recordSource yields the record batches of a Parquet or Arrow IPC file one
// at a time: a Parquet row group (in batches of at most batchRows rows), or
// one IPC record batch.
type recordSource interface {
	// schema is the file's schema.
	schema() *arrow.Schema
	// next returns the next record, which the caller owns and must
	// release; io.EOF at the end. Other errors name the file and the row
	// group or record batch.
	next() (arrow.Record, error)
	// progress returns the bytes of the file read so far and its size.
	progress() (done, total int64)
	close() error
}

// openRecords opens a Parquet or Arrow IPC file. batchRows bounds the rows of
// a Parquet record; IPC records come as they were written.
func openRecords(path string, f format, mem memory.Allocator, batchRows int64) (src recordSource, err error) {
	cf, err := openCounting(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cf.Close()
		}
	}()
	defer catch(&err, path)
	mem = boundAllocator(mem, cf.size)
	switch f {
	case formatParquet:
		return openParquet(path, cf, mem, batchRows)
	case formatIPCFile:
		return openIPCFile(path, cf, mem)
	case formatIPCStream:
		return openIPCStream(path, cf, mem)
	}
	return nil, fmt.Errorf("%s: %s is not a columnar format", path, f)
}

// parquetSource reads a Parquet file with pqarrow, one row group at a time
// (FileReader.GetRecordReader for that row group), so that at most one row
// group's column chunks are in memory and errors can name the row group.
type parquetSource struct {
	path   string
	file   *countingFile
	rdr    *file.Reader
	fr     *pqarrow.FileReader
	sc     *arrow.Schema
	leaves []int // leaf columns to read; nil reads all
	rg     int   // the row group being read
	rr     pqarrow.RecordReader
	rgRows int64 // rows read from row group rg
}

func openParquet(path string, cf *countingFile, mem memory.Allocator, batchRows int64) (*parquetSource, error) {
	rdr, err := file.NewParquetReader(cf, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid Parquet file: %w", path, err)
	}
	if stored := rdr.MetaData().KeyValueMetadata().FindValue("ARROW:schema"); stored != nil {
		if err := checkStoredSchema(*stored); err != nil {
			rdr.Close()
			return nil, fmt.Errorf("%s: not a valid Parquet file: its ARROW:schema metadata: %w", path, err)
		}
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: batchRows}, mem)
	if err != nil {
		rdr.Close()
		return nil, fmt.Errorf("%s: reading Parquet schema: %w", path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		rdr.Close()
		return nil, fmt.Errorf("%s: reading Parquet schema: %w", path, err)
	}
	if err := checkRowCounts(rdr.MetaData()); err != nil {
		rdr.Close()
		return nil, fmt.Errorf("%s: not a valid Parquet file: %w", path, err)
	}
	return &parquetSource{path: path, file: cf, rdr: rdr, fr: fr, sc: sc, rg: -1}, nil
}

func (p *parquetSource) schema() *arrow.Schema { return p.sc }

// selectFields restricts reading to the given top-level fields (indices in
// schema()); records then hold only those (find them by name).
func (p *parquetSource) selectFields(fields []int) {
	var leaves []int
	var walk func(sf *pqarrow.SchemaField)
	walk = func(sf *pqarrow.SchemaField) {
		if len(sf.Children) == 0 {
			leaves = append(leaves, sf.ColIndex)
			return
		}
		for i := range sf.Children {
			walk(&sf.Children[i])
		}
	}
	for _, i := range fields {
		walk(&p.fr.Manifest.Fields[i])
	}
	if len(leaves) == 0 {
		// No field wanted: read the first leaf anyway, to count rows.
		leaves = []int{0}
	}
	p.leaves = leaves
}

func (p *parquetSource) next() (rec arrow.Record, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(fmt.Sprintf("%s: row group %d", p.path, p.rg), r)
		}
	}()
	for {
		if p.rr == nil {
			if p.rg+1 >= p.rdr.NumRowGroups() {
				return nil, io.EOF
			}
			p.rg++
			if err := p.checkRowGroup(); err != nil {
				return nil, fmt.Errorf("%s: row group %d: %w", p.path, p.rg, err)
			}
			rr, err := p.fr.GetRecordReader(context.Background(), p.leaves, []int{p.rg})
			if err != nil {
				return nil, fmt.Errorf("%s: row group %d: %w", p.path, p.rg, err)
			}
			p.rr = rr
		}
		if p.rr.Next() {
			rec := p.rr.Record()
			rec.Retain()
			p.rgRows += rec.NumRows()
			return rec, nil
		}
		// pqarrow's record reader reports the end of the data as io.EOF.
		err := p.rr.Err()
		p.rr.Release()
		p.rr = nil
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: row group %d: %w", p.path, p.rg, err)
		}
		// A corrupt file whose footer claims other rows than its pages
		// hold must not pass for a whole one.
		if want := p.rdr.MetaData().RowGroup(p.rg).NumRows(); p.rgRows != want {
			return nil, fmt.Errorf("%s: row group %d: not a valid Parquet file: the footer says %d rows, the pages hold %d: a corrupt or truncated file",
				p.path, p.rg, want, p.rgRows)
		}
		p.rgRows = 0
	}
}

// checkRowCounts checks that the file's row count is the sum of its row
// groups'.
func checkRowCounts(md *metadata.FileMetaData) error {
	var sum int64
	for i := range md.RowGroups {
		n := md.RowGroup(i).NumRows()
		if n < 0 || sum > math.MaxInt64-n {
			return fmt.Errorf("corrupt footer: row group %d has %d rows", i, n)
		}
		sum += n
	}
	if sum != md.NumRows {
		return fmt.Errorf("the footer says %d rows, its row groups %d: a corrupt or truncated file", md.NumRows, sum)
	}
	return nil
}

// checkRowGroup checks the metadata of the row group about to be read.
// pqarrow opens a record reader's column readers on goroutines of its own,
// where a panic on corrupt metadata (a nil column chunk, a chunk length
// beyond the file) would kill the process, out of reach of catch; so what
// they will look at is looked at here first.
func (p *parquetSource) checkRowGroup() error {
	md := p.rdr.MetaData().RowGroup(p.rg)
	if md.NumRows() < 0 {
		return fmt.Errorf("corrupt metadata: %d rows", md.NumRows())
	}
	leaves := p.leaves
	if leaves == nil {
		leaves = make([]int, p.rdr.MetaData().Schema.NumColumns())
		for i := range leaves {
			leaves[i] = i
		}
	}
	if md.NumColumns() != p.rdr.MetaData().Schema.NumColumns() {
		return fmt.Errorf("corrupt metadata: %d column chunks for %d columns", md.NumColumns(), p.rdr.MetaData().Schema.NumColumns())
	}
	for _, j := range leaves {
		cc, err := md.ColumnChunk(j)
		if err != nil {
			return fmt.Errorf("column %d: %w", j, err)
		}
		start := cc.DataPageOffset()
		if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && start > cc.DictionaryPageOffset() {
			start = cc.DictionaryPageOffset()
		}
		n := cc.TotalCompressedSize()
		if start < 0 || n < 0 || start > p.file.size || n > p.file.size-start || cc.NumValues() < 0 {
			return fmt.Errorf("column %s: corrupt metadata: %d bytes at offset %d in a file of %d bytes",
				cc.PathInSchema(), n, start, p.file.size)
		}
	}
	return nil
}

func (p *parquetSource) progress() (int64, int64) { return p.file.progress() }

func (p *parquetSource) close() error {
	if p.rr != nil {
		p.rr.Release()
		p.rr = nil
	}
	return p.rdr.Close() // closes the file too
}

// ipcFileSource reads an Arrow IPC file (.arrow, Feather V2) one record
// batch at a time with ipc.FileReader.RecordAt.
type ipcFileSource struct {
	path string
	file *countingFile
	fr   *ipc.FileReader
	i    int
}

func openIPCFile(path string, cf *countingFile, mem memory.Allocator) (*ipcFileSource, error) {
	var magic [4]byte
	if n, _ := cf.f.ReadAt(magic[:], 0); n == 4 && string(magic[:]) == "FEA1" {
		return nil, fmt.Errorf("%s: a Feather V1 file; only Feather V2 (the Arrow IPC file format) is supported", path)
	}
	if err := checkIPCFile(cf); err != nil {
		return nil, fmt.Errorf("%s: not a valid Arrow IPC file: %w", path, err)
	}
	fr, err := ipc.NewFileReader(cf, ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid Arrow IPC file: %w", path, err)
	}
	return &ipcFileSource{path: path, file: cf, fr: fr}, nil
}

func (s *ipcFileSource) schema() *arrow.Schema { return s.fr.Schema() }

func (s *ipcFileSource) next() (rec arrow.Record, err error) {
	if s.i >= s.fr.NumRecords() {
		return nil, io.EOF
	}
	defer catch(&err, fmt.Sprintf("%s: record batch %d", s.path, s.i))
	rec, err = s.fr.RecordAt(s.i)
	if err != nil {
		return nil, fmt.Errorf("%s: record batch %d: %w", s.path, s.i, err)
	}
	s.i++
	return rec, nil
}

func (s *ipcFileSource) progress() (int64, int64) { return s.file.progress() }

func (s *ipcFileSource) close() error {
	s.fr.Close()
	return s.file.Close()
}

// ipcStreamSource reads an Arrow IPC stream (.arrows) with ipc.Reader.
type ipcStreamSource struct {
	path string
	file *countingFile
	rd   *ipc.Reader
	n    int
}

func openIPCStream(path string, cf *countingFile, mem memory.Allocator) (*ipcStreamSource, error) {
	msgs := &streamMessages{file: cf, mem: mem}
	msgs.refs.Store(1)
	rd, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid Arrow IPC stream: %w", path, err)
	}
	return &ipcStreamSource{path: path, file: cf, rd: rd}, nil
}

func (s *ipcStreamSource) schema() *arrow.Schema { return s.rd.Schema() }

func (s *ipcStreamSource) next() (rec arrow.Record, err error) {
	defer catch(&err, fmt.Sprintf("%s: record batch %d", s.path, s.n))
	if s.rd.Next() {
		s.n++
		rec := s.rd.Record()
		rec.Retain()
		return rec, nil
	}
	if err := s.rd.Err(); err != nil {
		return nil, fmt.Errorf("%s: record batch %d: %w", s.path, s.n, err)
	}
	return nil, io.EOF
}

func (s *ipcStreamSource) progress() (int64, int64) { return s.file.progress() }

func (s *ipcStreamSource) close() error {
	s.rd.Release()
	return s.file.Close()
}

// checkIPCFile checks an IPC file's magic numbers and footer before
// ipc.FileReader trusts them (see verify.go).
func checkIPCFile(cf *countingFile) error {
	const magic = "ARROW1"
	size := cf.size
	if size < 2*int64(len(magic))+4 {
		return errors.New("file too small")
	}
	var tail [10]byte
	if _, err := cf.f.ReadAt(tail[:], size-10); err != nil {
		return err
	}
	var head [6]byte
	if _, err := cf.f.ReadAt(head[:], 0); err != nil {
		return err
	}
	if string(head[:]) != magic || string(tail[4:]) != magic {
		return errors.New("no ARROW1 magic number (not an Arrow file, or truncated)")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n <= 0 || n > size-10-8 {
		return fmt.Errorf("footer of %d bytes in a file of %d bytes", n, size)
	}
	footer := make([]byte, n)
	if _, err := cf.f.ReadAt(footer, size-10-n); err != nil {
		return err
	}
	return checkFooter(footer, size)
}

// streamMessages reads the messages of an IPC stream for ipc.Reader, in
// place of ipc.NewMessageReader, for two reasons:
//
//   - arrow/go v15's message reader wraps io.EOF with %w when a read of a
//     message's length, metadata or body hits the end of the input, and
//     ipc.Reader takes any error that Is io.EOF for the clean end of the
//     stream: a stream cut inside a message would silently lose its last
//     records. Here only an end of input between messages is the end.
//   - it sizes metadata and bodies from lengths in the stream before
//     reading them and trusts the metadata (see verify.go). Here lengths
//     are checked against the bytes left in the file and metadata is
//     checked before arrow/go reads it.
type streamMessages struct {
	file *countingFile
	mem  memory.Allocator
	msg  *ipc.Message
	refs atomic.Int64
}

func (s *streamMessages) Retain() { s.refs.Add(1) }

func (s *streamMessages) Release() {
	if s.refs.Add(-1) == 0 && s.msg != nil {
		s.msg.Release()
		s.msg = nil
	}
}

// Message returns the next message, valid until the next call; io.EOF at
// an end-of-stream marker or at the end of the file between messages.
func (s *streamMessages) Message() (*ipc.Message, error) {
	if s.msg != nil {
		s.msg.Release()
		s.msg = nil
	}
	at := s.file.n.Load()
	var word [4]byte
	if n, err := io.ReadFull(s.file, word[:]); err != nil {
		if n == 0 && err == io.EOF {
			return nil, io.EOF // the stream ends between messages
		}
		return nil, s.truncated(at, err)
	}
	length := binary.LittleEndian.Uint32(word[:])
	if length == 0xFFFFFFFF { // continuation marker; the length follows
		if _, err := io.ReadFull(s.file, word[:]); err != nil {
			return nil, s.truncated(at, err)
		}
		length = binary.LittleEndian.Uint32(word[:])
	}
	if length == 0 {
		return nil, io.EOF // end-of-stream marker
	}
	left := s.file.size - s.file.n.Load()
	if int64(length) > left {
		return nil, fmt.Errorf("message at byte %d: metadata of %d bytes, but %d bytes are left (truncated stream?)", at, length, left)
	}
	meta := make([]byte, length)
	if _, err := io.ReadFull(s.file, meta); err != nil {
		return nil, s.truncated(at, err)
	}
	bodyLen, err := checkMessage(meta)
	if err != nil {
		return nil, fmt.Errorf("message at byte %d: %w", at, err)
	}
	if left = s.file.size - s.file.n.Load(); bodyLen > left {
		return nil, fmt.Errorf("message at byte %d: body of %d bytes, but %d bytes are left (truncated stream?)", at, bodyLen, left)
	}
	body := memory.NewResizableBuffer(s.mem)
	defer body.Release()
	body.Resize(int(bodyLen))
	if _, err := io.ReadFull(s.file, body.Bytes()); err != nil {
		return nil, s.truncated(at, err)
	}
	metaBuf := memory.NewBufferBytes(meta)
	defer metaBuf.Release()
	s.msg = ipc.NewMessage(metaBuf, body)
	return s.msg, nil
}

func (s *streamMessages) truncated(at int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("truncated stream: the message at byte %d ends early", at)
	}
	return err
}
