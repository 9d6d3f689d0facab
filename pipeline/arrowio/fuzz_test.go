package arrowio

// Fuzz targets for the replay readers (issue #13, section 7): Parquet, Arrow
// IPC file and stream, CSV, and gzip and zstd framing over NDJSON. Each
// input is the whole content of a file, written under the format's
// extension and read twice: by an EventReader of testType, as a replay
// reads it, and by a SpineReader on user_id and ts, which shares the
// byte-level readers (openRecords, openText) but not the conversions.
//
// Properties checked on every input (fuzzReadEvents, fuzzReadSpine,
// fuzzAgree):
//
//   - no panic and no runtime crash (out of memory, stack overflow);
//   - every error names the file and says more than that; a fatal error is
//     returned again by every later Next, and so is io.EOF;
//   - every event read is a valid event of its type (kinds, required
//     fields, finite floats, valid UTF-8, Time from the event-time field)
//     whose normalized JSON events.Decode reads back to the same event, as
//     live ingestion would;
//   - RowErrors name the file, a declared field or none, and their row:
//     for Parquet and Arrow the row's index, for text a line that grows;
//   - Rows() counts every event and RowError, and Progress is complete at
//     io.EOF;
//   - when a read ends cleanly, no Arrow memory is left allocated, and the
//     two readers agree on the rows, and on the entity and time of every
//     valid event.
//
// Each target adds what is cheap to check for its format: Parquet reads as
// many rows as its footer says; CSV as many as encoding/csv finds records;
// compressed NDJSON exactly what its decompressed text reads as, fails
// when the data is corrupt, and allocates in proportion to its text.

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// fuzzMaxRows stops reading an input after this many rows. A few bytes of
// Parquet or IPC can rightly describe millions of null rows, which would
// slow the fuzzer down without exercising anything new; the properties
// about whole reads are then not checked.
const fuzzMaxRows = 1 << 16

func FuzzParquet(f *testing.F) {
	typ := testType(f)
	for _, seed := range fuzzColumnarSeeds(f, typ, ".parquet") {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFuzzInput(t, dir, "history.parquet", data)
		evs := fuzzReadEvents(t, path, typ, len(data), true)
		sp := fuzzReadSpine(t, path)
		fuzzAgree(t, evs, sp)
		if evs.complete() && evs.footerRows >= 0 {
			require.EqualValues(t, evs.footerRows, len(evs.rows), "rows read against the footer's count")
		}
	})
}

func FuzzIPCFile(f *testing.F) {
	typ := testType(f)
	for _, seed := range fuzzColumnarSeeds(f, typ, ".arrow") {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFuzzInput(t, dir, "history.arrow", data)
		fuzzAgree(t, fuzzReadEvents(t, path, typ, len(data), true), fuzzReadSpine(t, path))
	})
}

func FuzzIPCStream(f *testing.F) {
	typ := testType(f)
	for _, seed := range fuzzColumnarSeeds(f, typ, ".arrows") {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFuzzInput(t, dir, "history.arrows", data)
		fuzzAgree(t, fuzzReadEvents(t, path, typ, len(data), true), fuzzReadSpine(t, path))
	})
}

func FuzzCSV(f *testing.F) {
	typ := testType(f)
	path := filepath.Join(f.TempDir(), "seed.csv")
	require.NoError(f, WriteEvents(path, typ, decodeLines(f, typ, testLines), 0))
	written, err := os.ReadFile(path)
	require.NoError(f, err)
	for _, s := range []string{
		string(written),
		string(written[:len(written)/2]),
		"\uFEFFts,user_id,amount,items,card_present\r\n2024-05-30 00:00:02,u_1,1.5,12.0,TRUE\r\n" +
			"1717027202123,u_2,,-3,False\r\n2024-05-30T00:00:01.5+02:00,u_3,1e400,1.5,yes\r\n",
		"ts,user_id,note\n1,\"u \"\"1\"\"\",\"multi\nline, with comma\"\n2,u_2,\"unclosed\n3,u_3,x\n",
		"ts,user_id\n1,u\"1\n2\n3,u,extra\n\n4,u_4\n",
		"user_id,ts,seen_at\n u ,  2024-05-30 00:00:02+05:30 ,1969-12-31 23:59:59.999\n",
		"ts,user_id,user_id,ts\n1,a,b,2\n",
		"ts,user_id\n",
		"\uFEFF",
		"",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFuzzInput(t, dir, "history.csv", data)
		evs := fuzzReadEvents(t, path, typ, len(data), false)
		fuzzAgree(t, evs, fuzzReadSpine(t, path))
		if n, ok := csvRecords(data); ok && evs.complete() {
			require.Equal(t, n, len(evs.rows), "rows read against the records encoding/csv finds after the header")
		}
		for _, row := range evs.rows {
			if row.err != nil {
				require.GreaterOrEqual(t, row.err.Row, int64(2), "a CSV row before the header's line: %v", row.err)
			}
		}
	})
}

