package arrowio

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// defaultRowsPerGroup is the Parquet row group / IPC record size of
// WriteEvents when the caller gives 0, and the row group size of training
// set outputs.
const defaultRowsPerGroup = 64 << 10

// timestampType is the Arrow type of every timestamp this package writes.
var timestampType = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// arrowType is the Arrow type written for a field or feature type.
func arrowType(ft schemas.FieldType) (arrow.DataType, error) {
	switch ft {
	case schemas.String:
		return arrow.BinaryTypes.String, nil
	case schemas.Int:
		return arrow.PrimitiveTypes.Int64, nil
	case schemas.Float:
		return arrow.PrimitiveTypes.Float64, nil
	case schemas.Bool:
		return arrow.FixedWidthTypes.Boolean, nil
	case schemas.Timestamp:
		return timestampType, nil
	}
	return nil, fmt.Errorf("unknown field type %q", ft)
}

// buildColumn builds an array of n values of type ft; value(i) gives row i.
// A value must be of the column's kind, except that an Int may go in a
// Float or Timestamp column; Absent is a null.
func buildColumn(mem memory.Allocator, name string, ft schemas.FieldType, n int, value func(i int) events.Value) (arrow.Array, error) {
	dt, err := arrowType(ft)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", name, err)
	}
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	b.Reserve(n)
	for i := 0; i < n; i++ {
		v := value(i)
		if v.Kind == events.Absent {
			b.AppendNull()
			continue
		}
		ok := false
		switch ft {
		case schemas.String:
			if ok = v.Kind == events.String; ok {
				b.(*array.StringBuilder).Append(v.S)
			}
		case schemas.Int:
			if ok = v.Kind == events.Int; ok {
				b.(*array.Int64Builder).Append(v.I)
			}
		case schemas.Float:
			if ok = v.Kind == events.Float || v.Kind == events.Int; ok {
				b.(*array.Float64Builder).Append(v.Float())
			}
		case schemas.Bool:
			if ok = v.Kind == events.Bool; ok {
				b.(*array.BooleanBuilder).Append(v.B)
			}
		case schemas.Timestamp:
			if ok = v.Kind == events.Time || v.Kind == events.Int; ok {
				b.(*array.TimestampBuilder).Append(arrow.Timestamp(v.I))
			}
		}
		if !ok {
			return nil, fmt.Errorf("column %s, row %d: a %s value cannot go in a column of type %s", name, i, v.Kind, ft)
		}
	}
	return b.NewArray(), nil
}

// recordWriter writes records to a Parquet or Arrow IPC file.
type recordWriter interface {
	write(rec arrow.Record) error
	// close finishes the file (footer, end-of-stream marker) and closes it.
	close() error
}

// fileSink is the buffered file under a recordWriter. It hides the file's
// Close from Arrow writers, which would otherwise close it themselves, and
// answers the ipc.FileWriter's position queries (Seek(0, io.SeekCurrent))
// from its own count, as the buffer makes the file's offset lag behind.
type fileSink struct {
	f   *os.File
	w   *bufio.Writer
	pos int64
}

