package arrowio

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
)

// writeFile writes data to name in a new temporary directory, compressed by
// the name's .gz or .zst suffix, and returns its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	var buf bytes.Buffer
	switch filepath.Ext(name) {
	case ".gz":
		w := gzip.NewWriter(&buf)
		_, err := w.Write([]byte(data))
		require.NoError(t, err)
		require.NoError(t, w.Close())
	case ".zst":
		w, err := zstd.NewWriter(&buf)
		require.NoError(t, err)
		_, err = w.Write([]byte(data))
		require.NoError(t, err)
		require.NoError(t, w.Close())
	default:
		buf.WriteString(data)
	}
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	return path
}

// TestCSVCells checks the conversion of single cells, field type by field
// type: an empty cell is missing for every type.
func TestCSVCells(t *testing.T) {
	typ := smallType(t)
	cases := []struct {
		field, cell string
		want        events.Value
		err         string
	}{
		{"id", "", events.Value{}, "required field is missing (empty cell)"},
		{"id", " padded ", str(" padded "), ""},
		{"id", "a\xffb", events.Value{}, `invalid UTF-8: byte 0xff after "a"; send text as UTF-8`},
		{"n", "", events.Value{}, ""},
		{"n", "-42", integer(-42), ""},
		{"n", "+7", integer(7), ""},
		{"n", " 7 ", integer(7), ""},
		{"n", "9223372036854775807", integer(9223372036854775807), ""},
		{"n", "9223372036854775808", events.Value{}, "expected int, got 9223372036854775808 (out of int64 range)"},
		{"n", "1.0", integer(1), ""}, // pandas writes ints with missing values so
		{"n", "-3.000", integer(-3), ""},
		{"n", "1.5", events.Value{}, `expected int, got "1.5"`},
		{"n", ".0", events.Value{}, `expected int, got ".0"`},
		{"n", "1e3", events.Value{}, `expected int, got "1e3"`},
		{"n", "abc", events.Value{}, `expected int, got "abc"`},
		{"n", "1_000", events.Value{}, `expected int, got "1_000"`},
		{"x", "", events.Value{}, ""},
		{"x", "1.5", flt(1.5), ""},
		{"x", "-3", flt(-3), ""},
		{"x", "1e-3", flt(0.001), ""},
		{"x", ".5", flt(0.5), ""},
		{"x", "1e400", events.Value{}, "expected float, got 1e400 (out of float64 range)"},
		{"x", "NaN", events.Value{}, `expected float, got "NaN"`},
		{"x", "nan", events.Value{}, `expected float, got "nan"`},
		{"x", "Inf", events.Value{}, `expected float, got "Inf"`},
		{"x", "-infinity", events.Value{}, `expected float, got "-infinity"`},
		{"x", "0x1p-2", events.Value{}, `expected float, got "0x1p-2"`},
		{"x", "abc", events.Value{}, `expected float, got "abc"`},
		{"x", "1.2.3", events.Value{}, `expected float, got "1.2.3"`},
		{"ok", "", events.Value{}, ""},
		{"ok", "true", boolean(true), ""},
		{"ok", "True", boolean(true), ""},
		{"ok", "TRUE", boolean(true), ""},
		{"ok", "false", boolean(false), ""},
		{"ok", "False", boolean(false), ""},
		{"ok", "FALSE", boolean(false), ""},
		{"ok", "1", events.Value{}, `expected bool, got "1"`},
		{"ok", "yes", events.Value{}, `expected bool, got "yes"`},
		{"at", "", events.Value{}, ""},
		{"at", "2024-05-30T00:00:02Z", ms(1717027202000), ""},
		{"at", "2024-05-30T02:00:02.5+02:00", ms(1717027202500), ""},
		{"at", "2024-05-30 00:00:02", ms(1717027202000), ""},
		{"at", "2024-05-30 00:00:02.123", ms(1717027202123), ""},
		{"at", "2024-05-30 00:00:02.123456+00:00", ms(1717027202123), ""},
		{"at", "2024-05-30 02:00:02+02:00", ms(1717027202000), ""},
		{"at", "2024-05-29 19:00:02-05:00", ms(1717027202000), ""},
		{"at", "1717027202123", ms(1717027202123), ""},
		{"at", "-1", ms(-1), ""},
		{"at", "1969-12-31T23:59:59.9995Z", ms(-1), ""},
		{"at", "2024-05-30", events.Value{}, `expected timestamp (RFC 3339, "YYYY-MM-DD HH:MM:SS" or integer epoch milliseconds), got "2024-05-30"`},
		{"at", "2024-13-30T00:00:00Z", events.Value{}, `invalid timestamp "2024-13-30T00:00:00Z": month out of range`},
		{"at", "2024-05-30 25:00:00", events.Value{}, `invalid timestamp "2024-05-30 25:00:00": hour out of range`},
		{"at", "1.5", events.Value{}, `expected timestamp (RFC 3339, "YYYY-MM-DD HH:MM:SS" or integer epoch milliseconds), got "1.5"`},
	}
	for _, tc := range cases {
		t.Run(tc.field+"="+tc.cell, func(t *testing.T) {
			id := "r"
			if tc.field == "id" {
				id = tc.cell
			}
			data := "id,ts,n,x,ok,at\n"
			cells := map[string]string{"id": id, "ts": "5"}
			cells[tc.field] = tc.cell
			data += csvLine(cells["id"], cells["ts"], cells["n"], cells["x"], cells["ok"], cells["at"])
			path := writeFile(t, "events.csv", data)
			res := readEvents(t, path, typ)
			require.NoError(t, res.err)
			if tc.err != "" {
				require.Empty(t, res.events)
				require.Len(t, res.rowErrors, 1)
				got := *res.rowErrors[0]
				got.Raw = nil
				require.Equal(t, RowError{File: path, Row: 2, Field: tc.field, Reason: tc.err}, got)
				return
			}
			require.Empty(t, res.rowErrors)
			vals := map[string]events.Value{"id": str("r"), "ts": ms(5)}
			vals[tc.field] = tc.want
			require.Equal(t, []events.Event{want(typ, vals)}, res.events)
		})
	}
}

