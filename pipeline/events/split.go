package events

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// errEmptyBody is returned by Split for a body holding only whitespace.
var errEmptyBody = errors.New("empty body: expected a JSON object")

// Split splits an HTTP request body into the raw JSON object of each event,
// in order, for Decode. The returned slices alias body.
//
// With ndjson false (application/json), the body is one JSON object or an
// array of JSON objects; an empty array holds no events. The array must be
// valid JSON and its elements objects, since its elements can only be found
// by parsing it; an error names the offending element by its 0-based index.
// A single object is returned as is, without surrounding whitespace, and left
// to Decode to validate.
//
// With ndjson true (application/x-ndjson), each non-blank line holds one
// event; lines end in \n or \r\n. Every line is left to Decode, even one
// that is not a JSON object, so that a malformed event fails alone and is
// reported by its index among the events.
//
// A body holding only whitespace is an error in both modes. A body of more
// than limit events (limit > 0) is a *TooManyEventsError, found while
// splitting: a body of millions of tiny events costs no more than limit.
func Split(body []byte, ndjson bool, limit int) ([][]byte, error) {
	if limit <= 0 {
		limit = math.MaxInt
	}
	if ndjson {
		return splitLines(body, limit)
	}
	s := scanner{data: body}
	s.skipSpace()
	if s.pos >= len(body) {
		return nil, errEmptyBody
	}
	switch c := body[s.pos]; c {
	case '{':
		return [][]byte{trimSpace(body[s.pos:])}, nil
	case '[':
	default:
		if k := jsonKind(c); k != "" {
			return nil, fmt.Errorf("expected a JSON object or an array of objects, got %s", k)
		}
		return nil, s.syntaxError(" looking for beginning of value")
	}
	s.pos++
	s.skipSpace()
	var out [][]byte
	if s.pos < len(body) && body[s.pos] == ']' {
		s.pos++
	} else {
		for i := 0; ; i++ {
			s.skipSpace()
			if s.pos >= len(body) {
				return nil, fmt.Errorf("array element %d: %v", i, s.syntaxError(""))
			}
			if c := body[s.pos]; c != '{' {
				if k := jsonKind(c); k != "" {
					return nil, fmt.Errorf("array element %d: expected a JSON object, got %s", i, k)
				}
				return nil, fmt.Errorf("array element %d: %v", i, s.syntaxError(" looking for beginning of value"))
			}
			if i == limit {
				return nil, &TooManyEventsError{Limit: limit}
			}
			start := s.pos
			if err := s.skip(1); err != nil {
				return nil, fmt.Errorf("array element %d: %v", i, err)
			}
			out = append(out, body[start:s.pos])
			s.skipSpace()
			if s.pos < len(body) && body[s.pos] == ',' {
				s.pos++
				continue
			}
			if s.pos < len(body) && body[s.pos] == ']' {
				s.pos++
				break
			}
			return nil, fmt.Errorf("array element %d: %v", i, s.syntaxError(" after array element"))
		}
	}
	s.skipSpace()
	if s.pos < len(body) {
		return nil, s.syntaxError(" after top-level value")
	}
	return out, nil
}

// TooManyEventsError is Split's refusal of a body of more events than its
// limit.
type TooManyEventsError struct{ Limit int }

func (e *TooManyEventsError) Error() string {
	return fmt.Sprintf("more than %d events in one request: split it", e.Limit)
}

func splitLines(body []byte, limit int) ([][]byte, error) {
	out := make([][]byte, 0, min(bytes.Count(body, []byte{'\n'})+1, limit, 1<<16))
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = trimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(out) == limit {
			return nil, &TooManyEventsError{Limit: limit}
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, errEmptyBody
	}
	return out, nil
}

// trimSpace removes JSON whitespace from both ends of b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