// FuzzCompressed fuzzes the bytes of a compressed NDJSON file, read both as
// .ndjson.gz and as .ndjson.zst.
func FuzzCompressed(f *testing.F) {
	typ := testType(f)
	for _, seed := range fuzzCompressedSeeds(f, typ) {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ext := range []string{".gz", ".zst"} {
			path := writeFuzzInput(t, dir, "history.ndjson"+ext, data)
			plain, status := decompress(ext, data)

			before := heapAllocs()
			evs := fuzzReadEvents(t, path, typ, len(data), false)
			allocated := heapAllocs() - before
			// Decompression needs a window (gzip 32 KiB; zstd at most
			// 128 MiB, the most zstd -d accepts without --memory) and
			// buffers; the rest is in proportion to the text.
			if status != decompressUnknown {
				limit := uint64(160<<20 + 512*len(plain))
				require.LessOrEqual(t, allocated, limit,
					"%s: reading %d compressed bytes of %d bytes of text allocated %d MiB", ext, len(data), len(plain), allocated>>20)
			}
			fuzzAgree(t, evs, fuzzReadSpine(t, path))

			switch {
			case evs.capped || status == decompressUnknown:
			case status == decompressCorrupt:
				require.Error(t, evs.err, "%s: corrupt data (%d bytes decompressed) read without error", ext, len(plain))
			default:
				require.NoError(t, evs.err, "%s: the data decompresses without error", ext)
				text := writeFuzzInput(t, dir, "history.ndjson", plain)
				want := fuzzReadEvents(t, text, typ, len(plain), false)
				require.NoError(t, want.err)
				require.Len(t, evs.rows, len(want.rows), "%s: rows against the decompressed text", ext)
				for i, w := range want.rows {
					g := evs.rows[i]
					if w.err == nil {
						require.Nil(t, g.err, "%s: row %d", ext, i)
						requireSameEvent(t, w.ev, g.ev)
						continue
					}
					require.NotNil(t, g.err, "%s: row %d", ext, i)
					require.Equal(t, w.err.Row, g.err.Row, "%s: row %d", ext, i)
					require.Equal(t, w.err.Field, g.err.Field, "%s: row %d", ext, i)
					require.Equal(t, w.err.Reason, g.err.Reason, "%s: row %d", ext, i)
					require.Equal(t, w.err.Raw, g.err.Raw, "%s: row %d", ext, i)
				}
			}
		}
	})
}