// csvLine quotes every cell, so that a cell with spaces stays as is.
func csvLine(cells ...string) string {
	var b bytes.Buffer
	for i, c := range cells {
		if i > 0 {
			b.WriteByte(',')
		}
		if c != "" {
			b.WriteString(`"` + c + `"`)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// TestCSVFile reads a whole CSV file with the problems real files have:
// quoted commas and newlines, a byte order mark, rows of the wrong width,
// CRLF line ends, bad cells, pandas timestamps and missing values; each bad
// row is reported by line and reading goes on.
func TestCSVFile(t *testing.T) {
	typ := smallType(t)
	const data = "\uFEFFid,extra,ts,n,x,ok,at\r\n" + // line 1
		`a,"quoted, comma",2024-05-30 00:00:02,1,1.5,True,` + "\r\n" + // line 2
		`b,"multi` + "\n" + `line ""cell""",1717027202000,,,,2024-05-30 00:00:02.5+00:00` + "\n" + // lines 3-4
		"c,x,1,2\n" + // line 5: too few cells
		"d,x,1,2,3,true,1,extra\n" + // line 6: too many
		"\n" + // line 7: blank, skipped
		"e,x,1,abc,3,true,1\n" + // line 8: bad int
		"f,x,,1,1,true,1\n" + // line 9: required ts missing
		`g,"unterminated,1,1,1,true,1` + "\n" // lines 10-: bad quote to the end
	path := writeFile(t, "events.csv", data)
	res := readEvents(t, path, typ)
	require.NoError(t, res.err)
	require.Equal(t, []events.Event{
		want(typ, map[string]events.Value{"id": str("a"), "ts": ms(1717027202000), "n": integer(1), "x": flt(1.5), "ok": boolean(true)}),
		want(typ, map[string]events.Value{"id": str("b"), "ts": ms(1717027202000), "at": ms(1717027202500)}),
	}, res.events)
	var got []string
	for _, e := range res.rowErrors {
		got = append(got, e.Error())
	}
	require.Equal(t, []string{
		path + ":5: row has 4 cells, the header has 7",
		path + ":6: row has 8 cells, the header has 7",
		path + `:8: field n: expected int, got "abc"`,
		path + ":9: field ts: required field is missing (empty cell)",
		path + `:10: invalid CSV: extraneous or missing " in quoted-field`,
	}, got)
	require.EqualValues(t, 7, res.rows)
}

func TestCSVHeaderErrors(t *testing.T) {
	typ := smallType(t)
	for _, tc := range []struct{ name, data, err string }{
		{"empty", "", "empty file: no CSV header row"},
		{"missing required", "id,n\na,1\n", "no column for required field ts"},
		{"bad header", "id,\"ts\n", "reading CSV header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "events.csv", tc.data)
			_, err := OpenEvents(path, typ)
			require.ErrorContains(t, err, path+": "+tc.err)
		})
	}
}

// TestCompressedText reads gzip and zstd text, and fails clearly on data
// that is not compressed as its name says.
func TestCompressedText(t *testing.T) {
	typ := smallType(t)
	for _, name := range []string{"e.csv.gz", "e.csv.zst"} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, name, "id,ts\na,1\nb,2\n")
			res := readEvents(t, path, typ)
			require.NoError(t, res.err)
			require.Len(t, res.events, 2)
		})
	}
	for _, name := range []string{"e.ndjson.gz", "e.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, name, `{"id":"a","ts":1}`+"\n")
			res := readEvents(t, path, typ)
			require.NoError(t, res.err)
			require.Len(t, res.events, 1)
		})
	}
	t.Run("not gzip", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "e.csv.gz")
		require.NoError(t, os.WriteFile(path, []byte("id,ts\na,1\n"), 0o644))
		_, err := OpenEvents(path, typ)
		require.ErrorContains(t, err, path+": not gzip data")
	})
	t.Run("not zstd", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "e.ndjson.zst")
		require.NoError(t, os.WriteFile(path, []byte(`{"id":"a","ts":1}`+"\n"), 0o644))
		res := readEvents(t, path, typ)
		require.Error(t, res.err)
		require.Contains(t, res.err.Error(), path)
	})
	t.Run("truncated gzip", func(t *testing.T) {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		for i := 0; i < 2000; i++ {
			w.Write([]byte(`{"id":"a","ts":1}` + "\n"))
		}
		w.Close()
		path := filepath.Join(t.TempDir(), "e.ndjson.gz")
		require.NoError(t, os.WriteFile(path, buf.Bytes()[:buf.Len()/2], 0o644))
		res := readEvents(t, path, typ)
		require.Error(t, res.err)
		require.Contains(t, res.err.Error(), path)
	})
}

