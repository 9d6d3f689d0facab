package serve

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/freshet-ml/freshet/pipeline/events"
)

// Request bodies are read as a stream of JSON tokens, never whole and never
// unmarshalled into structs:
//
//   - Lists of entities and of feature names are counted as they are read,
//     and a list longer than a request may hold is refused at its first
//     element too many, having read only the body up to there (plus one
//     buffer). Decoding a 16 MiB body whole before counting took 6.8 s of
//     CPU and hundreds of MB for 8M entities, only to answer 400.
//   - Every refusal names the member and what it wants in the caller's
//     terms (`"entities": want a list of strings or integers, got a
//     string`), never a Go type.
//
// Members are read in order and the first problem found is the answer: what
// follows it is not read. Every other value is read whole before it is
// judged, so that a syntax error inside it is reported as one.

// maxDepth is the deepest nesting of lists and objects accepted, counting
// the top-level object, as in encoding/json.
const maxDepth = 10000

// bodyBufSize is the starting size of a body reader's buffer, and about
// how far past a refusal it may have read; a longer token grows it.
const bodyBufSize = 16 << 10

// bodyBufs recycles the buffers of body readers that did not grow.
var bodyBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, bodyBufSize)
	return &b
}}

// plainByte marks the bytes that stand for themselves inside a JSON
// string: printable ASCII (and DEL) except the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// bodyReader reads JSON from a request body as it arrives. Its methods
// consume what they read; the slices they return point into its buffer and
// hold only until the next read.
type bodyReader struct {
	r   io.Reader
	buf []byte // read from r; buf[pos:] is not consumed yet
	pos int
	off int64 // body offset of buf[0], for refusals
	// mark, when not -1, is where a value whose text rawValue returns
	// starts: buf keeps it while the value is read.
	mark int
	err  error // r's error once it returned one: io.EOF at the end
	// scratch holds strings being unescaped; reused.
	scratch []byte
}

func newBodyReader(r io.Reader) *bodyReader {
	return &bodyReader{r: r, buf: (*bodyBufs.Get().(*[]byte))[:0], mark: -1}
}

// release recycles the buffer; b must not be used after.
func (b *bodyReader) release() {
	if cap(b.buf) == bodyBufSize {
		buf := b.buf[:0]
		bodyBufs.Put(&buf)
	}
	b.buf = nil
}

// fill reads more of the body after buf's end, first dropping what lies
// before keep (or before mark, if earlier) to make room. It returns how far
// the bytes kept moved towards the start of buf, which the caller's
// indexes into buf must move too, and false when nothing more can be read:
// b.err says why.
func (b *bodyReader) fill(keep int) (int, bool) {
	if b.err != nil {
		return 0, false
	}
	if b.mark >= 0 && b.mark < keep {
		keep = b.mark
	}
	if keep > 0 {
		n := copy(b.buf, b.buf[keep:])
		b.buf = b.buf[:n]
		b.pos -= keep
		b.off += int64(keep)
		if b.mark >= 0 {
			b.mark -= keep
		}
	}
	if len(b.buf) == cap(b.buf) { // one token fills it: grow
		buf := make([]byte, len(b.buf), 2*cap(b.buf)+bodyBufSize)
		copy(buf, b.buf)
		b.buf = buf
	}
	for range 100 {
		n, err := b.r.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		if err != nil {
			b.err = err
		}
		if n > 0 {
			return keep, true
		}
		if err != nil {
			return keep, false
		}
	}
	b.err = io.ErrNoProgress
	return keep, false
}

// peek skips whitespace and returns the next byte without consuming it;
// false at the end of the body or on a read error.
func (b *bodyReader) peek() (byte, bool) {
	for {
		for b.pos < len(b.buf) {
			switch c := b.buf[b.pos]; c {
			case ' ', '\t', '\n', '\r':
				b.pos++
			default:
				return c, true
			}
		}
		if _, ok := b.fill(b.pos); !ok {
			return 0, false
		}
	}
}