// writeFuzzInput writes data to a file named name in dir and returns its
// path. Each fuzzing worker is a process of its own, running one input at
// a time, so the target's f.TempDir can be reused from input to input:
// making a directory per input would take most of an input's time.
func writeFuzzInput(t *testing.T, dir, name string, data []byte) string {
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

// fuzzRow is one row as the EventReader returned it: an event, or err.
type fuzzRow struct {
	ev  events.Event
	err *RowError
}

type fuzzEvents struct {
	rows       []fuzzRow
	err        error // the open or fatal error
	capped     bool  // reading stopped at fuzzMaxRows
	footerRows int64 // a Parquet footer's row count; -1 for other formats
}

// complete reports whether the file was read to its end without error.
func (e fuzzEvents) complete() bool { return e.err == nil && !e.capped }

// fuzzReadEvents reads the file at path, of size bytes, as events of typ
// and checks what every read must satisfy (see the top of the file).
// arrowRows says that RowError.Row is the row's index (Parquet, Arrow)
// rather than a line (CSV, NDJSON).
func fuzzReadEvents(t *testing.T, path string, typ *schemas.Event, size int, arrowRows bool) fuzzEvents {
	res := fuzzEvents{footerRows: -1}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	r, err := openEvents(path, typ, mem)
	if err != nil {
		requireNamesFile(t, err, path)
		res.err = err
		return res
	}
	if ae, ok := r.src.(*arrowEvents); ok {
		if ps, ok := ae.src.(*parquetSource); ok {
			res.footerRows = ps.rdr.NumRows()
		}
	}
	var line int64 // the line of the last text RowError
	for res.err == nil {
		if len(res.rows) == fuzzMaxRows {
			res.capped = true
			break
		}
		ev, err := r.Next()
		if err == io.EOF {
			_, again := r.Next()
			require.Equal(t, io.EOF, again, "io.EOF is not sticky")
			done, total := r.Progress()
			require.EqualValues(t, size, total, "Progress: the file's size")
			require.Equal(t, total, done, "Progress at io.EOF")
			break
		}
		var re *RowError
		switch {
		case err == nil:
			requireValidEvent(t, typ, ev)
			res.rows = append(res.rows, fuzzRow{ev: ev})
		case errors.As(err, &re):
			require.Same(t, re, err, "a RowError is returned as is")
			require.Equal(t, path, re.File)
			require.NotEmpty(t, strings.TrimSpace(re.Reason), "RowError without a reason: %v", re)
			if re.Field != "" {
				_, ok := typ.Field(re.Field)
				require.True(t, ok, "RowError names field %q, not a field of %s: %v", re.Field, typ.Name, re)
			}
			if arrowRows {
				require.EqualValues(t, len(res.rows)+1, re.Row, "RowError of row %d: %v", len(res.rows)+1, re)
			} else {
				require.Greater(t, re.Row, line, "RowError lines must grow: %v", re)
				line = re.Row
			}
			res.rows = append(res.rows, fuzzRow{err: re})
		default:
			requireNamesFile(t, err, path)
			_, again := r.Next()
			require.Equal(t, err, again, "a fatal error is not sticky")
			res.err = err
		}
	}
	require.EqualValues(t, len(res.rows), r.Rows(), "Rows() against the rows returned")
	require.NoError(t, r.Close())
	if res.complete() && leaksNothing(path) {
		require.Zero(t, mem.CurrentAlloc(), "Arrow memory left allocated after a clean read")
	}
	return res
}

// requireValidEvent checks that ev is an event of typ as events.Decode
// would build it, and that its normalized JSON decodes back to it.
func requireValidEvent(t *testing.T, typ *schemas.Event, ev events.Event) {
	require.Same(t, typ, ev.Type)
	require.Len(t, ev.Values, len(typ.Fields))
	kinds := map[schemas.FieldType]events.Kind{
		schemas.String: events.String, schemas.Int: events.Int, schemas.Float: events.Float,
		schemas.Bool: events.Bool, schemas.Timestamp: events.Time,
	}
	for _, fd := range typ.Fields {
		v := ev.Values[fd.Index]
		if !v.Present() {
			require.False(t, fd.Required, "required field %s is absent", fd.Name)
			continue
		}
		require.Equal(t, kinds[fd.Type], v.Kind, "field %s", fd.Name)
		switch v.Kind {
		case events.Float:
			require.False(t, math.IsNaN(v.F) || math.IsInf(v.F, 0), "field %s: %v", fd.Name, v.F)
		case events.String:
			require.True(t, utf8.ValidString(v.S), "field %s: invalid UTF-8 %q", fd.Name, v.S)
		}
		if fd.Name == typ.Timestamp {
			require.Equal(t, v.I, ev.Time, "Time against field %s", fd.Name)
		}
	}
	norm := ev.AppendJSON(nil)
	back, err := events.Decode(typ, norm)
	require.NoError(t, err, "the normalized form %s", norm)
	requireSameEvent(t, ev, back)
}

// requireSameEvent compares events exactly, floats bit for bit.
func requireSameEvent(t *testing.T, want, got events.Event) {
	require.Same(t, want.Type, got.Type)
	require.Equal(t, want.Time, got.Time)
	require.Len(t, got.Values, len(want.Values))
	for i, w := range want.Values {
		g := got.Values[i]
		require.Equal(t, w.Kind, g.Kind, "value %d", i)
		require.Equal(t, w.S, g.S, "value %d", i)
		require.Equal(t, w.I, g.I, "value %d", i)
		require.Equal(t, math.Float64bits(w.F), math.Float64bits(g.F), "value %d: %v against %v", i, w.F, g.F)
		require.Equal(t, w.B, g.B, "value %d", i)
	}
}

// requireNamesFile checks that err names the file at path and says more
// than that.
func requireNamesFile(t *testing.T, err error, path string) {
	msg := err.Error()
	require.Contains(t, msg, path, "the error does not name the file")
	rest := strings.Trim(strings.ReplaceAll(msg, path, ""), " :()0123456789")
	require.GreaterOrEqual(t, len(rest), 3, "the error %q does not say what is wrong", msg)
}

type fuzzSpine struct {
	entities []string
	times    []int64
	valid    []bool
	err      error
	capped   bool
}

// fuzzReadSpine reads the file at path as a spine on user_id and ts.
func fuzzReadSpine(t *testing.T, path string) fuzzSpine {
	var res fuzzSpine
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	r, err := openSpine(path, "user_id", "ts", mem)
	if err != nil {
		requireNamesFile(t, err, path)
		res.err = err
		return res
	}
	for {
		if len(res.valid) >= fuzzMaxRows {
			res.capped = true
			break
		}
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			requireNamesFile(t, err, path)
			_, again := r.Next()
			require.Equal(t, err, again, "a fatal spine error is not sticky")
			res.err = err
			break
		}
		n := b.rows()
		require.Positive(t, n, "an empty spine batch")
		require.LessOrEqual(t, n, spineBatchRows)
		require.Len(t, b.Times, n)
		require.Len(t, b.Valid, n)
		require.EqualValues(t, n, b.rec.NumRows(), "passthrough columns against the batch's rows")
		res.entities = append(res.entities, b.Entities...)
		res.times = append(res.times, b.Times...)
		res.valid = append(res.valid, b.Valid...)
	}
	require.NoError(t, r.Close())
	if res.err == nil && !res.capped && leaksNothing(path) {
		require.Zero(t, mem.CurrentAlloc(), "Arrow memory left allocated after a clean spine read")
	}
	return res
}