func TestNDJSON(t *testing.T) {
	typ := smallType(t)
	const data = `{"id":"a","ts":1,"n":2}` + "\n" + // line 1
		"\n" + // 2: blank
		"   \r\n" + // 3: blank
		`{"id":"b","ts":"2024-05-30T00:00:02Z","x":3}` + "\r\n" + // 4
		`{"id":"c","ts":1,"n":"two"}` + "\n" + // 5
		`not json` + "\n" + // 6
		`{"ts":1}` + "\n" + // 7
		`{"id":"d","ts":4}` // 8, no final newline
	path := writeFile(t, "events.ndjson", data)
	res := readEvents(t, path, typ)
	require.NoError(t, res.err)
	require.Equal(t, decodeLines(t, typ, []string{
		`{"id":"a","ts":1,"n":2}`, `{"id":"b","ts":"2024-05-30T00:00:02Z","x":3}`, `{"id":"d","ts":4}`,
	}), res.events)
	require.Len(t, res.rowErrors, 3)
	require.Equal(t, &RowError{File: path, Row: 5, Field: "n", Reason: "expected int, got string", Raw: []byte(`{"id":"c","ts":1,"n":"two"}`)}, res.rowErrors[0])
	require.Equal(t, int64(6), res.rowErrors[1].Row)
	require.Contains(t, res.rowErrors[1].Reason, "invalid JSON")
	require.Equal(t, &RowError{File: path, Row: 7, Field: "id", Reason: "required field is missing", Raw: []byte(`{"ts":1}`)}, res.rowErrors[2])
	require.EqualValues(t, 6, res.rows)
}

// TestNDJSONLongLine reads a line longer than the read buffer.
func TestNDJSONLongLine(t *testing.T) {
	typ := smallType(t)
	long := bytes.Repeat([]byte("é"), 100_000)
	data := `{"id":"a","ts":1}` + "\n" + `{"id":"` + string(long) + `","ts":2}` + "\n" + `{"id":"c","ts":3}`
	path := writeFile(t, "events.jsonl", data)
	res := readEvents(t, path, typ)
	require.NoError(t, res.err)
	require.Len(t, res.events, 3)
	require.Equal(t, string(long), res.events[1].Values[0].S)
}