// endError is the refusal of a body that ends (or cannot be read) before
// the JSON object does: 413 for one over the size limit, 400 otherwise.
func (b *bodyReader) endError() error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(b.err, &tooBig):
		return tooLarge(tooBig.Limit)
	case b.err == nil, b.err == io.EOF, errors.Is(b.err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON body: it ends before the JSON object does")
	}
	// A failure to read the request itself (the client went away).
	return badRequest("reading the request body: %v", b.err)
}

// syntax is the refusal of the byte at pos, in context (e.g. " after
// array element"), or of the end of the body there.
func (b *bodyReader) syntax(context string) error {
	if b.pos >= len(b.buf) {
		return b.endError()
	}
	return badRequest("invalid JSON body: invalid character %s%s at byte %d", quoteChar(b.buf[b.pos]), context, b.off+int64(b.pos))
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	// A byte, not the rune of its value: 0xff is shown as \xff.
	s := strconv.Quote(string([]byte{c}))
	return "'" + s[1:len(s)-1] + "'"
}

// startsValue reports whether a JSON value can start with c.
func startsValue(c byte) bool {
	switch c {
	case '{', '[', '"', 't', 'f', 'n', '-':
		return true
	}
	return c >= '0' && c <= '9'
}

// str consumes the string at pos (its opening quote) and returns its
// content between the quotes, and whether that is plain: no escapes, valid
// UTF-8, the text itself.
func (b *bodyReader) str() (raw []byte, plain bool, err error) {
	start := b.pos
	i := start + 1
	escaped, ascii, esc := false, true, false
	hex := 0 // hex digits of a \u escape still to come
	for {
		if i >= len(b.buf) {
			shift, ok := b.fill(start)
			start, i = start-shift, i-shift
			if !ok {
				b.pos = i
				return nil, false, b.endError()
			}
			continue
		}
		c := b.buf[i]
		switch {
		case hex > 0:
			if !isHex(c) {
				b.pos = i
				return nil, false, b.syntax(` in \u hexadecimal character escape`)
			}
			hex--
		case esc:
			esc = false
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				hex = 4
			default:
				b.pos = i
				return nil, false, b.syntax(" in string escape code")
			}
		case c == '"':
			b.pos = i + 1
			raw = b.buf[start+1 : i]
			return raw, !escaped && (ascii || utf8.Valid(raw)), nil
		case c == '\\':
			esc, escaped = true, true
		case c < 0x20:
			b.pos = i
			return nil, false, b.syntax(" in string literal")
		case c >= utf8.RuneSelf:
			ascii = false
		default:
			for i++; i < len(b.buf) && plainByte[b.buf[i]]; i++ {
			}
			continue
		}
		i++
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number consumes the number at pos and returns its text and whether it is
// an integer (no fraction, no exponent).
func (b *bodyReader) number() (text []byte, integer bool, err error) {
	start := b.pos
	i := start
	for {
		if i >= len(b.buf) {
			shift, ok := b.fill(start)
			start, i = start-shift, i-shift
			if !ok {
				if b.err != io.EOF {
					b.pos = i
					return nil, false, b.endError()
				}
				break // a number may end the body
			}
			continue
		}
		if c := b.buf[i]; c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			i++
			continue
		}
		break
	}
	text = b.buf[start:i]
	n, integer, context := numberPrefix(text)
	b.pos = start + n
	if context != "" {
		return nil, false, b.syntax(context)
	}
	if n < len(text) { // e.g. 01 or 1-2: a number, then more
		return nil, false, b.syntax(" after a number")
	}
	return text, integer, nil
}

// numberPrefix reads the JSON number at the start of text: the length of
// the valid part, whether it is an integer, and, when the number is cut
// short, what the byte at that length breaks (text may end there).
func numberPrefix(text []byte) (n int, integer bool, context string) {
	i := 0
	digits := func() {
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			i++
		}
	}
	if i < len(text) && text[i] == '-' {
		i++
	}
	switch {
	case i < len(text) && text[i] == '0':
		i++
	case i < len(text) && text[i] >= '1' && text[i] <= '9':
		digits()
	default:
		return i, false, " in numeric literal"
	}
	integer = true
	if i < len(text) && text[i] == '.' {
		integer = false
		i++
		if i >= len(text) || text[i] < '0' || text[i] > '9' {
			return i, false, " after decimal point in numeric literal"
		}
		digits()
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		integer = false
		i++
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			i++
		}
		if i >= len(text) || text[i] < '0' || text[i] > '9' {
			return i, false, " in exponent of numeric literal"
		}
		digits()
	}
	return i, integer, ""
}