// leaksNothing reports whether reading the file at path releases all the
// Arrow memory it allocates. arrow/go v15's ipc.FileReader.Close does not
// release the dictionaries of an IPC file (ipc.Reader.Release does, for
// streams): with the Go allocator the collector frees them, but a checked
// allocator counts them.
func leaksNothing(path string) bool { return filepath.Ext(path) != ".arrow" }

// fuzzAgree checks that the event and spine readers, when both read the
// whole file, saw the same rows, and the same entity and time in every
// row that is a valid event (whose text is UTF-8: the spine keeps an
// entity's bytes as they are); the spine reads more time
// formats from text, but the same ones as events do from CSV.
func fuzzAgree(t *testing.T, evs fuzzEvents, sp fuzzSpine) {
	if !evs.complete() || sp.err != nil || sp.capped {
		return
	}
	require.Len(t, sp.valid, len(evs.rows), "rows of the spine reader against the event reader")
	for i, row := range evs.rows {
		if row.err != nil {
			continue
		}
		require.True(t, sp.valid[i], "row %d: a valid event but not a valid spine row", i+1)
		require.Equal(t, row.ev.Get("user_id").S, sp.entities[i], "row %d: entity", i+1)
		require.Equal(t, row.ev.Time, sp.times[i], "row %d: time", i+1)
	}
}

// csvRecords counts the records after the header as encoding/csv reads
// them, a malformed one counting as one; ok is false when there is no
// header.
func csvRecords(data []byte) (n int, ok bool) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	if _, err := r.Read(); err != nil {
		return 0, false
	}
	for {
		_, err := r.Read()
		var pe *csv.ParseError
		switch {
		case err == io.EOF:
			return n, true
		case err != nil && !errors.As(err, &pe):
			return 0, false
		}
		n++
	}
}

