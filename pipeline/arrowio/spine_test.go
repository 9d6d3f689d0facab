package arrowio

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

const spineRows = 10_000

// spineBase is the first lookup time of the test spine, in µs.
var spineBase = time.Date(2024, 5, 30, 0, 0, 0, 0, time.UTC).UnixMicro()

// spineRow describes row i of the test spine; nil pointers are nulls.
type spineRow struct {
	user   *string
	at     *int64 // µs
	label  *bool
	weight *float64
	id     int64
	note   *string
	cat    *string
}

func ptr[T any](v T) *T { return &v }

func testSpineRow(i int) spineRow {
	r := spineRow{id: int64(i)}
	if i%97 != 0 {
		r.user = ptr(fmt.Sprintf("u_%d", i%50))
	}
	if i%101 != 0 {
		r.at = ptr(spineBase + int64(i)*1_000_003 - 500) // sub-ms, some before the base
	}
	if i%11 != 0 {
		r.label = ptr(i%3 == 0)
	}
	if i%13 != 0 {
		r.weight = ptr(float64(i) * 0.5)
	}
	if i%7 != 0 {
		r.note = ptr(fmt.Sprintf("note %d, «%d»", i, i%5))
	}
	if i%17 != 0 {
		r.cat = ptr([]string{"red", "green", "blue"}[i%3])
	}
	return r
}

// spineNames are the test spine's columns, in order.
var spineNames = []string{"user_id", "at", "label", "weight", "id", "note", "cat"}

var parisMicros = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Paris"}

// spineRecords builds the test spine as Arrow records of the given sizes.
func spineRecords(t *testing.T, sizes ...int) []arrow.Record {
	mem := memory.DefaultAllocator
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	fields := []arrow.Field{
		{Name: "user_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "at", Type: parisMicros, Nullable: true},
		{Name: "label", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "weight", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "cat", Type: dictType, Nullable: true},
	}
	sc := arrow.NewSchema(fields, nil)
	// Every record gets the same dictionary, as an IPC file requires.
	dict := column(t, arrow.BinaryTypes.String, `["red", "green", "blue"]`)
	defer dict.Release()
	var recs []arrow.Record
	start := 0
	for _, n := range sizes {
		b := array.NewRecordBuilder(mem, sc)
		b.Field(6).Release()
		b.Fields()[6] = array.NewDictionaryBuilderWithDict(mem, dictType, dict)
		for i := start; i < start+n; i++ {
			r := testSpineRow(i)
			appendOpt(b.Field(0).(*array.StringBuilder), r.user)
			if r.at == nil {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(*r.at))
			}
			if r.label == nil {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.BooleanBuilder).Append(*r.label)
			}
			if r.weight == nil {
				b.Field(3).AppendNull()
			} else {
				b.Field(3).(*array.Float64Builder).Append(*r.weight)
			}
			b.Field(4).(*array.Int64Builder).Append(r.id)
			appendOpt(b.Field(5).(*array.StringBuilder), r.note)
			if r.cat == nil {
				b.Field(6).AppendNull()
			} else {
				require.NoError(t, b.Field(6).(*array.BinaryDictionaryBuilder).AppendString(*r.cat))
			}
		}
		recs = append(recs, b.NewRecord())
		b.Release()
		start += n
	}
	return recs
}

func appendOpt(b *array.StringBuilder, s *string) {
	if s == nil {
		b.AppendNull()
	} else {
		b.Append(*s)
	}
}

