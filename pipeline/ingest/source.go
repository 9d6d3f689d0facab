package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxLine is the longest NDJSON line replay reads; longer lines are invalid
// rows.
const maxLine = 16 << 20

// rowSource is one file format's reader of raw events, in file order.
//
// Next returns the next row as one JSON object for events.Decode, with its
// 1-based position in the file (the line number for text formats), or
// io.EOF after the last row. raw is only valid until the next call. A
// *rowError is a row that could not be read: it is reported as invalid and
// Next may be called again. Any other error ends the source.
type rowSource interface {
	Next() (raw []byte, row int, err error)
}

// rowError is a row a source could not read, for instance a line too long;
// the rows after it can still be read.
type rowError struct {
	// raw is the start of the row, for the rejects file.
	raw    []byte
	reason string
}

func (e *rowError) Error() string { return e.reason }

// streamFormat opens a rowSource over a byte stream. Formats that need
// random access (Parquet) will get their own opener type.
type streamFormat func(r io.Reader) rowSource

// formats maps a file extension to its reader. A ".gz" suffix after one of
// these reads the file through gzip.
var formats = map[string]streamFormat{
	".ndjson": newLineSource,
	".jsonl":  newLineSource,
}

// formatOf returns the reader of path's format and whether it is gzipped.
func formatOf(path string) (streamFormat, bool, error) {
	name := path
	gz := strings.EqualFold(filepath.Ext(name), ".gz")
	if gz {
		name = strings.TrimSuffix(name, filepath.Ext(name))
	}
	ext := strings.ToLower(filepath.Ext(name))
	if f, ok := formats[ext]; ok {
		return f, gz, nil
	}
	return nil, false, fmt.Errorf("%s: unknown file format %q (expected .ndjson or .jsonl, optionally .gz)", path, ext)
}

// openSource opens path in its format. Closing the returned Closer closes
// the file.
func openSource(path string) (rowSource, io.Closer, error) {
	format, gz, err := formatOf(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 256<<10))
		if err != nil {
			_ = f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		r = zr
	}
	return format(r), f, nil
}

// lineSource reads NDJSON: one JSON object per line, lines ending in \n or
// \r\n; blank lines are skipped.
type lineSource struct {
	r    *bufio.Reader
	line int
	long []byte // holds a line longer than the reader's buffer
}

var _ rowSource = (*lineSource)(nil)

func newLineSource(r io.Reader) rowSource {
	return &lineSource{r: bufio.NewReaderSize(r, 256<<10)}
}

func (s *lineSource) Next() ([]byte, int, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return nil, s.line, err
		}
		if line = trimSpace(line); len(line) > 0 {
			return line, s.line, nil
		}
	}
}

// trimSpace removes JSON whitespace (which includes the \r of \r\n) from
// both ends of b.
func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// readLine returns the next line without its end, or io.EOF.
func (s *lineSource) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(line) > 0) {
		s.line++
		return line, nil
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	// A line longer than the buffer: gather it, up to maxLine.
	s.line++
	s.long = append(s.long[:0], line...)
	for {
		line, err = s.r.ReadSlice('\n')
		n := len(s.long) + len(line)
		if err == nil {
			n-- // the newline
		}
		if n > maxLine {
			head := append([]byte(nil), s.long[:min(len(s.long), 256)]...)
			if err := s.skipLine(err); err != nil {
				return nil, err
			}
			return nil, &rowError{raw: head, reason: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		s.long = append(s.long, line...)
		switch {
		case err == nil || err == io.EOF:
			return s.long, nil
		case err != bufio.ErrBufferFull:
			return nil, err
		}
	}
}

// skipLine discards the rest of the current line; err is the error of the
// last ReadSlice.
func (s *lineSource) skipLine(err error) error {
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = s.r.ReadSlice('\n')
	}
	if err == io.EOF {
		return nil
	}
	return err
}