type decompressStatus int

const (
	decompressOK      decompressStatus = iota
	decompressCorrupt                  // not valid data of the codec
	decompressUnknown                  // too large to tell here
)

// fuzzTextLimit bounds the decompressed text decompress keeps.
const fuzzTextLimit = 4 << 20

// zstdAll decodes whole zstd inputs into a buffer of fuzzTextLimit bytes.
// DecodeAll writes into that buffer, where a stream decoder would
// allocate a window of the size a frame asks for.
var (
	zstdAll, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxWindow(128<<20))
	zstdBuf    = make([]byte, 0, fuzzTextLimit)
)

// decompress is the reference for the compressed readers: the text data
// decompresses to with ext's codec, decoded whole in memory. Data that
// decompresses to more than fuzzTextLimit is decompressUnknown.
func decompress(ext string, data []byte) ([]byte, decompressStatus) {
	var (
		plain []byte
		err   error
	)
	switch ext {
	case ".gz":
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(data)); err != nil {
			return nil, decompressCorrupt
		}
		plain, err = io.ReadAll(io.LimitReader(zr, fuzzTextLimit+1))
	case ".zst":
		plain, err = zstdAll.DecodeAll(data, zstdBuf[:0])
	}
	switch {
	case len(plain) > fuzzTextLimit, errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return plain, decompressUnknown
	case err != nil:
		return plain, decompressCorrupt
	}
	return plain, decompressOK
}

var heapAllocsSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

// heapAllocs returns the bytes allocated on the heap so far.
func heapAllocs() uint64 {
	metrics.Read(heapAllocsSample)
	return heapAllocsSample[0].Value.Uint64()
}