// writeSpine writes the test spine to path in the format of its extension.
func writeSpine(t *testing.T, path string) {
	switch {
	case strings.HasSuffix(path, ".csv"):
		f, err := os.Create(path)
		require.NoError(t, err)
		w := csv.NewWriter(f)
		require.NoError(t, w.Write(spineNames))
		for i := 0; i < spineRows; i++ {
			cells := spineCSVCells(testSpineRow(i))
			require.NoError(t, w.Write(cells))
		}
		w.Flush()
		require.NoError(t, w.Error())
		require.NoError(t, f.Close())
	case strings.HasSuffix(path, ".ndjson"):
		f, err := os.Create(path)
		require.NoError(t, err)
		for i := 0; i < spineRows; i++ {
			r := testSpineRow(i)
			// Keys in spineNames order; absent and null values both
			// appear.
			vals := make([]any, len(spineNames))
			if r.user != nil {
				vals[0] = *r.user
			}
			if r.at != nil {
				vals[1] = time.UnixMicro(*r.at).UTC().Format(time.RFC3339Nano)
			}
			if r.label != nil {
				vals[2] = *r.label
			}
			if r.weight != nil {
				vals[3] = *r.weight
			}
			vals[4] = r.id
			if r.note != nil {
				vals[5] = *r.note
			}
			if r.cat != nil {
				vals[6] = *r.cat
			}
			line := []byte{'{'}
			for j, v := range vals {
				if v == nil && i%2 == 0 && i > 0 { // row 0 sets the column order
					continue // missing rather than null
				}
				if len(line) > 1 {
					line = append(line, ',')
				}
				k, _ := json.Marshal(spineNames[j])
				js, err := json.Marshal(v)
				require.NoError(t, err)
				line = append(append(append(line, k...), ':'), js...)
			}
			_, err = f.Write(append(line, '}', '\n'))
			require.NoError(t, err)
		}
		require.NoError(t, f.Close())
	default:
		recs := spineRecords(t, 5000, 3000, 2000)
		writeRecord(t, path, recs...)
		for _, r := range recs {
			r.Release()
		}
	}
}

// spineCSVCells is a spine row as pandas' to_csv writes it: bools as True
// and False, timestamps with a space and an offset, nulls as empty cells.
func spineCSVCells(r spineRow) []string {
	cells := make([]string, len(spineNames))
	if r.user != nil {
		cells[0] = *r.user
	}
	if r.at != nil {
		cells[1] = time.UnixMicro(*r.at).UTC().Format("2006-01-02 15:04:05.000000+00:00")
	}
	if r.label != nil {
		cells[2] = "False"
		if *r.label {
			cells[2] = "True"
		}
	}
	if r.weight != nil {
		cells[3] = strconv.FormatFloat(*r.weight, 'f', -1, 64)
	}
	cells[4] = strconv.FormatInt(r.id, 10)
	if r.note != nil {
		cells[5] = *r.note
	}
	if r.cat != nil {
		cells[6] = *r.cat
	}
	return cells
}

// testFeatures are the two feature columns the outputs get.
var testFeatures = []Column{{Name: "txn_count", Type: schemas.Int}, {Name: "amount_mean", Type: schemas.Float}}

// featureValues are the feature values of spine row i: a count, and a mean
// that is absent for every third row and for rows that are not valid.
func featureValues(i int, valid bool) (events.Value, events.Value) {
	count := events.Value{Kind: events.Int, I: int64(i)}
	if !valid || i%3 == 0 {
		return count, events.Value{}
	}
	return count, events.Value{Kind: events.Float, F: float64(i) / 4}
}