// literal consumes true, false or null at pos, whose first byte is c.
func (b *bodyReader) literal(c byte) error {
	word := "null"
	switch c {
	case 't':
		word = "true"
	case 'f':
		word = "false"
	}
	for k := 0; k < len(word); k++ {
		if b.pos >= len(b.buf) {
			if _, ok := b.fill(b.pos); !ok {
				return b.endError()
			}
		}
		if b.buf[b.pos] != word[k] {
			return b.syntax(" in literal " + word + " (expecting " + quoteChar(word[k]) + ")")
		}
		b.pos++
	}
	return nil
}

// skip consumes one JSON value of any kind, checking it; depth is the
// nesting depth of the list or object holding it. Lists and objects are
// tracked on an explicit stack, so deep nesting cannot exhaust the
// goroutine's.
func (b *bodyReader) skip(depth int) error {
	var stackBuf [32]bool
	stack := stackBuf[:0] // true for an object, false for a list
	for {
		c, ok := b.peek()
		if !ok {
			return b.endError()
		}
		switch c {
		case '{', '[':
			if depth+len(stack)+1 > maxDepth {
				return badRequest("invalid JSON body: exceeded max nesting depth %d at byte %d", maxDepth, b.off+int64(b.pos))
			}
			b.pos++
			next, ok := b.peek()
			if !ok {
				return b.endError()
			}
			if next == c+2 { // '}' is '{'+2, ']' is '['+2
				b.pos++
				break
			}
			stack = append(stack, c == '{')
			if c == '{' {
				if _, err := b.key(false); err != nil {
					return err
				}
			}
			continue
		case '"':
			if _, _, err := b.str(); err != nil {
				return err
			}
		case 't', 'f', 'n':
			if err := b.literal(c); err != nil {
				return err
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return b.syntax(" looking for beginning of value")
			}
			if _, _, err := b.number(); err != nil {
				return err
			}
		}
		// A value has ended: close lists and objects until one goes on.
		for {
			if len(stack) == 0 {
				return nil
			}
			c, ok := b.peek()
			if !ok {
				return b.endError()
			}
			object := stack[len(stack)-1]
			if c == ',' {
				b.pos++
				if object {
					if _, err := b.key(false); err != nil {
						return err
					}
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				b.pos++
				stack = stack[:len(stack)-1]
				continue
			}
			if object {
				return b.syntax(" after object key:value pair")
			}
			return b.syntax(" after array element")
		}
	}
}

// key consumes an object key and its colon and, when asked to, returns
// the key's text: unescaped, with U+FFFD for what is no text (a member name
// is only compared with names, which are ASCII, or quoted in a refusal).
func (b *bodyReader) key(text bool) (string, error) {
	c, ok := b.peek()
	if !ok {
		return "", b.endError()
	}
	if c != '"' {
		return "", b.syntax(" looking for beginning of object key string")
	}
	raw, plain, err := b.str()
	if err != nil {
		return "", err
	}
	var name string
	if text { // now: raw lasts until the next read
		name = b.text(raw, plain)
	}
	if c, ok = b.peek(); !ok {
		return "", b.endError()
	}
	if c != ':' {
		return "", b.syntax(" after object key")
	}
	b.pos++
	return name, nil
}

// text is the text of string content str returned, U+FFFD for what is no
// text.
func (b *bodyReader) text(raw []byte, plain bool) string {
	if plain {
		return string(raw)
	}
	b.scratch, _ = events.AppendText(b.scratch[:0], raw)
	return string(b.scratch)
}

// members reads the object at pos, calling fn with the name of each member
// for fn to read its value, with one of b's methods, in order.
func (b *bodyReader) members(fn func(name string) error) error {
	b.pos++ // '{', which the caller saw
	c, ok := b.peek()
	if !ok {
		return b.endError()
	}
	if c == '}' {
		b.pos++
		return nil
	}
	for {
		name, err := b.key(true)
		if err != nil {
			return err
		}
		if err := fn(name); err != nil {
			return err
		}
		if c, ok = b.peek(); !ok {
			return b.endError()
		}
		switch c {
		case ',':
			b.pos++
		case '}':
			b.pos++
			return nil
		default:
			return b.syntax(" after object key:value pair")
		}
	}
}

// list reads the list at pos, calling elem with the index of each element
// for elem to read it. A list of more than limit elements is refused with
// tooMany when its first element too many starts, unread.
func (b *bodyReader) list(limit int, tooMany func() error, elem func(i int) error) error {
	b.pos++ // '[', which the caller saw
	c, ok := b.peek()
	if !ok {
		return b.endError()
	}
	if c == ']' {
		b.pos++
		return nil
	}
	for i := 0; ; i++ {
		if i == limit && startsValue(c) {
			return tooMany()
		}
		if err := elem(i); err != nil {
			return err
		}
		if c, ok = b.peek(); !ok {
			return b.endError()
		}
		switch c {
		case ',':
			b.pos++
			if c, ok = b.peek(); !ok {
				return b.endError()
			}
		case ']':
			b.pos++
			return nil
		default:
			return b.syntax(" after array element")
		}
	}
}

// kind returns the first byte of the value at pos, unread.
func (b *bodyReader) kind() (byte, error) {
	c, ok := b.peek()
	if !ok {
		return 0, b.endError()
	}
	return c, nil
}

// rawValue consumes one value of any kind, checked, and returns its JSON
// text; depth is as in skip.
func (b *bodyReader) rawValue(depth int) ([]byte, error) {
	if _, ok := b.peek(); !ok {
		return nil, b.endError()
	}
	b.mark = b.pos
	err := b.skip(depth)
	raw := b.buf[b.mark:b.pos]
	b.mark = -1
	return raw, err
}

// refuse consumes the value at pos, starting with c, and refuses it with
// err, unless it is malformed: a value is read whole before it is judged.
func (b *bodyReader) refuse(depth int, err error) error {
	if serr := b.skip(depth); serr != nil {
		return serr
	}
	return err
}

// entity reads one element of a list of entities: its canonical text (a
// string as is, an integer in decimal, so that 42 and "42" name one
// entity) and whether it is an integer. what and i name the element in
// refusals, e.g. entities[3]; depth is the list's nesting depth.
func (b *bodyReader) entity(what string, i, depth int) (string, bool, error) {
	c, err := b.kind()
	if err != nil {
		return "", false, err
	}
	switch {
	case c == '"':
		raw, plain, err := b.str()
		if err != nil {
			return "", false, err
		}
		if plain {
			return string(raw), false, nil
		}
		// Not text (invalid UTF-8, a lone surrogate escape) is refused as
		// ingest refuses it: encoding/json would read U+FFFD, and look up
		// another id than the one sent.
		var reason string
		if b.scratch, reason = events.AppendText(b.scratch[:0], raw); reason != "" {
			return "", false, badRequest("%s[%d]: %s", what, i, reason)
		}
		return string(b.scratch), false, nil
	case c == '-' || c >= '0' && c <= '9':
		raw, integer, err := b.number()
		if err != nil {
			return "", false, err
		}
		if !integer {
			return "", false, badRequest("%s[%d]: %s is not an integer: want a string or an integer", what, i, clip(string(raw)))
		}
		// A JSON integer has no leading zeros and no plus: its text is
		// its canonical decimal, beyond int64 too, but for -0.
		if string(raw) == "-0" {
			return "0", true, nil
		}
		return string(raw), true, nil
	}
	return "", false, b.refuse(depth, badRequest("%s[%d]: want a string or an integer, got %s", what, i, jsonKind(c)))
}

// name reads one element of a list of names: a string that is text. what
// and i name the element in refusals, elem says what it must be (e.g. `a
// feature name`); depth is the list's nesting depth.
func (b *bodyReader) name(what string, i int, elem string, depth int) (string, error) {
	c, err := b.kind()
	if err != nil {
		return "", err
	}
	if c != '"' {
		return "", b.refuse(depth, badRequest("%s[%d]: want %s (a string), got %s", what, i, elem, jsonKind(c)))
	}
	raw, plain, err := b.str()
	if err != nil {
		return "", err
	}
	if plain {
		return string(raw), nil
	}
	var reason string
	if b.scratch, reason = events.AppendText(b.scratch[:0], raw); reason != "" {
		return "", badRequest("%s[%d]: %s", what, i, reason)
	}
	return string(b.scratch), nil
}

// entities reads the value of a member holding a list of entities, named
// what; a null is no list (false). limit is the most entities a request
// may name.
func (b *bodyReader) entities(what string, limit, depth int) (texts []string, numbers []bool, ok bool, err error) {
	c, err := b.kind()
	if err != nil {
		return nil, nil, false, err
	}
	switch c {
	case 'n':
		return nil, nil, false, b.literal(c)
	case '[':
	default:
		return nil, nil, false, b.refuse(depth, badRequest("%q: want a list of strings or integers, got %s", what, jsonKind(c)))
	}
	texts = []string{}
	err = b.list(limit, func() error { return tooManyEntities(limit) }, func(i int) error {
		t, number, err := b.entity(what, i, depth+1)
		texts = append(texts, t)
		numbers = append(numbers, number)
		return err
	})
	return texts, numbers, true, err
}

// names reads the value of a member holding a list of names, named what:
// want says what the list holds, elem what each name is. A null is no
// list.
func (b *bodyReader) names(what, want, elem string, depth int) ([]string, error) {
	c, err := b.kind()
	if err != nil {
		return nil, err
	}
	switch c {
	case 'n':
		return nil, b.literal(c)
	case '[':
	default:
		return nil, b.refuse(depth, badRequest("%q: want %s, got %s", what, want, jsonKind(c)))
	}
	var out []string
	err = b.list(maxFeatures, tooManyFeatures, func(i int) error {
		n, err := b.name(what, i, elem, depth+1)
		out = append(out, n)
		return err
	})
	return out, err
}

func tooManyEntities(limit int) error {
	return badRequest("too many entities: at most %d per request; split the request", limit)
}

func tooManyFeatures() error {
	return badRequest("too many features: at most %d per request", maxFeatures)
}

// readObject reads the body of r, at most s.maxBody bytes, which must be
// one JSON object and nothing after it, calling member with the name of
// each of its members, in order, for member to read its value with one of
// b's methods.
func (s *Server) readObject(w http.ResponseWriter, r *http.Request, member func(b *bodyReader, name string) error) error {
	if r.ContentLength > s.maxBody {
		return tooLarge(s.maxBody)
	}
	b := newBodyReader(http.MaxBytesReader(w, r.Body, s.maxBody))
	defer b.release()
	c, ok := b.peek()
	switch {
	case !ok && b.err == io.EOF:
		return badRequest("empty request body: want a JSON object")
	case !ok:
		return b.endError()
	case c != '{':
		return b.refuse(0, badRequest("request body: want a JSON object, got %s", jsonKind(c)))
	}
	if err := b.members(func(name string) error { return member(b, name) }); err != nil {
		return err
	}
	if c, ok := b.peek(); ok {
		if startsValue(c) {
			return badRequest("invalid JSON body: data after the JSON object")
		}
		return b.syntax(" after top-level value")
	}
	if b.err != io.EOF {
		return b.endError()
	}
	return nil
}

// duplicate is the refusal of a member given twice: which value counts
// would be a guess.
func duplicate(name string) error {
	return badRequest("%q given twice", name)
}

// boolMember reads value, the JSON text of a member, as a bool; null is
// false.
func boolMember(value []byte, name string) (bool, error) {
	switch string(value) {
	case "true":
		return true, nil
	case "false", "null":
		return false, nil
	}
	return false, badRequest("%q: want true or false, got %s", name, jsonKind(value[0]))
}