// fuzzColumnarSeeds returns files of typ's events in the columnar format of
// ext: as WriteEvents writes them, as other tools may (other Arrow types,
// dictionaries, compression codecs), and cut short.
func fuzzColumnarSeeds(tb testing.TB, typ *schemas.Event, ext string) [][]byte {
	dir := tb.TempDir()
	var seeds [][]byte
	add := func(path string) {
		data, err := os.ReadFile(path)
		require.NoError(tb, err)
		seeds = append(seeds, data, data[:len(data)/2], data[:len(data)-1])
	}
	path := filepath.Join(dir, "events"+ext)
	require.NoError(tb, WriteEvents(path, typ, decodeLines(tb, typ, testLines), 3))
	add(path)

	recs := fuzzVariedRecords(tb)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	write := func(name string, fn func(w *os.File)) {
		path := filepath.Join(dir, name)
		w, err := os.Create(path)
		require.NoError(tb, err)
		fn(w)
		w.Close() // pqarrow closes it itself
		add(path)
	}
	sc := recs[0].Schema()
	switch ext {
	case ".parquet":
		for _, c := range []compress.Compression{compress.Codecs.Uncompressed, compress.Codecs.Gzip, compress.Codecs.Zstd, compress.Codecs.Brotli} {
			write("varied-"+c.String()+ext, func(w *os.File) {
				// A row group per record: pqarrow v15 fails to split a
				// record with a dictionary column across row groups.
				props := parquet.NewWriterProperties(parquet.WithCompression(c), parquet.WithDataPageVersion(parquet.DataPageV2))
				pw, err := pqarrow.NewFileWriter(sc, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
				require.NoError(tb, err)
				for _, r := range recs {
					require.NoError(tb, pw.Write(r), "codec %s", c)
				}
				require.NoError(tb, pw.Close())
			})
		}
	case ".arrow":
		for name, opt := range map[string]ipc.Option{"plain": ipc.WithSchema(sc), "lz4": ipc.WithLZ4(), "zstd": ipc.WithZstd()} {
			write("varied-"+name+ext, func(w *os.File) {
				fw, err := ipc.NewFileWriter(w, ipc.WithSchema(sc), opt)
				require.NoError(tb, err)
				// An IPC file cannot change a dictionary: the first
				// record twice.
				for _, r := range []arrow.Record{recs[0], recs[0]} {
					require.NoError(tb, fw.Write(r))
				}
				require.NoError(tb, fw.Close())
			})
		}
	case ".arrows":
		for name, opt := range map[string]ipc.Option{"deltas": ipc.WithDictionaryDeltas(true), "lz4": ipc.WithLZ4(), "zstd": ipc.WithZstd()} {
			write("varied-"+name+ext, func(w *os.File) {
				sw := ipc.NewWriter(w, ipc.WithSchema(sc), opt)
				for _, r := range recs {
					require.NoError(tb, sw.Write(r))
				}
				require.NoError(tb, sw.Close())
			})
		}
	}
	return seeds
}

// fuzzVariedRecords returns two records for testType in Arrow types other
// than those WriteEvents writes, each of which some field accepts: a
// dictionary of strings (which the second record extends), timestamps in
// µs with a zone, float32, uint8, date32, large_utf8, and a column of no
// field.
func fuzzVariedRecords(tb testing.TB) []arrow.Record {
	dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	fields := []arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Paris"}, Nullable: true},
		{Name: "user_id", Type: dict, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "items", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
		{Name: "card_present", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "seen_at", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "extra", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}
	sc := arrow.NewSchema(fields, nil)
	var recs []arrow.Record
	for _, js := range []string{
		`[{"ts": 1717027202000123, "user_id": "u_1", "amount": 1.5, "items": 3, "card_present": true, "seen_at": 19873, "note": "é", "extra": 1},
		  {"ts": -1, "user_id": "u_2", "amount": null, "items": 255, "card_present": null, "seen_at": -1, "note": null, "extra": null},
		  {"ts": null, "user_id": null, "amount": "NaN", "items": 0, "card_present": false, "seen_at": 0, "note": "", "extra": 3}]`,
		`[{"ts": 0, "user_id": "u_1", "amount": "+Inf", "items": 1, "card_present": true, "seen_at": 1, "note": "x", "extra": 4},
		  {"ts": 1, "user_id": "u_2", "amount": -0.0, "items": 2, "card_present": false, "seen_at": 2, "note": "y", "extra": 5},
		  {"ts": 2, "user_id": "u_3", "amount": 1e30, "items": 9, "card_present": true, "seen_at": 3, "note": "z", "extra": 6}]`,
	} {
		rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, sc, strings.NewReader(js))
		require.NoError(tb, err, js)
		recs = append(recs, rec)
	}
	return recs
}

// fuzzCompressedSeeds returns gzip and zstd files of NDJSON events:
// written by WriteEvents, in two gzip members, in a zstd frame with a
// window descriptor (as the zstd tool writes a stream of unknown size),
// with invalid and blank lines, and cut short.
func fuzzCompressedSeeds(tb testing.TB, typ *schemas.Event) [][]byte {
	dir := tb.TempDir()
	var seeds [][]byte
	add := func(data []byte) {
		seeds = append(seeds, data, data[:len(data)/2], data[:len(data)-1])
	}
	for _, ext := range []string{".gz", ".zst"} {
		path := filepath.Join(dir, "events.ndjson"+ext)
		require.NoError(tb, WriteEvents(path, typ, decodeLines(tb, typ, testLines[:3]), 0))
		data, err := os.ReadFile(path)
		require.NoError(tb, err)
		add(data)
	}
	text := testLines[0] + "\n\n  \r\n" + `{"ts":1,"user_id":7}` + "\nnot json\n" + testLines[1]
	gz := func(s string) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, err := io.WriteString(w, s)
		require.NoError(tb, err)
		require.NoError(tb, w.Close())
		return buf.Bytes()
	}
	add(append(gz(text[:len(text)/2]), gz(text[len(text)/2:])...))
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithSingleSegment(false), zstd.WithEncoderConcurrency(1))
	require.NoError(tb, err)
	_, err = io.WriteString(zw, text)
	require.NoError(tb, err)
	require.NoError(tb, zw.Close())
	frame := buf.Bytes()
	require.Equal(tb, byte(0), frame[4]&0x20, "a frame with a window descriptor")
	frame[5] = (21 - 10) << 3 // a 2 MiB window, as zstd -3 writes a stream
	add(frame)
	seeds = append(seeds, gz(""), nil)
	return seeds
}
