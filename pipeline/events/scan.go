package events

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of arrays and objects accepted, counting
// the top-level object, as in encoding/json.
const maxDepth = 10000

// plainString marks the bytes that stand for themselves inside a JSON string,
// both when reading and when writing: printable ASCII (and DEL) except the
// quote and the backslash.
var plainString = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanner reads JSON text from data at pos. Its methods leave pos just after
// what they read and report malformed input as a *FieldError.
type scanner struct {
	data []byte
	pos  int
	// scratch holds decoded strings that needed unescaping; reused.
	scratch []byte
}

// skipSpace skips JSON whitespace: space, tab, newline and carriage return.
func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		if c := s.data[s.pos]; c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return
		}
		s.pos++
	}
}

// syntaxError reports the byte at pos as unexpected (or the end of input).
func (s *scanner) syntaxError(context string) *FieldError {
	if s.pos >= len(s.data) {
		return &FieldError{Reason: "invalid JSON: unexpected end of input"}
	}
	return &FieldError{Reason: "invalid JSON: invalid character " + quoteChar(s.data[s.pos]) + context +
		" at offset " + strconv.Itoa(s.pos)}
}

func quoteChar(c byte) string {
	if c >= utf8.RuneSelf {
		return "byte 0x" + string(hexDigits[c>>4]) + string(hexDigits[c&0xF])
	}
	return strconv.QuoteRune(rune(c))
}

// expect consumes c or fails.
func (s *scanner) expect(c byte, context string) *FieldError {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return nil
	}
	return s.syntaxError(context)
}

// jsonKind names the kind of JSON value starting with c, or "" when no value
// starts with c.
func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return ""
}

// literal consumes the literal word (true, false or null) at pos.
func (s *scanner) literal(word string) *FieldError {
	for i := 0; i < len(word); i++ {
		if s.pos >= len(s.data) || s.data[s.pos] != word[i] {
			return s.syntaxError(" in literal " + word)
		}
		s.pos++
	}
	return nil
}

// number consumes a JSON number at pos and returns its text and whether it is
// an integer (no fraction, no exponent).
func (s *scanner) number() (text []byte, integer bool, err *FieldError) {
	d := s.data
	start := s.pos
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i++
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, false, s.syntaxError(" in numeric literal")
	}
	integer = true
	if i < len(d) && d[i] == '.' {
		integer = false
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, false, s.syntaxError(" after decimal point in numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		integer = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, false, s.syntaxError(" in exponent of numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], integer, nil
}