func createSink(path string) (*fileSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &fileSink{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (s *fileSink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.pos += int64(n)
	return n, err
}

func (s *fileSink) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekCurrent {
		return 0, fmt.Errorf("arrowio: output files are written sequentially")
	}
	return s.pos, nil
}

func (s *fileSink) close() error {
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// newRecordWriter creates a Parquet or Arrow IPC file. A Parquet file gets
// snappy compression and the Arrow schema stored in its metadata (so time
// zones and dictionary types come back); each write starts a new row group
// when buffered is false, and fills row groups of rowsPerGroup rows when it
// is true.
func newRecordWriter(path string, f format, sc *arrow.Schema, mem memory.Allocator, rowsPerGroup int, buffered bool) (rw recordWriter, err error) {
	sink, err := createSink(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sink.close()
			os.Remove(path)
		}
	}()
	defer catch(&err, path)
	switch f {
	case formatParquet:
		props := parquet.NewWriterProperties(
			parquet.WithAllocator(mem),
			parquet.WithCompression(compress.Codecs.Snappy),
			parquet.WithMaxRowGroupLength(int64(rowsPerGroup)),
		)
		fw, err := pqarrow.NewFileWriter(sc, sink, props,
			pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &parquetWriter{fw: fw, sink: sink, buffered: buffered}, nil
	case formatIPCFile:
		fw, err := ipc.NewFileWriter(sink, ipc.WithSchema(sc), ipc.WithAllocator(mem))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &ipcWriter{w: fw, sink: sink}, nil
	case formatIPCStream:
		return &ipcWriter{w: ipc.NewWriter(sink, ipc.WithSchema(sc), ipc.WithAllocator(mem)), sink: sink}, nil
	}
	return nil, fmt.Errorf("%s: %s is not a columnar format", path, f)
}

type parquetWriter struct {
	fw       *pqarrow.FileWriter
	sink     *fileSink
	buffered bool
}

func (w *parquetWriter) write(rec arrow.Record) (err error) {
	defer catch(&err, "writing Parquet")
	if w.buffered {
		return w.fw.WriteBuffered(rec)
	}
	return w.fw.Write(rec)
}

func (w *parquetWriter) close() (err error) {
	defer func() {
		if cerr := w.sink.close(); err == nil {
			err = cerr
		}
	}()
	defer catch(&err, "writing Parquet")
	return w.fw.Close()
}

type ipcWriter struct {
	w interface {
		Write(arrow.Record) error
		Close() error
	}
	sink *fileSink
}

func (w *ipcWriter) write(rec arrow.Record) (err error) {
	defer catch(&err, "writing Arrow IPC")
	return w.w.Write(rec)
}

func (w *ipcWriter) close() error {
	err := w.w.Close()
	if cerr := w.sink.close(); err == nil {
		err = cerr
	}
	return err
}

// eventSchema is the Arrow schema of events of type t: one column per
// declared field, nullable, in declaration order.
func eventSchema(t *schemas.Event) (*arrow.Schema, error) {
	fields := make([]arrow.Field, len(t.Fields))
	for k, fd := range t.Fields {
		dt, err := arrowType(fd.Type)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", fd.Name, err)
		}
		fields[k] = arrow.Field{Name: fd.Name, Type: dt, Nullable: true}
	}
	return arrow.NewSchema(fields, nil), nil
}

// WriteEvents writes evs, events of type t, to a new file at path in any
// format Supported recognizes, chosen by extension. Columnar formats get one
// column per declared field, in declaration order: string → utf8, int →
// int64, float → float64, bool → bool, timestamp → timestamp[ms, UTC]; an
// absent value is a null. CSV has a header row and the same columns, cells
// written as the CSV reader reads them back (timestamps in RFC 3339 UTC with
// milliseconds, absent values as empty cells — so an empty string reads back
// as absent). NDJSON holds each event's normalized JSON (Event.AppendJSON).
//
// rowsPerGroup sets the Parquet row group and IPC record size; 0 means 64k.
// WriteEvents serves tests, benchmarks and conversion tools: it takes the
// events in memory.
func WriteEvents(path string, t *schemas.Event, evs []events.Event, rowsPerGroup int) error {
	return writeEvents(path, t, evs, rowsPerGroup, memory.DefaultAllocator)
}

func writeEvents(path string, t *schemas.Event, evs []events.Event, rowsPerGroup int, mem memory.Allocator) error {
	if t == nil {
		return fmt.Errorf("%s: no event type to write", path)
	}
	f, c, err := detect(path)
	if err != nil {
		return err
	}
	for i := range evs {
		if len(evs[i].Values) != len(t.Fields) {
			return fmt.Errorf("%s: event %d has %d values, type %s has %d fields", path, i, len(evs[i].Values), t.Name, len(t.Fields))
		}
	}
	if rowsPerGroup <= 0 {
		rowsPerGroup = defaultRowsPerGroup
	}
	switch f {
	case formatCSV:
		return writeEventsCSV(path, c, t, evs)
	case formatNDJSON:
		return writeEventsNDJSON(path, c, evs)
	}
	sc, err := eventSchema(t)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	rw, err := newRecordWriter(path, f, sc, mem, rowsPerGroup, false)
	if err != nil {
		return err
	}
	for start := 0; start < len(evs); start += rowsPerGroup {
		chunk := evs[start:min(start+rowsPerGroup, len(evs))]
		cols := make([]arrow.Array, len(t.Fields))
		for k, fd := range t.Fields {
			col, err := buildColumn(mem, fd.Name, fd.Type, len(chunk), func(i int) events.Value { return chunk[i].Values[fd.Index] })
			if err != nil {
				releaseAll(cols)
				rw.close()
				return fmt.Errorf("%s: event %d: %w", path, start, err)
			}
			cols[k] = col
		}
		rec := array.NewRecord(sc, cols, int64(len(chunk)))
		releaseAll(cols)
		err := rw.write(rec)
		rec.Release()
		if err != nil {
			rw.close()
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := rw.close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		if a != nil {
			a.Release()
		}
	}
}

func writeEventsCSV(path string, c codec, t *schemas.Event, evs []events.Event) error {
	out, err := createText(path, c)
	if err != nil {
		return err
	}
	w := csv.NewWriter(out.w)
	row := make([]string, len(t.Fields))
	for k, fd := range t.Fields {
		row[k] = fd.Name
	}
	err = w.Write(row)
	for i := 0; i < len(evs) && err == nil; i++ {
		for k, fd := range t.Fields {
			row[k] = valueCell(evs[i].Values[fd.Index])
		}
		err = w.Write(row)
	}
	w.Flush()
	if err == nil {
		err = w.Error()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeEventsNDJSON(path string, c codec, evs []events.Event) error {
	out, err := createText(path, c)
	if err != nil {
		return err
	}
	var buf []byte
	for i := 0; i < len(evs) && err == nil; i++ {
		buf = append(evs[i].AppendJSON(buf[:0]), '\n')
		_, err = out.w.Write(buf)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// valueCell is the CSV text of an event value, as parseCell reads it back.
func valueCell(v events.Value) string {
	switch v.Kind {
	case events.Float:
		return floatCell(v.F)
	case events.Time:
		return millisCell(v.I)
	}
	return v.Text()
}

// floatCell writes f in its shortest round-trip form, as JSON would, and
// NaN and infinities as pandas writes them.
func floatCell(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return string(events.Value{Kind: events.Float, F: f}.AppendJSON(nil))
}

// millisCell writes epoch ms as RFC 3339 in UTC with milliseconds, or as
// integer epoch ms when the year is outside 0000–9999 (RFC 3339 cannot
// hold it; the CSV reader takes both).
func millisCell(ms int64) string {
	t := time.UnixMilli(ms).UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return strconv.FormatInt(ms, 10)
	}
	return t.Format("2006-01-02T15:04:05.000Z07:00")
}

// WriteStream writes an Arrow IPC stream to w: the body of a batch lookup
// answered as application/vnd.apache.arrow.stream. Its columns are the
// entity (utf8, named entityName), "event_time" (timestamp[ms, UTC], the
// entity's newest event at or before the lookup time; null where found[i]
// is false: no state, or no event then), then one column
// per feature, typed by cols[j].Type, holding values[j] with a null for each
// Absent value. entities, found and eventTimes have one element per row and
// values[j] one per row for each of cols. Rows go in records of at most 64k.
func WriteStream(w io.Writer, entityName string, entities []string, found []bool, eventTimes []int64, cols []Column, values [][]events.Value) error {
	return writeStream(w, entityName, entities, found, eventTimes, cols, values, memory.DefaultAllocator)
}

func writeStream(w io.Writer, entityName string, entities []string, found []bool, eventTimes []int64, cols []Column, values [][]events.Value, mem memory.Allocator) (err error) {
	n := len(entities)
	if len(found) != n || len(eventTimes) != n {
		return fmt.Errorf("arrow stream: %d entities, %d found flags and %d event times", n, len(found), len(eventTimes))
	}
	if len(values) != len(cols) {
		return fmt.Errorf("arrow stream: %d feature columns but values for %d", len(cols), len(values))
	}
	fields := []arrow.Field{
		{Name: entityName, Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "event_time", Type: timestampType, Nullable: true},
	}
	for j, c := range cols {
		if len(values[j]) != n {
			return fmt.Errorf("arrow stream: column %s has %d values for %d entities", c.Name, len(values[j]), n)
		}
		dt, err := arrowType(c.Type)
		if err != nil {
			return fmt.Errorf("arrow stream: column %s: %w", c.Name, err)
		}
		fields = append(fields, arrow.Field{Name: c.Name, Type: dt, Nullable: true})
	}
	sc := arrow.NewSchema(fields, nil)
	defer catch(&err, "arrow stream")
	iw := ipc.NewWriter(w, ipc.WithSchema(sc), ipc.WithAllocator(mem))
	for start := 0; start < n; start += defaultRowsPerGroup {
		end := min(start+defaultRowsPerGroup, n)
		arrs := make([]arrow.Array, 0, len(fields))
		eb := array.NewStringBuilder(mem)
		eb.AppendValues(entities[start:end], nil)
		arrs = append(arrs, eb.NewArray())
		eb.Release()
		tb := array.NewTimestampBuilder(mem, timestampType)
		for i := start; i < end; i++ {
			if found[i] {
				tb.Append(arrow.Timestamp(eventTimes[i]))
			} else {
				tb.AppendNull()
			}
		}
		arrs = append(arrs, tb.NewArray())
		tb.Release()
		for j, c := range cols {
			vals := values[j][start:end]
			a, err := buildColumn(mem, c.Name, c.Type, len(vals), func(i int) events.Value { return vals[i] })
			if err != nil {
				releaseAll(arrs)
				iw.Close()
				return fmt.Errorf("arrow stream: %w", err)
			}
			arrs = append(arrs, a)
		}
		rec := array.NewRecord(sc, arrs, int64(end-start))
		releaseAll(arrs)
		err := iw.Write(rec)
		rec.Release()
		if err != nil {
			iw.Close()
			return fmt.Errorf("arrow stream: %w", err)
		}
	}
	if err := iw.Close(); err != nil {
		return fmt.Errorf("arrow stream: %w", err)
	}
	return nil
}
