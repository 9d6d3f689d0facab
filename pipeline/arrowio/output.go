package arrowio

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// Column is a typed output column: a feature of a training set or of a
// batch lookup. Types map to Arrow as string → utf8, int → int64, float →
// float64, bool → bool, timestamp → timestamp[ms, UTC].
type Column struct {
	Name string
	Type schemas.FieldType
}

// OutputWriter writes a training set: the spine's columns (same names, same
// types, same values) followed by typed feature columns. It is not safe for
// concurrent use.
type OutputWriter struct {
	path     string
	spine    *arrow.Schema // the spine reader's columns
	sc       *arrow.Schema // the output's columns
	features []Column
	mem      memory.Allocator

	rw     recordWriter // Parquet and Arrow IPC
	decode []bool       // by spine column: write it dictionary-decoded

	text *textOutput // CSV
	csv  *csv.Writer
	row  []string

	err error // sticky: the first failure, or "closed"
}

// CreateOutput creates the training-set file at path for the spine read by
// spine, with the given feature columns after the spine's. The format is
// chosen by extension:
//
//   - .parquet: snappy-compressed, row groups of 64k rows, with the Arrow
//     schema stored so that time zones and dictionary types survive (Parquet
//     readers give dictionaries int32 indices whatever was written);
//   - .arrow, .feather: Arrow IPC file. The IPC file format allows one
//     dictionary per column for the whole file, which a stream of batches
//     cannot promise, so dictionary-encoded spine columns are written
//     decoded (as their value type) in this format only;
//   - .arrows: Arrow IPC stream;
//   - .csv (optionally .gz or .zst): a header row, timestamps in RFC 3339
//     UTC (with milliseconds, or the column's finer unit), nulls as empty
//     cells.
//
// Feature names must differ from each other and from the spine's columns.
func CreateOutput(path string, spine *SpineReader, features []Column) (*OutputWriter, error) {
	return createOutput(path, spine, features, memory.DefaultAllocator)
}

