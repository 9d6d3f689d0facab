package arrowio

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// eventBatchRows is the number of rows a Parquet record holds when reading
// events: large enough to amortize per-record work, small enough that a
// record of a wide schema stays a few megabytes.
const eventBatchRows = 16 << 10

// EventReader streams the rows of one file as events of one type, record
// batch by record batch: for Parquet one row group at a time (its compressed
// column chunks, decoded 16k rows at a time, reading only the columns the
// event type needs), for Arrow IPC one record batch at a time, for CSV and
// NDJSON a 64 KiB buffer of text. Memory stays flat whatever the file size,
// and Arrow memory is released as the reader moves on.
//
// Events are built exactly as events.Decode builds them from JSON (Values
// indexed by schemas.Field.Index, Time from the event-time field), so an
// event read from any format equals the same event decoded from its
// normalized JSON.
//
// An EventReader is not safe for concurrent use, except that Progress may be
// called from any goroutine.
type EventReader struct {
	path   string
	src    eventSource
	rows   int64
	err    error       // the fatal error, returned by every later Next
	eof    atomic.Bool // the end was reached: progress is complete
	closed bool
}

// eventSource is one format's way of reading events. next returns an
// event, a *RowError, io.EOF, or a fatal error.
type eventSource interface {
	next() (events.Event, error)
	progress() (done, total int64)
	close() error
}

// OpenEvents opens the file at path, whose format Supported recognizes, to
// read events of type t.
//
// Columns (CSV header cells, JSON keys) map to t's fields by name; other
// columns are ignored. Before anything is read, OpenEvents checks that every
// required field has a column ("history.parquet: no column for required
// field user_id") and that every column's Arrow type can hold its field,
// mirroring the JSON rules of events.Decode:
//
//	string    ← utf8, large_utf8, dictionary of either
//	int       ← int8…int64, uint8…uint64 (a uint64 above MaxInt64 is a RowError)
//	float     ← any integer or float (float16/32/64) column; NaN reads as
//	            absent, ±Inf is a RowError
//	bool      ← bool
//	timestamp ← timestamp of any unit and time zone (the instant in epoch ms,
//	            sub-ms floored), int32/int64 epoch ms, utf8 RFC 3339 (a
//	            RowError when invalid), date32/date64 (midnight UTC)
//
// A column of Arrow type null stands for any field. Any other combination
// fails naming the file, the column and both types ("history.parquet:
// column amount has type utf8, which cannot hold field amount of type
// float"). A null is an absent value, and a RowError ("required field is
// null") for a required field.
//
// CSV has a header row and text cells, converted as JSON values would be:
// an int is an optional sign and digits, a float a decimal number (not NaN
// or Inf), a bool true/false/True/False/TRUE/FALSE, a timestamp RFC 3339,
// pandas' "YYYY-MM-DD HH:MM:SS[.fff][±hh:mm]" (UTC without an offset) or
// integer epoch ms. An empty cell is a missing value for every type, as
// pandas reads it. A row with too few or too many cells is a RowError naming
// its line. NDJSON and JSONL lines go through events.Decode; blank lines are
// skipped.
func OpenEvents(path string, t *schemas.Event) (*EventReader, error) {
	return openEvents(path, t, memory.DefaultAllocator)
}

func openEvents(path string, t *schemas.Event, mem memory.Allocator) (*EventReader, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: no event type to read", path)
	}
	f, c, err := detect(path)
	if err != nil {
		return nil, err
	}
	var src eventSource
	switch f {
	case formatCSV:
		src, err = openCSVEvents(path, c, t)
	case formatNDJSON:
		var in *textInput
		if in, err = openText(path, c); err == nil {
			src = &ndjsonEvents{path: path, t: t, in: in}
		}
	default:
		src, err = openArrowEvents(path, f, t, mem)
	}
	if err != nil {
		return nil, err
	}
	return &EventReader{path: path, src: src}, nil
}