// TestSpineToOutput reads the test spine in every format and writes
// training sets in every output format: the spine's columns must come
// through unchanged, followed by typed feature columns with nulls where the
// values were absent.
func TestSpineToOutput(t *testing.T) {
	for _, spineExt := range []string{".parquet", ".arrow", ".arrows", ".csv", ".ndjson"} {
		spinePath := filepath.Join(t.TempDir(), "spine"+spineExt)
		writeSpine(t, spinePath)
		for _, outExt := range []string{".parquet", ".arrow", ".arrows", ".csv"} {
			t.Run(spineExt+"->"+outExt, func(t *testing.T) {
				mem := checkedMem(t)
				var spineMem, outMem memory.Allocator = mem, mem
				if spineExt == ".arrow" {
					// ipc.FileReader keeps its dictionaries (see
					// TestDictionaryStrings).
					spineMem = memory.NewGoAllocator()
				}
				if outExt == ".parquet" {
					// arrow/go v15's FileWriter.WriteBuffered never
					// releases one 256-byte level buffer per column
					// (per file, not per row group); the Go allocator
					// lets the GC reclaim them.
					outMem = memory.NewGoAllocator()
				}
				sr, err := openSpine(spinePath, "user_id", "at", spineMem)
				require.NoError(t, err)
				outPath := filepath.Join(t.TempDir(), "training"+outExt)
				ow, err := createOutput(outPath, sr, testFeatures, outMem)
				require.NoError(t, err)
				row := 0
				for {
					b, err := sr.Next()
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
					require.LessOrEqual(t, b.rows(), spineBatchRows)
					require.Positive(t, b.rows())
					counts := make([]events.Value, b.rows())
					means := make([]events.Value, b.rows())
					for i := 0; i < b.rows(); i++ {
						r := testSpineRow(row + i)
						valid := r.user != nil && r.at != nil
						require.Equal(t, valid, b.Valid[i], "row %d", row+i)
						if r.user != nil {
							require.Equal(t, *r.user, b.Entities[i])
						} else {
							require.Equal(t, "", b.Entities[i])
						}
						if r.at != nil {
							require.Equal(t, int64(math.Floor(float64(*r.at)/1000)), b.Times[i], "row %d", row+i)
						}
						counts[i], means[i] = featureValues(row+i, b.Valid[i])
					}
					require.NoError(t, ow.Write(b, [][]events.Value{counts, means}))
					row += b.rows()
				}
				require.Equal(t, spineRows, row)
				require.NoError(t, ow.Close())
				require.NoError(t, sr.Close())

				if outExt == ".csv" {
					checkCSVOutput(t, outPath, spineExt)
					return
				}
				checkColumnarOutput(t, outPath, spinePath, spineExt, outExt)
			})
		}
	}
}

// checkColumnarOutput reads a Parquet or IPC training set back with Arrow.
func checkColumnarOutput(t *testing.T, outPath, spinePath, spineExt, outExt string) {
	got := readTable(t, outPath)
	defer got.release()
	require.EqualValues(t, spineRows, got.rows())
	require.Len(t, got.schema.Fields(), len(spineNames)+2)
	for j, name := range append(append([]string(nil), spineNames...), "txn_count", "amount_mean") {
		require.Equal(t, name, got.schema.Field(j).Name)
	}

	// The spine's columns, as Arrow itself reads the spine file.
	var want *table
	switch spineExt {
	case ".csv", ".ndjson":
		want = textSpineTable(t, spineExt)
	default:
		want = readTable(t, spinePath)
	}
	defer want.release()
	for j := range spineNames {
		wt, gt := want.schema.Field(j).Type, got.schema.Field(j).Type
		if d, ok := wt.(*arrow.DictionaryType); ok {
			switch outExt {
			case ".arrow":
				wt = d.ValueType // IPC files get dictionary columns decoded
			case ".parquet":
				// Parquet readers give dictionaries int32 indices.
				wt = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: d.ValueType, Ordered: d.Ordered}
			}
		}
		require.True(t, arrow.TypeEqual(wt, gt), "column %s: %s, want %s", spineNames[j], gt, wt)
		require.Equal(t, want.cells(j), got.cells(j), "column %s", spineNames[j])
	}

	var counts, means []string
	for i := 0; i < spineRows; i++ {
		r := testSpineRow(i)
		c, m := featureValues(i, r.user != nil && r.at != nil)
		counts = append(counts, strconv.FormatInt(c.I, 10))
		if m.Present() {
			means = append(means, strconv.FormatFloat(m.F, 'g', -1, 64))
		} else {
			means = append(means, "<null>")
		}
	}
	require.Equal(t, arrow.PrimitiveTypes.Int64, got.schema.Field(len(spineNames)).Type)
	require.Equal(t, arrow.PrimitiveTypes.Float64, got.schema.Field(len(spineNames)+1).Type)
	require.Equal(t, counts, got.cells(len(spineNames)))
	require.Equal(t, means, got.cells(len(spineNames)+1))
}

