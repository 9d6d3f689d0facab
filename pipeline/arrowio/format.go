package arrowio

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/klauspost/compress/zstd"
)

// format is a file format, known from the file's extension.
type format uint8

const (
	formatParquet   format = iota + 1
	formatIPCFile          // .arrow, .feather (Feather V2 is the IPC file format)
	formatIPCStream        // .arrows
	formatCSV
	formatNDJSON // .ndjson, .jsonl
)

var formatNames = map[format]string{
	formatParquet:   "Parquet",
	formatIPCFile:   "Arrow IPC file",
	formatIPCStream: "Arrow IPC stream",
	formatCSV:       "CSV",
	formatNDJSON:    "NDJSON",
}

func (f format) String() string { return formatNames[f] }

// codec is the compression of a text file.
type codec uint8

const (
	codecNone codec = iota
	codecGzip
	codecZstd
)

const supportedList = ".parquet, .arrow, .feather, .arrows, .csv, .ndjson and .jsonl; " +
	".csv, .ndjson and .jsonl may be followed by .gz or .zst"

// Supported reports whether path names a file format this package reads,
// judging by its extension (case-insensitive): .parquet; .arrow and .feather
// (Arrow IPC file); .arrows (Arrow IPC stream); .csv; .ndjson and .jsonl; the
// last three optionally followed by .gz or .zst. The error names the file and
// lists the supported extensions.
func Supported(path string) error {
	_, _, err := detect(path)
	return err
}

// detect returns the format and compression of path from its extension.
func detect(path string) (format, codec, error) {
	name := strings.ToLower(path)
	c := codecNone
	switch {
	case strings.HasSuffix(name, ".gz"):
		c, name = codecGzip, strings.TrimSuffix(name, ".gz")
	case strings.HasSuffix(name, ".zst"):
		c, name = codecZstd, strings.TrimSuffix(name, ".zst")
	}
	var f format
	switch {
	case strings.HasSuffix(name, ".parquet"):
		f = formatParquet
	case strings.HasSuffix(name, ".arrow"), strings.HasSuffix(name, ".feather"):
		f = formatIPCFile
	case strings.HasSuffix(name, ".arrows"):
		f = formatIPCStream
	case strings.HasSuffix(name, ".csv"):
		f = formatCSV
	case strings.HasSuffix(name, ".ndjson"), strings.HasSuffix(name, ".jsonl"):
		f = formatNDJSON
	}
	if f == 0 || (c != codecNone && f != formatCSV && f != formatNDJSON) {
		return 0, 0, fmt.Errorf("%s: unsupported file format (supported: %s)", path, supportedList)
	}
	return f, c, nil
}

// countingFile is an open file that counts the bytes read from it, for
// progress reports. The count is read concurrently by Progress.
type countingFile struct {
	f    *os.File
	size int64
	n    atomic.Int64
}

func openCounting(path string) (*countingFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	return &countingFile{f: f, size: st.Size()}, nil
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }

// progress returns the bytes read so far, capped at the file size (random
// access formats may read some bytes twice), and the file size.
func (c *countingFile) progress() (int64, int64) { return min(c.n.Load(), c.size), c.size }

func (c *countingFile) Close() error { return c.f.Close() }

// textInput is the decompressed byte stream of a CSV or NDJSON file.
type textInput struct {
	file  *countingFile
	r     *bufio.Reader
	lines *recordGuard // under r: started anew by CSV readers at each record
	dec   io.Closer    // the decompressor, if any
}

func openText(path string, c codec) (*textInput, error) {
	f, err := openCounting(path)
	if err != nil {
		return nil, err
	}
	in := &textInput{file: f}
	var r io.Reader = f
	switch c {
	case codecGzip:
		gz, err := gzip.NewReader(bufio.NewReaderSize(f, 64<<10))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: not gzip data: %w", path, err)
		}
		in.dec, r = gz, gz
	case codecZstd:
		zr, err := zstd.NewReader(bufio.NewReaderSize(f, 64<<10), zstd.WithDecoderConcurrency(1),
			// A frame may ask for a window of up to 3.75 TiB, allocated
			// before any data: a 10-byte file asked for 512 MiB
			// (FuzzCompressed). 128 MiB is what zstd -d accepts by default.
			zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: zstd: %w", path, err)
		}
		in.dec, r = zstdCloser{zr}, zr
	}
	if c != codecNone {
		r = &bombGuard{r: r, limit: decompressedLimit(f.size)}
	}
	in.lines = &recordGuard{r: r, limit: math.MaxInt64}
	in.r = bufio.NewReaderSize(in.lines, textBuffer)
	return in, nil
}

// textBuffer is the size of the buffer text is read through.
const textBuffer = 64 << 10

// MaxRowBytes is the largest row of a text file, in bytes: an NDJSON line
// or a CSV record (16 MiB, the largest request body ingest takes by
// default, which holds many events). It bounds the memory a file without
// newlines can take: an NDJSON line over it is a RowError, a CSV record
// over it a fatal error.
const MaxRowBytes = 16 << 20