// Next returns the next event. At the end of the file it returns io.EOF. A
// row that is not a valid event gives a *RowError: count it and call Next
// again. Any other error is fatal, names the file and where in it, and is
// returned again by every later call.
func (r *EventReader) Next() (events.Event, error) {
	if r.err != nil {
		return events.Event{}, r.err
	}
	ev, err := r.src.next()
	if err == nil {
		r.rows++
		return ev, nil
	}
	var re *RowError
	if errors.As(err, &re) {
		r.rows++
		return events.Event{}, err
	}
	if err == io.EOF {
		r.eof.Store(true)
	} else {
		err = fmt.Errorf("%w (reading row %d)", err, r.rows+1)
	}
	r.err = err
	return events.Event{}, err
}

// Rows returns the number of rows read so far, valid or not.
func (r *EventReader) Rows() int64 { return r.rows }

// Progress returns how many bytes of the file have been consumed so far and
// the file's size, for progress bars. For compressed text it counts
// compressed bytes; for Parquet and IPC files the bytes of the row groups
// and records read. It is approximate, and safe to call from any goroutine.
func (r *EventReader) Progress() (done, total int64) {
	done, total = r.src.progress()
	if r.eof.Load() {
		done = total
	}
	return done, total
}

// Close releases the reader's memory and closes the file. Later calls do
// nothing.
func (r *EventReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.err == nil || r.err == io.EOF {
		r.err = fmt.Errorf("%s: reader is closed", r.path)
	}
	return r.src.close()
}

// arrowEvents reads events from Parquet and Arrow IPC records.
type arrowEvents struct {
	path string
	t    *schemas.Event
	src  recordSource
	ts   int // position in t.Fields of the event-time field, or -1

	rec     arrow.Record
	n, i    int      // rows in rec, next row
	before  int64    // rows in earlier records
	getters []getter // by position in t.Fields; nil when no column
}

func openArrowEvents(path string, f format, t *schemas.Event, mem memory.Allocator) (es *arrowEvents, err error) {
	src, err := openRecords(path, f, mem, eventBatchRows)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			src.close()
		}
	}()
	sc := src.schema()
	var wanted []int
	for k := range t.Fields {
		fd := &t.Fields[k]
		idx := sc.FieldIndices(fd.Name)
		if len(idx) == 0 {
			if fd.Required {
				return nil, fmt.Errorf("%s: no column for required field %s", path, fd.Name)
			}
			continue
		}
		dt := sc.Field(idx[0]).Type
		if !fieldAccepts(fd.Type, dt) {
			return nil, fmt.Errorf("%s: column %s has type %s, which cannot hold field %s of type %s",
				path, fd.Name, dt, fd.Name, fd.Type)
		}
		wanted = append(wanted, idx[0])
	}
	if ps, ok := src.(*parquetSource); ok {
		ps.selectFields(wanted)
	}
	return &arrowEvents{path: path, t: t, src: src, ts: timestampPos(t), getters: make([]getter, len(t.Fields))}, nil
}

// timestampPos returns the position in t.Fields of the event-time field,
// or -1.
func timestampPos(t *schemas.Event) int {
	for k, f := range t.Fields {
		if f.Name == t.Timestamp && f.Type == schemas.Timestamp {
			return k
		}
	}
	return -1
}

func (a *arrowEvents) next() (ev events.Event, err error) {
	for a.rec == nil || a.i >= a.n {
		if a.rec != nil {
			a.before += int64(a.n)
			a.rec.Release()
			a.rec = nil
		}
		rec, err := a.src.next()
		if err != nil {
			return events.Event{}, err
		}
		if err := a.bind(rec); err != nil {
			rec.Release()
			return events.Event{}, err
		}
		a.rec, a.n, a.i = rec, int(rec.NumRows()), 0
	}
	i := a.i
	a.i++
	row := a.before + int64(i) + 1
	defer func() {
		if p := recover(); p != nil {
			err = panicError(fmt.Sprintf("%s: row %d", a.path, row), p)
		}
	}()
	vals := make([]events.Value, len(a.t.Fields))
	for k := range a.t.Fields {
		fd := &a.t.Fields[k]
		var v events.Value
		if g := a.getters[k]; g != nil {
			var reason string
			if v, reason = g(i); reason != "" {
				return events.Event{}, &RowError{File: a.path, Row: row, Field: fd.Name, Reason: reason}
			}
		}
		if fd.Required && !v.Present() {
			return events.Event{}, &RowError{File: a.path, Row: row, Field: fd.Name, Reason: "required field is null"}
		}
		vals[fd.Index] = v
	}
	ev = events.Event{Type: a.t, Values: vals}
	if a.ts >= 0 {
		ev.Time = vals[a.t.Fields[a.ts].Index].I
	}
	return ev, nil
}