// textSpineTable is what the spine reader makes of the CSV and NDJSON test
// spines: CSV columns are all utf8 with empty cells null; NDJSON columns
// are typed from their values.
func textSpineTable(t *testing.T, ext string) *table {
	mem := memory.DefaultAllocator
	types := []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.String, arrow.FixedWidthTypes.Boolean,
		arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String, arrow.BinaryTypes.String}
	if ext == ".csv" {
		for j := range types {
			types[j] = arrow.BinaryTypes.String
		}
	}
	fields := make([]arrow.Field, len(spineNames))
	for j, n := range spineNames {
		fields[j] = arrow.Field{Name: n, Type: types[j], Nullable: true}
	}
	b := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	defer b.Release()
	for i := 0; i < spineRows; i++ {
		r := testSpineRow(i)
		if ext == ".csv" {
			for j, cell := range spineCSVCells(r) {
				if cell == "" {
					b.Field(j).AppendNull()
				} else {
					b.Field(j).(*array.StringBuilder).Append(cell)
				}
			}
			continue
		}
		appendOpt(b.Field(0).(*array.StringBuilder), r.user)
		var at *string
		if r.at != nil {
			at = ptr(time.UnixMicro(*r.at).UTC().Format(time.RFC3339Nano))
		}
		appendOpt(b.Field(1).(*array.StringBuilder), at)
		if r.label == nil {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.BooleanBuilder).Append(*r.label)
		}
		if r.weight == nil {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.Float64Builder).Append(*r.weight)
		}
		b.Field(4).(*array.Int64Builder).Append(r.id)
		appendOpt(b.Field(5).(*array.StringBuilder), r.note)
		appendOpt(b.Field(6).(*array.StringBuilder), r.cat)
	}
	rec := b.NewRecord()
	return &table{schema: rec.Schema(), recs: []arrow.Record{rec}}
}

// checkCSVOutput reads a CSV training set back.
func checkCSVOutput(t *testing.T, outPath, spineExt string) {
	f, err := os.Open(outPath)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, spineRows+1)
	require.Equal(t, append(append([]string(nil), spineNames...), "txn_count", "amount_mean"), rows[0])
	for i := 0; i < spineRows; i++ {
		r := testSpineRow(i)
		cells := rows[i+1]
		switch spineExt {
		case ".csv":
			require.Equal(t, spineCSVCells(r), cells[:len(spineNames)], "row %d", i)
		default:
			want := make([]string, len(spineNames))
			if r.user != nil {
				want[0] = *r.user
			}
			if r.at != nil {
				layout := "2006-01-02T15:04:05.000000Z07:00" // the column's µs
				if spineExt == ".ndjson" {
					layout = time.RFC3339Nano // a string column, as is
				}
				want[1] = time.UnixMicro(*r.at).UTC().Format(layout)
			}
			if r.label != nil {
				want[2] = strconv.FormatBool(*r.label)
			}
			if r.weight != nil {
				want[3] = string(events.Value{Kind: events.Float, F: *r.weight}.AppendJSON(nil))
			}
			want[4] = strconv.FormatInt(r.id, 10)
			if r.note != nil {
				want[5] = *r.note
			}
			if r.cat != nil {
				want[6] = *r.cat
			}
			require.Equal(t, want, cells[:len(spineNames)], "row %d", i)
		}
		c, m := featureValues(i, r.user != nil && r.at != nil)
		require.Equal(t, strconv.FormatInt(c.I, 10), cells[len(spineNames)])
		if m.Present() {
			require.Equal(t, string(m.AppendJSON(nil)), cells[len(spineNames)+1])
		} else {
			require.Equal(t, "", cells[len(spineNames)+1])
		}
	}
}

