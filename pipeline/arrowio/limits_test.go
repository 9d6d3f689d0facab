package arrowio

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/parquet/metadata"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// writeRepeated writes head, n bytes of c, then tail to w, a block at a
// time, so that a test never holds n bytes.
func writeRepeated(t *testing.T, w io.Writer, head string, c byte, n int, tail string) {
	t.Helper()
	_, err := io.WriteString(w, head)
	require.NoError(t, err)
	block := bytes.Repeat([]byte{c}, 1<<20)
	for n > 0 {
		k := min(n, len(block))
		_, err := w.Write(block[:k])
		require.NoError(t, err)
		n -= k
	}
	_, err = io.WriteString(w, tail)
	require.NoError(t, err)
}

// TestOversizeNDJSONLine: a line over MaxRowBytes is an invalid row with
// the start of its text, and the lines after it are read.
func TestOversizeNDJSONLine(t *testing.T) {
	typ := testType(t)
	path := filepath.Join(t.TempDir(), "big.ndjson")
	f, err := os.Create(path)
	require.NoError(t, err)
	writeRepeated(t, f, testLines[0]+"\n"+`{"note":"`, 'a', MaxRowBytes+1, `"}`+"\n"+testLines[1]+"\n")
	require.NoError(t, f.Close())

	res := readEvents(t, path, typ)
	require.NoError(t, res.err)
	require.Len(t, res.events, 2)
	require.Len(t, res.rowErrors, 1)
	re := res.rowErrors[0]
	require.Equal(t, path+":2: line is over the 16 MiB limit of one event; is it one event per line?", re.Error())
	require.True(t, strings.HasPrefix(string(re.Raw), `{"note":"aaa`), string(re.Raw[:20]))
	require.LessOrEqual(t, len(re.Raw), oversizePrefix+len("…"))
	require.EqualValues(t, 3, res.rows)
}

// TestLongRowsWithinLimit: rows just under MaxRowBytes are read whole.
func TestLongRowsWithinLimit(t *testing.T) {
	typ := testType(t)
	dir := t.TempDir()
	note := MaxRowBytes - 100
	for _, c := range []struct{ name, head, tail string }{
		{"ok.ndjson", `{"ts":1,"user_id":"u","note":"`, `"}` + "\n" + `{"ts":2,"user_id":"v"}` + "\n"},
		{"ok.csv", "ts,user_id,note\n1,u,", "\n2,v,x\n"},
	} {
		path := filepath.Join(dir, c.name)
		f, err := os.Create(path)
		require.NoError(t, err)
		writeRepeated(t, f, c.head, 'a', note, c.tail)
		require.NoError(t, f.Close())
		res := readEvents(t, path, typ)
		require.NoError(t, res.err, c.name)
		require.Empty(t, res.rowErrors, c.name)
		fd, _ := typ.Field("note")
		require.Len(t, res.events, 2, c.name)
		require.Equal(t, note, len(res.events[0].Values[fd.Index].S), c.name)
	}
}

// TestOversizeCSVRecord: a CSV record over MaxRowBytes, on one line or
// many (an unclosed quote), fails the file naming it and the line after
// which the record starts.
func TestOversizeCSVRecord(t *testing.T) {
	typ := testType(t)
	dir := t.TempDir()
	for _, c := range []struct{ name, head string }{
		{"one-line.csv", "ts,user_id\n1,u\n2,"},
		{"unclosed-quote.csv", "ts,user_id\n1,u\n2,\"x\n"},
	} {
		path := filepath.Join(dir, c.name)
		f, err := os.Create(path)
		require.NoError(t, err)
		line := "a"
		if strings.Contains(c.name, "quote") {
			line = "\n"
		}
		writeRepeated(t, f, c.head, line[0], MaxRowBytes+2*textBuffer, "\n")
		require.NoError(t, f.Close())
		res := readEvents(t, path, typ)
		require.Len(t, res.events, 1, c.name)
		require.ErrorContains(t, res.err, path+": the CSV record after line 2 is over the 16 MiB limit of one event", c.name)
	}
}

// TestDecompressionBomb: compressed text that decompresses beyond
// bombRatio times its size (after bombAllowance) fails naming the file,
// without reading it all.
func TestDecompressionBomb(t *testing.T) {
	typ := testType(t)
	dir := t.TempDir()
	gzPath := filepath.Join(dir, "bomb.ndjson.gz")
	f, err := os.Create(gzPath)
	require.NoError(t, err)
	gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	writeRepeated(t, gz, testLines[0]+"\n", 'a', 200<<20, "")
	require.NoError(t, gz.Close())
	require.NoError(t, f.Close())

	zstPath := filepath.Join(dir, "bomb.csv.zst")
	f, err = os.Create(zstPath)
	require.NoError(t, err)
	zw, err := zstd.NewWriter(f)
	require.NoError(t, err)
	_, err = io.WriteString(zw, "ts,user_id\n")
	require.NoError(t, err)
	for range 256 { // rows of 1 MiB, each invalid
		writeRepeated(t, zw, "", 'a', 1<<20, "\n")
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())

	for _, path := range []string{gzPath, zstPath} {
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Less(t, st.Size(), int64(1<<20))
		_, err = readAll(path, typ)
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, "a decompression bomb or a corrupt file; if it is genuine, decompress it first")
	}
}

// patchParquetFooter rewrites the footer of the Parquet file at path with
// edit applied to its metadata.
func patchParquetFooter(t *testing.T, path string, edit func(*metadata.FileMetaData)) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	n := int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	body, footer := data[:len(data)-8-n], data[len(data)-8-n:len(data)-8]
	md, err := metadata.NewFileMetaData(footer, nil)
	require.NoError(t, err)
	edit(md)
	var out bytes.Buffer
	out.Write(body)
	m, err := md.WriteTo(&out, nil)
	require.NoError(t, err)
	out.Write(binary.LittleEndian.AppendUint32(nil, uint32(m)))
	out.WriteString("PAR1")
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
}

// TestParquetRowCountMismatch: a footer claiming other rows than the file
// holds fails naming the file, at open when the file's count is not the
// sum of its row groups', else after the row group's rows.
func TestParquetRowCountMismatch(t *testing.T) {
	typ := testType(t)
	dir := t.TempDir()
	evs := manyEvents(t, 1000)
	write := func(name string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, WriteEvents(path, typ, evs, 400))
		return path
	}
	path := write("file-rows.parquet")
	patchParquetFooter(t, path, func(md *metadata.FileMetaData) { md.NumRows = 1 << 40 })
	_, err := readAll(path, typ)
	require.EqualError(t, err, path+": not a valid Parquet file: the footer says 1099511627776 rows, its row groups 1000: a corrupt or truncated file")

	path = write("group-rows.parquet")
	patchParquetFooter(t, path, func(md *metadata.FileMetaData) {
		md.RowGroups[2].NumRows += 1 << 20
		md.NumRows += 1 << 20
	})
	n, err := readAll(path, typ)
	require.Equal(t, 1000, n)
	require.ErrorContains(t, err, path+": row group 2: not a valid Parquet file: the footer says 1048776 rows, the pages hold 200")

	path = write("intact.parquet")
	patchParquetFooter(t, path, func(*metadata.FileMetaData) {})
	n, err = readAll(path, typ)
	require.NoError(t, err)
	require.Equal(t, 1000, n)
}