// bind makes the getters of a record's columns.
func (a *arrowEvents) bind(rec arrow.Record) (err error) {
	defer catch(&err, fmt.Sprintf("%s: row %d", a.path, a.before+1))
	sc := rec.Schema()
	for k := range a.t.Fields {
		fd := &a.t.Fields[k]
		a.getters[k] = nil
		idx := sc.FieldIndices(fd.Name)
		if len(idx) == 0 {
			continue
		}
		col := rec.Column(idx[0])
		if !fieldAccepts(fd.Type, col.DataType()) {
			// An IPC stream cannot change its schema, but be safe.
			return fmt.Errorf("%s: row %d: column %s has type %s, which cannot hold field %s of type %s",
				a.path, a.before+1, fd.Name, col.DataType(), fd.Name, fd.Type)
		}
		a.getters[k] = bindColumn(fd.Type, col)
	}
	return nil
}

func (a *arrowEvents) progress() (int64, int64) { return a.src.progress() }

func (a *arrowEvents) close() error {
	if a.rec != nil {
		a.rec.Release()
		a.rec = nil
	}
	return a.src.close()
}

// csvEvents reads events from CSV.
//
// It uses encoding/csv rather than arrow/csv: arrow/csv converts a whole
// chunk of rows at once and gives up on the chunk (and the file) at the
// first cell that does not parse or row of the wrong width, with no line
// number, while a replay must skip and report each bad row by its line and
// go on. encoding/csv streams records with their line numbers (FieldPos),
// handles quoted commas and newlines, and reports a malformed quote as a
// per-record ParseError after which reading resumes.
type csvEvents struct {
	path  string
	t     *schemas.Event
	ts    int
	in    *textInput
	r     *csv.Reader
	width int   // cells in the header
	cells []int // by position in t.Fields: the cell index, or -1
	line  int   // the line of the last record read
}

func openCSVEvents(path string, c codec, t *schemas.Event) (ce *csvEvents, err error) {
	in, err := openText(path, c)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	r, header, err := newCSVReader(path, in)
	if err != nil {
		return nil, err
	}
	ce = &csvEvents{path: path, t: t, ts: timestampPos(t), in: in, r: r, width: len(header), cells: make([]int, len(t.Fields))}
	for k := range t.Fields {
		fd := &t.Fields[k]
		ce.cells[k] = indexOf(header, fd.Name)
		if ce.cells[k] < 0 && fd.Required {
			return nil, fmt.Errorf("%s: no column for required field %s", path, fd.Name)
		}
	}
	return ce, nil
}

// newCSVReader starts reading CSV and returns the header's cells.
func newCSVReader(path string, in *textInput) (*csv.Reader, []string, error) {
	in.lines.limit = MaxRowBytes + textBuffer
	r := csv.NewReader(in.r)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	head, err := r.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%s: empty file: no CSV header row", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reading CSV header: %w", path, csvReadError(path, 0, err))
	}
	header := make([]string, len(head))
	for i, h := range head {
		header[i] = strings.Clone(h)
	}
	header[0] = strings.TrimPrefix(header[0], "\uFEFF") // a UTF-8 byte order mark
	return r, header, nil
}