// TestSpineColumns reads entity and time columns of every accepted type.
func TestSpineColumns(t *testing.T) {
	cases := []struct {
		name          string
		entity, at    arrow.DataType
		entVals, vals string
		wantEntities  []string
		wantTimes     []int64
		wantValid     []bool
	}{
		{"int64 entity, epoch ms", arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int64,
			`[42, -7, null]`, `[1717027202123, null, 5]`,
			[]string{"42", "-7", ""}, []int64{1717027202123, 0, 5}, []bool{true, false, false}},
		{"uint64 entity, RFC 3339", arrow.PrimitiveTypes.Uint64, arrow.BinaryTypes.String,
			`[18446744073709551615, 1, 2]`, `["2024-05-30T02:00:02.5+02:00", "not a time", "2024-05-30 00:00:02"]`,
			[]string{"18446744073709551615", "1", "2"}, []int64{1717027202500, 0, 1717027202000}, []bool{true, false, true}},
		{"int32 entity, timestamp s UTC", arrow.PrimitiveTypes.Int32, &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"},
			`[1, 2, 3]`, `[1717027202, -1, null]`,
			[]string{"1", "2", "3"}, []int64{1717027202000, -1000, 0}, []bool{true, true, false}},
		{"large string entity, ns", arrow.BinaryTypes.LargeString, &arrow.TimestampType{Unit: arrow.Nanosecond},
			`["a", "", "c"]`, `[1717027202123999999, -1, 0]`,
			[]string{"a", "", "c"}, []int64{1717027202123, -1, 0}, []bool{true, true, true}},
		{"date32", arrow.BinaryTypes.String, arrow.FixedWidthTypes.Date32,
			`["a", "b", "c"]`, `[19873, null, 0]`,
			[]string{"a", "b", "c"}, []int64{19873 * msPerDay, 0, 0}, []bool{true, false, true}},
	}
	for _, tc := range cases {
		for _, ext := range columnarExts {
			t.Run(tc.name+ext, func(t *testing.T) {
				e := column(t, tc.entity, tc.entVals)
				defer e.Release()
				at := column(t, tc.at, tc.vals)
				defer at.Release()
				rec := record(t, []string{"entity", "at"}, e, at)
				defer rec.Release()
				path := filepath.Join(t.TempDir(), "spine"+ext)
				writeRecord(t, path, rec)
				sr, err := openSpine(path, "entity", "at", checkedMem(t))
				require.NoError(t, err)
				defer sr.Close()
				b, err := sr.Next()
				require.NoError(t, err)
				require.Equal(t, tc.wantEntities, b.Entities)
				require.Equal(t, tc.wantValid, b.Valid)
				for i, v := range tc.wantValid {
					if v {
						require.Equal(t, tc.wantTimes[i], b.Times[i], "row %d", i)
					}
				}
				_, err = sr.Next()
				require.Equal(t, io.EOF, err)
			})
		}
	}
}

