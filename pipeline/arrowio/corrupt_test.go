package arrowio

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// manyEvents returns n events of testType.
func manyEvents(t *testing.T, n int) []events.Event {
	base := decodeLines(t, testType(t), testLines)
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = base[i%len(base)]
	}
	return evs
}

// readAll reads the file at path to the end or the first fatal error,
// counting events; it must never panic. Corrupt data can leave Arrow
// buffers unreleased, so it uses the Go allocator.
func readAll(path string, typ *schemas.Event) (n int, err error) {
	r, err := openEvents(path, typ, memory.NewGoAllocator())
	if err != nil {
		return 0, err
	}
	defer r.Close()
	for {
		_, err := r.Next()
		var re *RowError
		switch {
		case err == nil:
			n++
		case err == io.EOF:
			return n, nil
		case errors.As(err, &re):
		default:
			// A fatal error is sticky.
			_, again := r.Next()
			if again != err {
				return n, errors.New("fatal error not sticky")
			}
			return n, err
		}
	}
}

// TestCorruptFiles checks that damaged files give an error naming the file,
// never a panic and never a silent short read.
func TestCorruptFiles(t *testing.T) {
	typ := testType(t)
	evs := manyEvents(t, 5000)
	dir := t.TempDir()
	write := func(name string) (string, []byte) {
		path := filepath.Join(dir, name)
		require.NoError(t, WriteEvents(path, typ, evs, 1000))
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		return path, data
	}
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}

	t.Run("truncated parquet", func(t *testing.T) {
		_, data := write("full.parquet")
		path := filepath.Join(t.TempDir(), "history.parquet")
		require.NoError(t, os.WriteFile(path, data[:len(data)/2], 0o644))
		_, err := readAll(path, typ)
		require.ErrorContains(t, err, path+": not a valid Parquet file")
	})
	t.Run("random bytes parquet", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "history.parquet")
		require.NoError(t, os.WriteFile(path, garbage, 0o644))
		_, err := readAll(path, typ)
		require.ErrorContains(t, err, path+": not a valid Parquet file")
	})
	t.Run("empty parquet", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "history.parquet")
		require.NoError(t, os.WriteFile(path, nil, 0o644))
		_, err := readAll(path, typ)
		require.ErrorContains(t, err, path)
	})
	t.Run("truncated arrows", func(t *testing.T) {
		_, data := write("full.arrows")
		path := filepath.Join(t.TempDir(), "history.arrows")
		require.NoError(t, os.WriteFile(path, data[:len(data)/2], 0o644))
		n, err := readAll(path, typ)
		require.ErrorContains(t, err, path+": record batch")
		require.ErrorContains(t, err, "truncated")
		require.Less(t, n, len(evs))
	})
	t.Run("garbage arrow", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "history.arrow")
		require.NoError(t, os.WriteFile(path, garbage, 0o644))
		_, err := readAll(path, typ)
		require.ErrorContains(t, err, path+": not a valid Arrow IPC file")
	})
	t.Run("garbage feather", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "history.feather")
		require.NoError(t, os.WriteFile(path, append([]byte("FEA1"), garbage...), 0o644))
		_, err := readAll(path, typ)
		require.ErrorContains(t, err, path+": a Feather V1 file")
	})
	t.Run("garbage arrows", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "history.arrows")
		require.NoError(t, os.WriteFile(path, garbage, 0o644))
		_, err := readAll(path, typ)
		require.ErrorContains(t, err, path)
	})
	t.Run("truncated arrow", func(t *testing.T) {
		_, data := write("full.arrow")
		path := filepath.Join(t.TempDir(), "history.arrow")
		require.NoError(t, os.WriteFile(path, data[:len(data)-100], 0o644))
		_, err := readAll(path, typ)
		require.ErrorContains(t, err, path+": not a valid Arrow IPC file")
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none.parquet")
		_, err := OpenEvents(path, typ)
		require.ErrorContains(t, err, path)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

// TestTruncatedStreamEveryCut cuts an IPC stream at every byte: the reader
// either fails naming the file, or, cut exactly between messages, returns
// the complete records before the cut and nothing else.
func TestTruncatedStreamEveryCut(t *testing.T) {
	typ := testType(t)
	evs := manyEvents(t, 40)
	dir := t.TempDir()
	full := filepath.Join(dir, "full.arrows")
	require.NoError(t, WriteEvents(full, typ, evs, 10))
	data, err := os.ReadFile(full)
	require.NoError(t, err)
	path := filepath.Join(dir, "cut.arrows")
	clean := 0
	for cut := 0; cut < len(data); cut++ {
		require.NoError(t, os.WriteFile(path, data[:cut], 0o644))
		n, err := readAll(path, typ)
		if err != nil {
			require.Contains(t, err.Error(), path, "cut at %d", cut)
			continue
		}
		clean++
		require.Zero(t, n%10, "cut at %d: a record read in part", cut)
	}
	// The clean cuts are the ends of the schema message and of each of
	// the four records.
	require.Equal(t, 5, clean)
}

// TestCorruptParquetPages flips bytes inside the data pages of a Parquet
// file: reading may fail or read wrong values, but must not panic.
func TestCorruptParquetPages(t *testing.T) {
	typ := testType(t)
	evs := manyEvents(t, 3000)
	dir := t.TempDir()
	full := filepath.Join(dir, "full.parquet")
	require.NoError(t, WriteEvents(full, typ, evs, 1000))
	data, err := os.ReadFile(full)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	path := filepath.Join(dir, "bad.parquet")
	for i := 0; i < 200; i++ {
		bad := append([]byte(nil), data...)
		// Leave the footer alone: damage only the pages.
		for k := 0; k < 1+i%8; k++ {
			bad[4+rng.IntN(len(bad)/2)] ^= byte(1 + rng.UintN(255))
		}
		require.NoError(t, os.WriteFile(path, bad, 0o644))
		_, err := readAll(path, typ)
		if err != nil {
			require.Contains(t, err.Error(), path)
		}
	}
}

// TestCorruptIPCBodies flips bytes inside the record bodies of an Arrow IPC
// file and stream: reading may fail or read wrong values, but must not
// panic.
func TestCorruptIPCBodies(t *testing.T) {
	typ := testType(t)
	evs := manyEvents(t, 300)
	for _, ext := range []string{".arrow", ".arrows"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			full := filepath.Join(dir, "full"+ext)
			require.NoError(t, WriteEvents(full, typ, evs, 100))
			data, err := os.ReadFile(full)
			require.NoError(t, err)
			rng := rand.New(rand.NewPCG(5, 6))
			path := filepath.Join(dir, "bad"+ext)
			for i := 0; i < 300; i++ {
				bad := append([]byte(nil), data...)
				for k := 0; k < 1+i%4; k++ {
					bad[8+rng.IntN(len(bad)-16)] ^= byte(1 + rng.UintN(255))
				}
				require.NoError(t, os.WriteFile(path, bad, 0o644))
				_, err := readAll(path, typ)
				if err != nil {
					require.Contains(t, err.Error(), path)
				}
			}
		})
	}
}