// csvReadError is the fatal error err of reading the CSV file at path
// after line (0: the header): a record over MaxRowBytes, whose end cannot
// be found again (it may be an unclosed quote), or a read error.
func csvReadError(path string, line int, err error) error {
	var over *oversizeError
	switch {
	case errors.As(err, &over) && line == 0:
		return fmt.Errorf("%s: the CSV header %s", path, over.Error())
	case errors.As(err, &over):
		return fmt.Errorf("%s: the CSV record after line %d %s (or is a quote not closed?)", path, line, over.Error())
	}
	return fmt.Errorf("%s: after line %d: %w", path, line, err)
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

func (c *csvEvents) next() (events.Event, error) {
	c.in.lines.start()
	rec, err := c.r.Read()
	if err == io.EOF {
		return events.Event{}, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return events.Event{}, &RowError{File: c.path, Row: int64(pe.StartLine), Reason: "invalid CSV: " + pe.Err.Error()}
		}
		return events.Event{}, csvReadError(c.path, c.line, err)
	}
	l, _ := c.r.FieldPos(0)
	c.line = l
	line := int64(l)
	raw := func() []byte { return []byte(strings.Join(rec, ",")) }
	if len(rec) != c.width {
		return events.Event{}, &RowError{File: c.path, Row: line, Raw: raw(),
			Reason: fmt.Sprintf("row has %d cells, the header has %d", len(rec), c.width)}
	}
	vals := make([]events.Value, len(c.t.Fields))
	for k := range c.t.Fields {
		fd := &c.t.Fields[k]
		var v events.Value
		if j := c.cells[k]; j >= 0 {
			var reason string
			if v, reason = parseCell(fd.Type, rec[j]); reason != "" {
				return events.Event{}, &RowError{File: c.path, Row: line, Field: fd.Name, Reason: reason, Raw: raw()}
			}
		}
		if fd.Required && !v.Present() {
			reason := "required field is missing (empty cell)"
			if c.cells[k] < 0 {
				reason = "required field is missing"
			}
			return events.Event{}, &RowError{File: c.path, Row: line, Field: fd.Name, Reason: reason, Raw: raw()}
		}
		vals[fd.Index] = v
	}
	ev := events.Event{Type: c.t, Values: vals}
	if c.ts >= 0 {
		ev.Time = vals[c.t.Fields[c.ts].Index].I
	}
	return ev, nil
}

func (c *csvEvents) progress() (int64, int64) { return c.in.file.progress() }
func (c *csvEvents) close() error             { return c.in.Close() }

// ndjsonEvents reads events from NDJSON with events.Decode, one per
// non-blank line.
type ndjsonEvents struct {
	path string
	t    *schemas.Event
	in   *textInput
	line int64
	buf  []byte
}

func (n *ndjsonEvents) next() (events.Event, error) {
	for {
		line, err := readLine(n.in.r, &n.buf)
		if err == io.EOF {
			return events.Event{}, io.EOF
		}
		n.line++
		var over *oversizeError
		if errors.As(err, &over) {
			return events.Event{}, &RowError{File: n.path, Row: n.line, Reason: "line " + over.Error(), Raw: over.prefix}
		}
		if err != nil {
			return events.Event{}, fmt.Errorf("%s:%d: %w", n.path, n.line, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := events.Decode(n.t, line)
		if err != nil {
			re := &RowError{File: n.path, Row: n.line, Reason: err.Error(), Raw: bytes.Clone(line)}
			var fe *events.FieldError
			if errors.As(err, &fe) {
				re.Field, re.Reason = fe.Field, fe.Reason
			}
			return events.Event{}, re
		}
		return ev, nil
	}
}

// readLine returns the next line without its newline, valid until the next
// call; io.EOF when no bytes are left. A line over MaxRowBytes is an
// *oversizeError holding its first bytes; the rest of it is skipped
// without being kept, and the next call returns the next line.
func readLine(r *bufio.Reader, buf *[]byte) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		if err == io.EOF && len(line) > 0 {
			return line, nil
		}
		return nil, err
	}
	// A line longer than the buffer: gather it.
	*buf = append((*buf)[:0], line...)
	for {
		line, err = r.ReadSlice('\n')
		if len(*buf)+len(line) > MaxRowBytes+1 { // +1: the newline
			return nil, skipLine(r, *buf, err)
		}
		*buf = append(*buf, line...)
		switch {
		case err == nil:
			return (*buf)[:len(*buf)-1], nil
		case err == io.EOF:
			return *buf, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, err
		}
	}
}

// oversizePrefix is how much of an oversize row the rejects file gets.
const oversizePrefix = 1 << 10

// skipLine skips the rest of an oversize line, of which head was read and
// err is the error of the last read, and returns its *oversizeError, or
// the read error that ended it.
func skipLine(r *bufio.Reader, head []byte, err error) error {
	over := &oversizeError{prefix: append(bytes.Clone(head[:min(len(head), oversizePrefix)]), "…"...)}
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = r.ReadSlice('\n')
	}
	if err != nil && err != io.EOF {
		return err
	}
	return over
}

func (n *ndjsonEvents) progress() (int64, int64) { return n.in.file.progress() }
func (n *ndjsonEvents) close() error             { return n.in.Close() }