func createOutput(path string, spine *SpineReader, features []Column, mem memory.Allocator) (w *OutputWriter, err error) {
	if spine == nil {
		return nil, fmt.Errorf("%s: no spine", path)
	}
	f, c, err := detect(path)
	if err != nil {
		return nil, err
	}
	if f == formatNDJSON {
		return nil, fmt.Errorf("%s: a training set cannot be written as NDJSON; use .parquet, .arrow, .feather, .arrows or .csv", path)
	}
	if a, err := os.Stat(path); err == nil {
		if b, err := os.Stat(spine.path); err == nil && os.SameFile(a, b) {
			return nil, fmt.Errorf("%s: the output would overwrite the spine", path)
		}
	}
	names := map[string]bool{}
	for _, fd := range spine.sc.Fields() {
		names[fd.Name] = true
	}
	w = &OutputWriter{path: path, spine: spine.sc, features: features, mem: mem, decode: make([]bool, spine.sc.NumFields())}
	fields := make([]arrow.Field, 0, spine.sc.NumFields()+len(features))
	for i, fd := range spine.sc.Fields() {
		if d, ok := fd.Type.(*arrow.DictionaryType); ok && f == formatIPCFile {
			w.decode[i] = true
			fd.Type = d.ValueType
		}
		fields = append(fields, fd)
	}
	for _, col := range features {
		if names[col.Name] {
			return nil, fmt.Errorf("%s: feature column %s: the name is already taken by another column", path, col.Name)
		}
		names[col.Name] = true
		dt, err := arrowType(col.Type)
		if err != nil {
			return nil, fmt.Errorf("%s: feature column %s: %w", path, col.Name, err)
		}
		fields = append(fields, arrow.Field{Name: col.Name, Type: dt, Nullable: true})
	}
	w.sc = arrow.NewSchema(fields, nil) // the spine's schema metadata (pandas') would not describe the output

	if f == formatCSV {
		if w.text, err = createText(path, c); err != nil {
			return nil, err
		}
		w.csv = csv.NewWriter(w.text.w)
		w.row = make([]string, len(fields))
		for i, fd := range fields {
			w.row[i] = fd.Name
		}
		if err := w.csv.Write(w.row); err != nil {
			w.text.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return w, nil
	}
	if w.rw, err = newRecordWriter(path, f, w.sc, mem, defaultRowsPerGroup, true); err != nil {
		return nil, err
	}
	return w, nil
}

// Write appends the rows of a spine batch with their feature values:
// values[j][i] is feature column j of the batch's row i, and an Absent value
// is a null. A value must be of its column's kind, except that an Int may go
// in a Float or Timestamp column. The batch must be the spine reader's
// latest: its passthrough columns end at the reader's next Next.
func (w *OutputWriter) Write(b *SpineBatch, values [][]events.Value) error {
	if w.err != nil {
		return w.err
	}
	if err := w.check(b, values); err != nil {
		return err // the caller's mistake: the file is still good
	}
	var err error
	if w.csv != nil {
		err = w.writeCSV(b, values)
	} else {
		err = w.writeRecord(b, values)
	}
	if err != nil {
		w.err = fmt.Errorf("%s: %w", w.path, err)
		return w.err
	}
	return nil
}

func (w *OutputWriter) check(b *SpineBatch, values [][]events.Value) error {
	switch {
	case b == nil:
		return fmt.Errorf("%s: nil spine batch", w.path)
	case b.released:
		return fmt.Errorf("%s: spine batch used after the spine reader's next Next or Close", w.path)
	case !b.rec.Schema().Equal(w.spine):
		return fmt.Errorf("%s: spine batch from another spine", w.path)
	case len(values) != len(w.features):
		return fmt.Errorf("%s: values for %d feature columns, the output has %d", w.path, len(values), len(w.features))
	}
	for j, vs := range values {
		if len(vs) != b.rows() {
			return fmt.Errorf("%s: feature column %s has %d values for %d spine rows", w.path, w.features[j].Name, len(vs), b.rows())
		}
	}
	return nil
}

func (w *OutputWriter) writeRecord(b *SpineBatch, values [][]events.Value) (err error) {
	defer catch(&err, "writing output")
	cols := make([]arrow.Array, 0, w.sc.NumFields())
	defer func() { releaseAll(cols) }()
	for i, col := range b.rec.Columns() {
		if w.decode[i] {
			dec, err := decodeDictionary(w.mem, col.(*array.Dictionary))
			if err != nil {
				return fmt.Errorf("column %s: %w", w.sc.Field(i).Name, err)
			}
			cols = append(cols, dec)
			continue
		}
		col.Retain()
		cols = append(cols, col)
	}
	for j, fc := range w.features {
		vs := values[j]
		a, err := buildColumn(w.mem, fc.Name, fc.Type, len(vs), func(i int) events.Value { return vs[i] })
		if err != nil {
			return err
		}
		cols = append(cols, a)
	}
	rec := array.NewRecord(w.sc, cols, int64(b.rows()))
	defer rec.Release()
	return w.rw.write(rec)
}

func (w *OutputWriter) writeCSV(b *SpineBatch, values [][]events.Value) (err error) {
	defer catch(&err, "writing output")
	ns := len(b.rec.Columns())
	cells := make([]func(int) string, ns)
	for i, col := range b.rec.Columns() {
		cells[i] = cellText(col)
	}
	for i := 0; i < b.rows(); i++ {
		for k, cell := range cells {
			w.row[k] = cell(i)
		}
		for j, fc := range w.features {
			s, err := featureCell(fc.Type, values[j][i])
			if err != nil {
				return fmt.Errorf("column %s, row %d: %w", fc.Name, i, err)
			}
			w.row[ns+j] = s
		}
		if err := w.csv.Write(w.row); err != nil {
			return err
		}
	}
	return nil
}

// Close finishes the file (Parquet footer, IPC end marker, CSV flush) and
// closes it. A Write error leaves the file incomplete; Close still closes it.
func (w *OutputWriter) Close() error {
	if w.rw == nil && w.text == nil {
		return nil
	}
	var err error
	if w.csv != nil {
		w.csv.Flush()
		err = w.csv.Error()
		if cerr := w.text.Close(); err == nil {
			err = cerr
		}
	} else {
		err = w.rw.close()
	}
	w.rw, w.text, w.csv = nil, nil, nil
	if w.err == nil {
		w.err = fmt.Errorf("%s: output is closed", w.path)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	return nil
}

// decodeDictionary returns the values of a dictionary array as a plain
// array of its value type.
func decodeDictionary(mem memory.Allocator, d *array.Dictionary) (arrow.Array, error) {
	dict := d.Dictionary()
	b := array.NewBuilder(mem, dict.DataType())
	defer b.Release()
	b.Reserve(d.Len())
	str, _ := dict.(*array.String)
	for i := 0; i < d.Len(); i++ {
		if d.IsNull(i) {
			b.AppendNull()
			continue
		}
		k := d.GetValueIndex(i)
		switch {
		case dict.IsNull(k):
			b.AppendNull()
		case str != nil:
			b.(*array.StringBuilder).Append(str.Value(k))
		default:
			if err := b.AppendValueFromString(dict.ValueStr(k)); err != nil {
				return nil, err
			}
		}
	}
	return b.NewArray(), nil
}

// featureCell is the CSV text of a feature value in a column of type ft.
func featureCell(ft schemas.FieldType, v events.Value) (string, error) {
	if v.Kind == events.Absent {
		return "", nil
	}
	ok := false
	switch ft {
	case schemas.String:
		ok = v.Kind == events.String
	case schemas.Int:
		ok = v.Kind == events.Int
	case schemas.Float:
		if v.Kind == events.Int {
			return floatCell(float64(v.I)), nil
		}
		ok = v.Kind == events.Float
	case schemas.Bool:
		ok = v.Kind == events.Bool
	case schemas.Timestamp:
		if ok = v.Kind == events.Time || v.Kind == events.Int; ok {
			return millisCell(v.I), nil
		}
	}
	if !ok {
		return "", fmt.Errorf("a %s value cannot go in a column of type %s", v.Kind, ft)
	}
	return valueCell(v), nil
}

// cellText returns the CSV text of an Arrow column's rows: "" for a null,
// numbers as JSON writes them, timestamps in RFC 3339 UTC with the digits of
// their unit (at least milliseconds), dates as YYYY-MM-DD, and anything else
// as Arrow's ValueStr.
func cellText(arr arrow.Array) func(int) string {
	var text func(int) string
	switch a := arr.(type) {
	case *array.Dictionary:
		inner := cellText(a.Dictionary())
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return inner(a.GetValueIndex(i))
		}
	case *array.String:
		text = a.Value
	case *array.LargeString:
		text = a.Value
	case *array.Boolean:
		text = func(i int) string { return strconv.FormatBool(a.Value(i)) }
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		layout := "2006-01-02T15:04:05.000Z07:00"
		switch unit {
		case arrow.Microsecond:
			layout = "2006-01-02T15:04:05.000000Z07:00"
		case arrow.Nanosecond:
			layout = "2006-01-02T15:04:05.000000000Z07:00"
		}
		text = func(i int) string {
			t := a.Value(i).ToTime(unit).UTC()
			if t.Year() < 0 || t.Year() > 9999 {
				return a.ValueStr(i)
			}
			return t.Format(layout)
		}
	case *array.Date32:
		text = func(i int) string { return a.Value(i).ToTime().UTC().Format(time.DateOnly) }
	case *array.Date64:
		text = func(i int) string { return a.Value(i).ToTime().UTC().Format(time.DateOnly) }
	default:
		switch {
		case isInteger(arr.DataType()):
			num := intAt(arr)
			text = func(i int) string {
				v, u, ok := num(i)
				if !ok {
					return strconv.FormatUint(u, 10)
				}
				return strconv.FormatInt(v, 10)
			}
		case isFloat(arr.DataType()):
			num := floatAt(arr)
			text = func(i int) string { return floatCell(num(i)) }
		default:
			text = arr.ValueStr
		}
	}
	return func(i int) string {
		if arr.IsNull(i) {
			return ""
		}
		return text(i)
	}
}
