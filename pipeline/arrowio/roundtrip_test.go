package arrowio

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
)

func TestSupported(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"a.parquet", true}, {"dir/A.PARQUET", true}, {"a.arrow", true}, {"a.feather", true},
		{"a.arrows", true}, {"a.csv", true}, {"a.csv.gz", true}, {"a.csv.zst", true},
		{"a.ndjson", true}, {"a.jsonl", true}, {"a.ndjson.gz", true}, {"a.jsonl.zst", true},
		{"a.json", false}, {"a.txt", false}, {"a.parquet.gz", false}, {"a.arrow.zst", false},
		{"a.gz", false}, {"parquet", false}, {"", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := Supported(tc.path)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.path+": unsupported file format")
			require.Contains(t, err.Error(), ".parquet, .arrow, .feather, .arrows, .csv, .ndjson and .jsonl")
		})
	}
}

func TestRowErrorMessage(t *testing.T) {
	e := &RowError{File: "events.csv", Row: 12, Field: "amount", Reason: `expected float, got "abc"`}
	require.Equal(t, `events.csv:12: field amount: expected float, got "abc"`, e.Error())
	e.Field = ""
	require.Equal(t, `events.csv:12: expected float, got "abc"`, e.Error())
}

// TestRoundTrip writes events of every field type to every writable format
// and reads them back: they must equal the originals, and what events.Decode
// makes of their normalized JSON.
func TestRoundTrip(t *testing.T) {
	typ := testType(t)
	want := decodeLines(t, typ, testLines)
	for _, ext := range []string{".parquet", ".arrow", ".feather", ".arrows", ".csv", ".csv.gz", ".csv.zst",
		".ndjson", ".jsonl", ".jsonl.gz", ".ndjson.zst"} {
		for _, rowsPerGroup := range []int{0, 1, 3} {
			t.Run(ext+"/"+strings.Repeat("r", rowsPerGroup), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "history"+ext)
				require.NoError(t, writeEvents(path, typ, want, rowsPerGroup, checkedMem(t)))

				res := readEvents(t, path, typ)
				require.NoError(t, res.err)
				require.Empty(t, res.rowErrors)
				require.Equal(t, want, res.events)
				require.EqualValues(t, len(want), res.rows)
				for i, ev := range res.events {
					fromJSON, err := events.Decode(typ, ev.AppendJSON(nil))
					require.NoError(t, err)
					require.Equal(t, fromJSON, ev, "event %d", i)
				}
			})
		}
	}
}

func TestRoundTripEmpty(t *testing.T) {
	typ := testType(t)
	for _, ext := range []string{".parquet", ".arrow", ".arrows", ".csv", ".ndjson"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "empty"+ext)
			require.NoError(t, writeEvents(path, typ, nil, 0, checkedMem(t)))
			res := readEvents(t, path, typ)
			require.NoError(t, res.err)
			require.Empty(t, res.events)
			require.Empty(t, res.rowErrors)
		})
	}
}

func TestProgressAndRows(t *testing.T) {
	typ := testType(t)
	evs := make([]events.Event, 0, 3000)
	base := decodeLines(t, typ, testLines)
	for len(evs) < cap(evs) {
		evs = append(evs, base...)
	}
	for _, ext := range []string{".parquet", ".arrow", ".arrows", ".csv.gz", ".ndjson"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p"+ext)
			require.NoError(t, WriteEvents(path, typ, evs, 500))
			r, err := OpenEvents(path, typ)
			require.NoError(t, err)
			defer r.Close()
			// A progress bar polls from another goroutine.
			stop := make(chan struct{})
			polled := make(chan struct{})
			go func() {
				defer close(polled)
				for {
					select {
					case <-stop:
						return
					default:
						r.Progress()
					}
				}
			}()
			defer func() { close(stop); <-polled }()
			done, total := r.Progress()
			require.Positive(t, total)
			require.LessOrEqual(t, done, total)
			last := done
			for n := 0; ; n++ {
				_, err := r.Next()
				if err != nil {
					require.ErrorIs(t, err, io.EOF)
					break
				}
				done, total2 := r.Progress()
				require.Equal(t, total, total2)
				require.GreaterOrEqual(t, done, last, "progress never goes back")
				require.LessOrEqual(t, done, total)
				last = done
				require.EqualValues(t, n+1, r.Rows())
			}
			done, _ = r.Progress()
			require.Equal(t, total, done, "progress ends at the file size")
			require.EqualValues(t, len(evs), r.Rows())
		})
	}
}

func TestWriteEventsErrors(t *testing.T) {
	typ := testType(t)
	dir := t.TempDir()
	ev := decodeLines(t, typ, testLines[:1])[0]

	err := WriteEvents(filepath.Join(dir, "x.txt"), typ, nil, 0)
	require.ErrorContains(t, err, "x.txt: unsupported file format")

	short := ev
	short.Values = short.Values[:2]
	err = WriteEvents(filepath.Join(dir, "x.parquet"), typ, []events.Event{short}, 0)
	require.ErrorContains(t, err, "event 0 has 2 values")

	wrong := ev
	wrong.Values = append([]events.Value(nil), ev.Values...)
	f, _ := typ.Field("items")
	wrong.Values[f.Index] = events.Value{Kind: events.String, S: "x"}
	err = WriteEvents(filepath.Join(dir, "x.arrow"), typ, []events.Event{wrong}, 0)
	require.ErrorContains(t, err, "column items, row 0: a string value cannot go in a column of type int")
}
