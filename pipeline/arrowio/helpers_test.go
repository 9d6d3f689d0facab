package arrowio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// testYAML declares an event with a field of every type. ts, the event time,
// is declared first so that declaration order differs from alphabetical.
const testYAML = `
events:
  txn:
    key: user_id
    timestamp: ts
    fields:
      ts: timestamp
      user_id: string
      amount: float
      items: int
      card_present: bool
      seen_at: timestamp
      note: string
    required: [user_id, ts]
`

func testType(t testing.TB) *schemas.Event {
	t.Helper()
	reg, err := schemas.Parse("test.yaml", []byte(testYAML))
	require.NoError(t, err)
	return reg.Events["txn"]
}

// testLines are events of testType as JSON: absent optional values, negative
// numbers, unicode, extreme floats and timestamps before 1970.
var testLines = []string{
	`{"ts":"2024-05-30T00:00:02Z","user_id":"u_1","amount":24.76,"items":6,"card_present":false,"seen_at":"2024-05-30T00:00:01.5+02:00","note":"plain"}`,
	`{"ts":1717027259445,"user_id":"u_2"}`,
	`{"ts":-1,"user_id":"ünïcødé 😀 日本","amount":-0.1,"items":-42,"card_present":true,"note":"tab\tquote\" comma, newline\nend"}`,
	`{"ts":"1969-12-31T23:59:59.999Z","user_id":"u_4","amount":1e300,"items":9223372036854775807,"seen_at":-86400000}`,
	`{"ts":0,"user_id":"u_5","amount":3,"items":-9223372036854775808,"card_present":false,"seen_at":253402300799999}`,
	`{"ts":1717027202123,"user_id":"u_6","amount":5e-324,"note":"  spaces kept  "}`,
	`{"ts":1717027202124,"user_id":"u_7","amount":0,"items":0}`,
}

func decodeLines(t testing.TB, typ *schemas.Event, lines []string) []events.Event {
	t.Helper()
	evs := make([]events.Event, len(lines))
	for i, l := range lines {
		ev, err := events.Decode(typ, []byte(l))
		require.NoError(t, err, l)
		evs[i] = ev
	}
	return evs
}

// checkedMem returns an allocator that fails the test when memory is still
// allocated at the end: readers and writers must release every record.
func checkedMem(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// readResult is what reading a whole event file gave.
type readResult struct {
	events    []events.Event
	rowErrors []*RowError
	err       error // the fatal error, if any
	rows      int64
}

// readEvents reads every event of the file at path with a checked allocator.
func readEvents(t *testing.T, path string, typ *schemas.Event) readResult {
	t.Helper()
	return readEventsMem(t, path, typ, checkedMem(t))
}

func readEventsMem(t *testing.T, path string, typ *schemas.Event, mem memory.Allocator) readResult {
	t.Helper()
	r, err := openEvents(path, typ, mem)
	if err != nil {
		return readResult{err: err}
	}
	defer func() { require.NoError(t, r.Close()) }()
	var res readResult
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		var re *RowError
		if errors.As(err, &re) {
			res.rowErrors = append(res.rowErrors, re)
			continue
		}
		if err != nil {
			res.err = err
			break
		}
		res.events = append(res.events, ev)
	}
	res.rows = r.Rows()
	return res
}

// writeRecord writes rec to path in the columnar format of its extension,
// with Arrow directly: the files a data scientist's tools would produce.
func writeRecord(t *testing.T, path string, recs ...arrow.Record) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	sc := recs[0].Schema()
	switch filepath.Ext(path) {
	case ".parquet":
		w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(),
			pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		require.NoError(t, err)
		for _, rec := range recs {
			require.NoError(t, w.Write(rec))
		}
		require.NoError(t, w.Close())
	case ".arrow", ".feather":
		w, err := ipc.NewFileWriter(f, ipc.WithSchema(sc))
		require.NoError(t, err)
		for _, rec := range recs {
			require.NoError(t, w.Write(rec))
		}
		require.NoError(t, w.Close())
	case ".arrows":
		w := ipc.NewWriter(f, ipc.WithSchema(sc))
		for _, rec := range recs {
			require.NoError(t, w.Write(rec))
		}
		require.NoError(t, w.Close())
	default:
		t.Fatalf("writeRecord: %s", path)
	}
}

// column is an array of type dt from a JSON array.
func column(t *testing.T, dt arrow.DataType, js string) arrow.Array {
	t.Helper()
	a, _, err := array.FromJSON(memory.DefaultAllocator, dt, strings.NewReader(js), array.WithUseNumber())
	require.NoError(t, err, js)
	return a
}

// record makes a record of named columns.
func record(t *testing.T, names []string, cols ...arrow.Array) arrow.Record {
	t.Helper()
	require.Len(t, names, len(cols))
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: names[i], Type: c.DataType(), Nullable: true}
	}
	return array.NewRecord(arrow.NewSchema(fields, nil), cols, -1)
}

// table is a whole Parquet or Arrow IPC file read with Arrow directly, to
// check outputs.
type table struct {
	schema *arrow.Schema
	recs   []arrow.Record
}

func (tb *table) rows() int64 {
	var n int64
	for _, r := range tb.recs {
		n += r.NumRows()
	}
	return n
}

// column returns column j's chunks.
func (tb *table) column(j int) []arrow.Array {
	out := make([]arrow.Array, len(tb.recs))
	for i, r := range tb.recs {
		out[i] = r.Column(j)
	}
	return out
}

// cells returns column j's rows as text: Arrow's ValueStr, "<null>" for a
// null.
func (tb *table) cells(j int) []string {
	var out []string
	for _, c := range tb.column(j) {
		for i := 0; i < c.Len(); i++ {
			if c.IsNull(i) {
				out = append(out, "<null>")
			} else {
				out = append(out, c.ValueStr(i))
			}
		}
	}
	return out
}

func (tb *table) release() {
	for _, r := range tb.recs {
		r.Release()
	}
}

func readTable(t *testing.T, path string) *table {
	t.Helper()
	mem := memory.DefaultAllocator
	tb := &table{}
	switch filepath.Ext(path) {
	case ".parquet":
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		tbl, err := pqarrow.ReadTable(t.Context(), f, parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
		require.NoError(t, err)
		defer tbl.Release()
		tr := array.NewTableReader(tbl, -1)
		defer tr.Release()
		tb.schema = tbl.Schema()
		for tr.Next() {
			rec := tr.Record()
			rec.Retain()
			tb.recs = append(tb.recs, rec)
		}
	case ".arrow", ".feather":
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		r, err := ipc.NewFileReader(f)
		require.NoError(t, err)
		defer r.Close()
		tb.schema = r.Schema()
		for i := 0; i < r.NumRecords(); i++ {
			rec, err := r.RecordAt(i)
			require.NoError(t, err)
			tb.recs = append(tb.recs, rec)
		}
	case ".arrows":
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		r, err := ipc.NewReader(bytes.NewReader(data))
		require.NoError(t, err)
		defer r.Release()
		tb.schema = r.Schema()
		for r.Next() {
			rec := r.Record()
			rec.Retain()
			tb.recs = append(tb.recs, rec)
		}
		require.NoError(t, r.Err())
	default:
		t.Fatalf("readTable: %s", path)
	}
	return tb
}