// Decompressed text may be at most bombAllowance plus bombRatio times the
// compressed file's size. Genuine CSV and NDJSON compress 5 to 50 times;
// gzip cannot exceed about 1030 times, and a zstd bomb (a gigabyte of one
// byte) is 30000 times.
const (
	bombRatio     = 200
	bombAllowance = 64 << 20
)

func decompressedLimit(compressed int64) int64 {
	if compressed > (math.MaxInt64-bombAllowance)/bombRatio {
		return math.MaxInt64
	}
	return bombAllowance + bombRatio*compressed
}

// bombGuard fails a decompressed stream that grows past limit bytes.
type bombGuard struct {
	r     io.Reader
	n     int64
	limit int64
}

func (g *bombGuard) Read(p []byte) (int, error) {
	if g.n > g.limit {
		return 0, g.err()
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	if g.n > g.limit {
		return n, g.err()
	}
	return n, err
}

func (g *bombGuard) err() error {
	return fmt.Errorf("decompresses to over %d MiB, more than %d times the compressed file plus %d MiB: "+
		"a decompression bomb or a corrupt file; if it is genuine, decompress it first (gunzip, zstd -d) and use the uncompressed file",
		g.limit>>20, bombRatio, bombAllowance>>20)
}

// recordGuard counts the bytes read since the last call to start and
// fails, with an *oversizeError, once they exceed limit: it bounds the
// memory encoding/csv takes for one record, which it gathers whole
// whatever its size. CSV readers set limit to MaxRowBytes plus what the
// buffer above may have read ahead (so no record within MaxRowBytes
// trips it), and call start at each record; NDJSON readers leave it
// unlimited, as readLine bounds a line itself.
type recordGuard struct {
	r     io.Reader
	n     int64
	limit int64
}

// start begins a new record.
func (g *recordGuard) start() { g.n = 0 }

func (g *recordGuard) Read(p []byte) (int, error) {
	if g.n > g.limit {
		return 0, &oversizeError{}
	}
	n, err := g.r.Read(p)
	if g.n += int64(n); g.n > g.limit {
		return n, &oversizeError{}
	}
	return n, err
}

// oversizeError is a row over MaxRowBytes.
type oversizeError struct {
	prefix []byte // the row's first bytes, for the rejects file
}

func (e *oversizeError) Error() string {
	return fmt.Sprintf("is over the %d MiB limit of one event; is it one event per line?", MaxRowBytes>>20)
}

func (in *textInput) Close() error {
	if in.dec != nil {
		in.dec.Close()
	}
	return in.file.Close()
}

type zstdCloser struct{ d *zstd.Decoder }

func (z zstdCloser) Close() error { z.d.Close(); return nil }

// textOutput is the compressing byte sink of a CSV or NDJSON file.
type textOutput struct {
	f   *os.File
	w   *bufio.Writer
	enc io.WriteCloser // the compressor, if any
}

func createText(path string, c codec) (*textOutput, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	out := &textOutput{f: f}
	var w io.Writer = f
	switch c {
	case codecGzip:
		out.enc = gzip.NewWriter(f)
		w = out.enc
	case codecZstd:
		zw, err := zstd.NewWriter(f, zstd.WithEncoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, err
		}
		out.enc, w = zw, zw
	}
	out.w = bufio.NewWriterSize(w, 64<<10)
	return out, nil
}

// Close flushes and closes everything; the first error wins.
func (out *textOutput) Close() error {
	err := out.w.Flush()
	if out.enc != nil {
		if cerr := out.enc.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := out.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// catch turns a panic inside Arrow code (which corrupt input can provoke)
// into an error. Use it as `defer catch(&err, "what was being done")`.
func catch(err *error, what string) {
	if p := recover(); p != nil {
		*err = panicError(what, p)
	}
}

// panicError is the error for a recovered panic p while doing what. Where
// what is costly to build, recover in a deferred closure and call it only
// when p is not nil.
func panicError(what string, p any) error {
	return fmt.Errorf("%s: corrupt or unsupported data: %v", what, p)
}

// boundedAllocator refuses allocations larger than a limit, by panicking
// (which catch turns into an error). Arrow/go v15 sizes buffers from lengths
// in the file before reading them (ipc message bodies and buffers, Parquet
// pages), so a corrupt length asks for terabytes and the Go runtime dies of
// "out of memory", which no recover can catch. The limit is generous: twice
// the file size, and at least 1 GiB, as no buffer of an uncompressed file
// can be larger than the file.
type boundedAllocator struct {
	memory.Allocator
	limit int
}

func boundAllocator(mem memory.Allocator, fileSize int64) memory.Allocator {
	limit := int64(1 << 30)
	if 2*fileSize > limit {
		limit = 2 * fileSize
	}
	return &boundedAllocator{Allocator: mem, limit: int(min(limit, math.MaxInt))}
}

func (a *boundedAllocator) check(size int) {
	if size < 0 || size > a.limit {
		panic(fmt.Sprintf("refusing to allocate %d bytes (at most %d for this file): a length in the file is wrong", size, a.limit))
	}
}

func (a *boundedAllocator) Allocate(size int) []byte {
	a.check(size)
	return a.Allocator.Allocate(size)
}

func (a *boundedAllocator) Reallocate(size int, b []byte) []byte {
	a.check(size)
	return a.Allocator.Reallocate(size, b)
}