func TestSpineErrors(t *testing.T) {
	dir := t.TempDir()
	ids := column(t, arrow.BinaryTypes.String, `["a"]`)
	defer ids.Release()
	floats := column(t, arrow.PrimitiveTypes.Float64, `[1.5]`)
	defer floats.Release()
	bools := column(t, arrow.FixedWidthTypes.Boolean, `[true]`)
	defer bools.Release()
	rec := record(t, []string{"user_id", "at", "flag"}, ids, floats, bools)
	defer rec.Release()
	path := filepath.Join(dir, "spine.parquet")
	writeRecord(t, path, rec)

	_, err := OpenSpine(path, "entity", "at")
	require.EqualError(t, err, path+": no column entity (columns: user_id, at, flag)")
	_, err = OpenSpine(path, "user_id", "at")
	require.EqualError(t, err, path+": column at has type float64, which cannot be a spine time column (expected timestamp, integer epoch ms, RFC 3339 string or date)")
	_, err = OpenSpine(path, "flag", "user_id")
	require.EqualError(t, err, path+": column flag has type bool, which cannot be an entity column (expected string or integer)")
	_, err = OpenSpine(filepath.Join(dir, "spine.txt"), "a", "b")
	require.ErrorContains(t, err, "unsupported file format")

	csvPath := writeFile(t, "spine.csv", "user_id,at,x\na,1,2\nb,2\n")
	sr, err := OpenSpine(csvPath, "user_id", "at")
	require.NoError(t, err)
	_, err = sr.Next()
	require.EqualError(t, err, csvPath+":3: row has 2 cells, the header has 3")
	_, again := sr.Next()
	require.Equal(t, err, again, "a fatal error is sticky")
	require.NoError(t, sr.Close())

	ndPath := writeFile(t, "spine.ndjson", `{"user_id":"a","at":1}`+"\n"+`{"user_id":"b","at":2.5}`+"\n")
	_, err = OpenSpine(ndPath, "user_id", "at")
	require.EqualError(t, err, ndPath+": column at has type float64, which cannot be a spine time column (expected timestamp, integer epoch ms, RFC 3339 string or date)")

	badJSON := writeFile(t, "spine.ndjson", `{"user_id":"a","at":1}`+"\n"+`{"user_id":`+"\n")
	_, err = OpenSpine(badJSON, "user_id", "at")
	require.ErrorContains(t, err, badJSON+":2: invalid JSON")
}

// TestOutputErrors checks what CreateOutput and Write refuse.
func TestOutputErrors(t *testing.T) {
	dir := t.TempDir()
	spinePath := writeFile(t, "spine.csv", "user_id,at\na,1\nb,2\n")
	sr, err := OpenSpine(spinePath, "user_id", "at")
	require.NoError(t, err)
	defer sr.Close()

	_, err = CreateOutput(spinePath, sr, testFeatures)
	require.ErrorContains(t, err, "the output would overwrite the spine")
	_, err = CreateOutput(filepath.Join(dir, "out.ndjson"), sr, testFeatures)
	require.ErrorContains(t, err, "cannot be written as NDJSON")
	_, err = CreateOutput(filepath.Join(dir, "out.parquet"), sr, []Column{{Name: "at", Type: schemas.Int}})
	require.ErrorContains(t, err, "feature column at: the name is already taken")
	_, err = CreateOutput(filepath.Join(dir, "out.parquet"), sr, []Column{{Name: "f", Type: "decimal"}})
	require.ErrorContains(t, err, `feature column f: unknown field type "decimal"`)

	w, err := CreateOutput(filepath.Join(dir, "out.arrows"), sr, testFeatures)
	require.NoError(t, err)
	b, err := sr.Next()
	require.NoError(t, err)
	err = w.Write(b, [][]events.Value{make([]events.Value, 2)})
	require.ErrorContains(t, err, "values for 1 feature columns, the output has 2")
	err = w.Write(b, [][]events.Value{make([]events.Value, 2), make([]events.Value, 1)})
	require.ErrorContains(t, err, "feature column amount_mean has 1 values for 2 spine rows")
	err = w.Write(b, [][]events.Value{{{Kind: events.String, S: "x"}, {}}, make([]events.Value, 2)})
	require.ErrorContains(t, err, "column txn_count, row 0: a string value cannot go in a column of type int")
	require.ErrorContains(t, w.Write(b, nil), "column txn_count, row 0", "a failed write is sticky")
	require.NoError(t, w.Close())

	w, err = CreateOutput(filepath.Join(dir, "out2.parquet"), sr, nil)
	require.NoError(t, err)
	_, err = sr.Next()
	require.Equal(t, io.EOF, err)
	require.ErrorContains(t, w.Write(b, nil), "spine batch used after the spine reader's next Next or Close")
	require.NoError(t, w.Close())
}
