package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"
)

// Request bodies are not unmarshalled into structs: every refusal names the
// member and what it wants in the caller's terms (`"entities": want a list
// of strings or integers, got a string`), never a Go type. The body is
// checked whole by encoding/json, then its members are walked in order over
// the checked bytes, each value unmarshalled into a type that cannot fail
// (json.RawMessage, jsonText), so the caller's words decide every refusal.

// readObject reads the body of r, at most s.maxBody bytes, which must be
// one JSON object and nothing after it, and returns its text.
func (s *Server) readObject(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.maxBody {
		return nil, tooLarge(s.maxBody)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badRequest("empty request body: want a JSON object")
		}
		return nil, bodyError(err)
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
	case err != nil:
		return nil, bodyError(err)
	default:
		return nil, badRequest("invalid JSON body: data after the JSON object")
	}
	switch i := skipSpace(raw, 0); {
	case i >= len(raw): // not reached: a decoded value has a first byte
		return nil, badRequest("empty request body: want a JSON object")
	case raw[i] != '{':
		return nil, badRequest("request body: want a JSON object, got %s", jsonKind(raw[i]))
	}
	return raw, nil
}

// bodyError turns a decoding failure into the refusal the caller sees: 413
// for a body over the limit, 400 naming what is wrong otherwise.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(tooBig.Limit)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON body: it ends before the JSON object does")
	case errors.As(err, &syn):
		// Not its Offset: the decoder counts it from where it resumed, not
		// from the start of the body.
		return badRequest("invalid JSON body: %s", syn.Error())
	}
	// A failure to read the request itself (the client went away): what
	// happened, with no decoder type names.
	return badRequest("reading the request body: %v", err)
}

// eachMember calls fn with the name and the value text of each member of
// the JSON object obj, in order, stopping at fn's first error. obj must be
// JSON that encoding/json has checked; on anything else it stops without
// panicking, having seen less.
func eachMember(obj []byte, fn func(name, value []byte) error) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	for i++; ; {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil // '}'
		}
		end := skipString(obj, i)
		name := obj[i:end]
		i = skipSpace(obj, end) + 1 // the colon
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return nil
		}
		vend := skipValue(obj, i)
		if vend == i {
			return nil // not a value: not reached on checked JSON
		}
		if err := fn(name, obj[i:vend]); err != nil {
			return err
		}
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i++
		}
	}
}

// memberName is the text of a member name as JSON writes it (quoted):
// without escapes it is the bytes between the quotes.
func memberName(quoted []byte) string {
	if inner := quoted[1 : len(quoted)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return string(quoted) // checked JSON: not reached
	}
	return s
}

// nameIndex is the index in names of the member name quoted, -1 for none.
func nameIndex(quoted []byte, names []string) int {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		inner = []byte(memberName(quoted)) // escapes: compare what they spell
	}
	for i, n := range names {
		if string(inner) == n { // a comparison: no copy
			return i
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	// A number, true, false or null: up to the next delimiter.
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// rawList reads value as a list of values, each kept whole; what names the
// member and want says what it must hold, for the refusal of anything but
// a list. A null is no list (nil, false).
func rawList(value []byte, what, want string) ([]json.RawMessage, bool, error) {
	if err := listKind(value, what, want); err != nil || value[0] == 'n' {
		return nil, false, err
	}
	out := []json.RawMessage{}
	if err := json.Unmarshal(value, &out); err != nil {
		// value is a checked list: not reached.
		return nil, false, badRequest("%q: want %s", what, want)
	}
	return out, true, nil
}

// stringList reads value as a list of strings; elem says what each element
// is, for the refusal of anything else (e.g. `a feature name`). A null is
// no list (nil, false).
func stringList(value []byte, what, want, elem string) ([]string, bool, error) {
	if err := listKind(value, what, want); err != nil || value[0] == 'n' {
		return nil, false, err
	}
	var texts []jsonText
	if err := json.Unmarshal(value, &texts); err != nil {
		return nil, false, badRequest("%q: want %s", what, want) // as in rawList
	}
	out := make([]string, len(texts))
	for i, t := range texts {
		if t.kind != '"' {
			return nil, false, badRequest("%s[%d]: want %s (a string), got %s", what, i, elem, jsonKind(t.kind))
		}
		out[i] = t.s
	}
	return out, true, nil
}

// listKind refuses a value that is neither a list nor null.
func listKind(value []byte, what, want string) error {
	if c := value[0]; c != '[' && c != 'n' {
		return badRequest("%q: want %s, got %s", what, want, jsonKind(c))
	}
	return nil
}

// jsonText is a list element wanted as a string: its text when it is one,
// and the first byte of its JSON, which tells its kind.
type jsonText struct {
	s    string
	kind byte
}

// UnmarshalJSON implements json.Unmarshaler. It never fails on valid JSON:
// the caller refuses elements of the wrong kind in its own words.
func (t *jsonText) UnmarshalJSON(b []byte) error {
	t.kind = b[0]
	if t.kind == '"' {
		t.s = memberName(b)
	}
	return nil
}

// duplicate is the refusal of a member given twice: which value counts
// would be a guess.
func duplicate(name string) error {
	return badRequest("%q given twice", name)
}

// boolMember reads value as a bool; null is false.
func boolMember(value []byte, name string) (bool, error) {
	switch string(value) {
	case "true":
		return true, nil
	case "false", "null":
		return false, nil
	}
	return false, badRequest("%q: want true or false, got %s", name, jsonKind(value[0]))
}