// parseInt parses the text of a JSON integer; ok is false when it does not fit
// in an int64.
func parseInt(text []byte) (n int64, ok bool) {
	neg := len(text) > 0 && text[0] == '-'
	digits := text
	if neg {
		digits = text[1:]
	}
	if len(digits) <= 18 { // cannot overflow
		for _, c := range digits {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, true
	}
	n, err := strconv.ParseInt(string(text), 10, 64)
	return n, err == nil
}

// str consumes a JSON string at pos (which holds the opening quote) and
// returns its raw content between the quotes; plain is true when the content
// needs no decoding: no escapes and valid UTF-8.
func (s *scanner) str() (raw []byte, plain bool, err *FieldError) {
	d := s.data
	start := s.pos + 1 // after the opening quote
	i := start
	escaped, ascii := false, true
	for {
		for i < len(d) && plainString[d[i]] {
			i++
		}
		if i >= len(d) {
			s.pos = i
			return nil, false, s.syntaxError("")
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			raw = d[start:i]
			return raw, !escaped && (ascii || utf8.Valid(raw)), nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(d) {
				s.pos = i
				return nil, false, s.syntaxError("")
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for range 4 {
					if i >= len(d) || unhex(d[i]) < 0 {
						s.pos = i
						return nil, false, s.syntaxError(" in \\u hexadecimal character escape")
					}
					i++
				}
			default:
				s.pos = i
				return nil, false, s.syntaxError(" in string escape code")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.syntaxError(" in string literal")
		default:
			ascii = false
			i++
		}
	}
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// getu4 decodes \uXXXX at the start of b, or returns -1.
func getu4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		h := unhex(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

// unquote appends the decoded content of a string that str accepted: escapes
// resolved, invalid UTF-8 bytes and unpaired surrogates replaced by U+FFFD,
// exactly as encoding/json does. bad is the offset in raw of the first such
// replacement, -1 when there is none: a string with one is no text (see
// AppendText).
func unquote(dst, raw []byte) (out []byte, bad int) {
	bad = -1
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw):
			switch e := raw[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := getu4(raw[i:])
				switch {
				case r < 0: // a short escape: not reached on checked JSON
					if bad < 0 {
						bad = i
					}
					dst = utf8.AppendRune(dst, utf8.RuneError)
					i += 2
					continue
				case utf16.IsSurrogate(r):
					// getu4 read six bytes: raw[i+6:] exists.
					if dec := utf16.DecodeRune(r, getu4(raw[i+6:])); dec != utf8.RuneError {
						i += 12
						dst = utf8.AppendRune(dst, dec)
						continue
					}
					if bad < 0 {
						bad = i
					}
					r = utf8.RuneError
				}
				i += 6
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 && bad < 0 {
				bad = i
			}
			dst = utf8.AppendRune(dst, r)
			i += size
		}
	}
	return dst, bad
}

// AppendText appends to dst the text of raw, the content of a JSON string
// between its quotes as a JSON parser accepted it, with its escapes
// resolved. reason is "" for text, and otherwise says why raw is none: it
// holds a byte that is not UTF-8, or an escape of half a UTF-16 surrogate
// pair alone (\ud800). encoding/json turns both into U+FFFD, so that
// "probe_\xff" and "probe_\xfe" would read as one id; freshet refuses them
// instead, in events (Decode) and in lookups (serve) alike, so that an id is
// looked up by the text it was stored under. dst holds the text with U+FFFD
// in their place either way.
func AppendText(dst, raw []byte) (text []byte, reason string) {
	dst, bad := unquote(dst, raw)
	if bad < 0 {
		return dst, ""
	}
	return dst, textReason(raw, bad)
}

// textReason says what makes raw, the content of a JSON string, no text:
// the problem at offset bad, after which text.
func textReason(raw []byte, bad int) string {
	before, _ := unquote(nil, raw[:bad])
	if raw[bad] == '\\' {
		esc := raw[bad:min(bad+6, len(raw))]
		return "invalid UTF-8: " + string(esc) + where(string(before)) + " is half of a UTF-16 surrogate pair, which is no character alone"
	}
	return byteReason(string(before), raw[bad])
}

// StringReason says why s, a string as it is (not JSON), is no text, in
// Decode's words, or "" when it is valid UTF-8: what the readers of other
// formats (CSV, Parquet, Arrow) refuse as ingest's decoder does, so that
// two ids that differ only in invalid bytes never merge.
func StringReason(s string) string {
	if utf8.ValidString(s) {
		return ""
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return byteReason(s[:i], s[i])
}

// byteReason is the reason of an invalid byte b after the text before.
func byteReason(before string, b byte) string {
	return "invalid UTF-8: byte 0x" + string(hexDigits[b>>4]) + string(hexDigits[b&0xF]) + where(before) + "; send text as UTF-8"
}

// where places a problem after the text before.
func where(before string) string {
	if before == "" {
		return " at the start"
	}
	return " after " + strconv.Quote(clipTail(before))
}

// clipTail keeps the end of text quoted in error reasons, which is where
// the problem that follows it is.
func clipTail(text string) string {
	const limit = 32
	if len(text) <= limit {
		return text
	}
	return "..." + strings.ToValidUTF8(text[len(text)-limit:], "")
}

// text returns the decoded content of a string str accepted; reason is ""
// for text, and otherwise why it is none (see AppendText).
func (s *scanner) text(raw []byte, plain bool) (string, string) {
	if plain { // the common case, inlined into Decode
		return string(raw), ""
	}
	return s.unquoteText(raw)
}

// unquoteText is text for a string that is not plain.
func (s *scanner) unquoteText(raw []byte) (string, string) {
	var bad int
	s.scratch, bad = unquote(s.scratch[:0], raw)
	if bad >= 0 {
		return "", textReason(raw, bad)
	}
	return string(s.scratch), ""
}

// skip consumes one JSON value of any kind at pos, validating it. depth is
// the nesting depth of the container holding the value. Containers are
// tracked on an explicit stack, so deep nesting cannot exhaust the goroutine
// stack.
func (s *scanner) skip(depth int) *FieldError {
	var stackBuf [32]bool
	stack := stackBuf[:0] // true for an object, false for an array
	d := s.data
	for {
		// A value is expected at pos.
		s.skipSpace()
		if s.pos >= len(d) {
			return s.syntaxError("")
		}
		switch c := d[s.pos]; c {
		case '{', '[':
			if depth+len(stack)+1 > maxDepth {
				return &FieldError{Reason: "invalid JSON: exceeded max nesting depth " + strconv.Itoa(maxDepth) +
					" at offset " + strconv.Itoa(s.pos)}
			}
			s.pos++
			s.skipSpace()
			if s.pos < len(d) && d[s.pos] == c+2 { // '}' is '{'+2, ']' is '['+2
				s.pos++
				break
			}
			stack = append(stack, c == '{')
			if c == '{' {
				if err := s.skipKey(); err != nil {
					return err
				}
			}
			continue
		case '"':
			if _, _, err := s.str(); err != nil {
				return err
			}
		case 't':
			if err := s.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := s.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
		default:
			if _, _, err := s.number(); err != nil {
				return err
			}
		}
		// A value has ended: close containers until one continues.
		for {
			if len(stack) == 0 {
				return nil
			}
			s.skipSpace()
			if s.pos >= len(d) {
				return s.syntaxError("")
			}
			object := stack[len(stack)-1]
			c := d[s.pos]
			if c == ',' {
				s.pos++
				if object {
					if err := s.skipKey(); err != nil {
						return err
					}
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				s.pos++
				stack = stack[:len(stack)-1]
				continue
			}
			if object {
				return s.syntaxError(" after object key:value pair")
			}
			return s.syntaxError(" after array element")
		}
	}
}

// skipKey consumes an object key and its colon.
func (s *scanner) skipKey() *FieldError {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return s.syntaxError(" looking for beginning of object key string")
	}
	if _, _, err := s.str(); err != nil {
		return err
	}
	s.skipSpace()
	return s.expect(':', " after object key")
}
