// Package events decodes and validates raw events against their
// schemas.Event, and writes the normalized JSON form that ingest publishes to
// Kafka and featurize reads back.
//
// Decoding is strict and single-pass: Decode scans one flat JSON object,
// decodes the declared fields straight into typed Values and skips (while
// still validating) everything else. It never builds a map[string]any.
//
// The package must not know about Kafka, Redis or HTTP.
package events

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/freshet-ml/freshet/schemas"
)

// Kind is the type of a decoded Value.
type Kind uint8

// The kinds of Value. Absent, the zero value, marks a field that was missing
// or null.
const (
	Absent Kind = iota
	String
	Int
	Float
	Bool
	// Time is a timestamp field; the Value keeps epoch milliseconds in I.
	Time
)

var kindNames = [...]string{Absent: "absent", String: "string", Int: "int", Float: "float", Bool: "bool", Time: "time"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one decoded field value. Only the member matching Kind is
// meaningful: S for String, I for Int and Time (epoch ms), F for Float, B for
// Bool.
type Value struct {
	Kind Kind
	S    string
	I    int64
	F    float64
	B    bool
}

// Present reports whether v holds a value (the field was neither missing nor
// null).
func (v Value) Present() bool { return v.Kind != Absent }

// Text returns the canonical text of v, used for Kafka keys and entity ids: a
// string as is, an int or a time (epoch ms) in decimal, a float as
// strconv.FormatFloat(f, 'g', -1, 64), a bool as true or false, and "" when
// v is absent.
func (v Value) Text() string {
	switch v.Kind {
	case String:
		return v.S
	case Int, Time:
		return strconv.FormatInt(v.I, 10)
	case Float:
		return strconv.FormatFloat(v.F, 'g', -1, 64)
	case Bool:
		return strconv.FormatBool(v.B)
	}
	return ""
}

// AppendJSON appends v as JSON text to b and returns the extended slice: a
// string quoted and escaped compatibly with encoding/json (without its HTML
// escaping; invalid UTF-8 becomes U+FFFD), an int or a time (epoch ms) as a
// decimal integer, a float in its shortest round-trip form that always has a
// decimal point or an exponent (3.0, not 3), a bool as true or false, and
// null when v is absent.
//
// A float that is NaN or infinite has no JSON form and is written as null;
// Decode never produces one.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.Kind {
	case String:
		return appendQuoted(b, v.S)
	case Int, Time:
		return strconv.AppendInt(b, v.I, 10)
	case Float:
		return appendFloat(b, v.F)
	case Bool:
		return strconv.AppendBool(b, v.B)
	}
	return append(b, "null"...)
}

// Float returns the numeric value of an Int, Float or Time (epoch ms) value,
// and 0 for any other kind.
func (v Value) Float() float64 {
	switch v.Kind {
	case Int, Time:
		return float64(v.I)
	case Float:
		return v.F
	}
	return 0
}

// appendFloat writes f as encoding/json does (ES6 number formatting: plain
// decimal between 1e-6 and 1e21, exponent form outside), then adds ".0" when
// the result would read as an integer.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b
	}
	for _, c := range b[start:] {
		if c == '.' {
			return b
		}
	}
	return append(b, '.', '0')
}

const hexDigits = "0123456789abcdef"

// appendQuoted writes s as a JSON string. It escapes what encoding/json
// escapes except <, > and &: quote, backslash, control characters, U+2028 and
// U+2029; invalid UTF-8 bytes become \ufffd.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainString[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Event is one decoded, validated event.
type Event struct {
	Type *schemas.Event
	// Time is the event time in epoch ms: the value of the Type.Timestamp
	// field.
	Time int64
	// Values holds the field values indexed by schemas.Field.Index; its
	// length is len(Type.Fields).
	Values []Value
}

// Get returns the value of the named field, or an absent Value when the field
// is unknown to the event type or was missing or null.
func (e *Event) Get(field string) Value {
	if e.Type == nil {
		return Value{}
	}
	f, ok := e.Type.Field(field)
	if !ok || f.Index < 0 || f.Index >= len(e.Values) {
		return Value{}
	}
	return e.Values[f.Index]
}

// Key returns the Text of the event type's key field: the Kafka message key.
func (e *Event) Key() string {
	if e.Type == nil {
		return ""
	}
	return e.Get(e.Type.Key).Text()
}

// AppendJSON appends the normalized form of e to b and returns the extended
// slice: one JSON object without whitespace holding the present declared
// fields in declaration order, timestamps as integer epoch ms. Decode reads
// it back to an equal Event.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.Type != nil {
		first := true
		for _, f := range e.Type.Fields {
			if f.Index < 0 || f.Index >= len(e.Values) || !e.Values[f.Index].Present() {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendQuoted(b, f.Name)
			b = append(b, ':')
			b = e.Values[f.Index].AppendJSON(b)
		}
	}
	return append(b, '}')
}

// FieldError is a validation failure of one field, or of the whole object
// when Field is empty (invalid JSON, not an object). Decode returns every
// error as a *FieldError.
type FieldError struct {
	// Field is the schema field at fault, or empty.
	Field string
	// Reason says what is wrong, e.g. "expected float, got string".
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + e.Field + ": " + e.Reason
}

// FieldErrors is every field error of one event, in the schema's
// declaration order: Decode's error when more than one field is wrong.
// errors.As finds the first as a *FieldError.
type FieldErrors []*FieldError

func (e FieldErrors) Error() string {
	msgs := make([]string, len(e))
	for i, fe := range e {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns each field error.
func (e FieldErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

// Each returns the field errors of err, an error of Decode: one for a
// *FieldError, each of a FieldErrors, and nil for any other error.
func Each(err error) []*FieldError {
	var many FieldErrors
	if errors.As(err, &many) {
		return many
	}
	var one *FieldError
	if errors.As(err, &one) {
		return []*FieldError{one}
	}
	return nil
}

// At returns a copy of e moved to event time t: its timestamp field too.
func (e *Event) At(t int64) Event {
	vals := make([]Value, len(e.Values))
	copy(vals, e.Values)
	if f, ok := e.Type.Field(e.Type.Timestamp); ok {
		vals[f.Index] = Value{Kind: Time, I: t}
	}
	return Event{Type: e.Type, Time: t, Values: vals}
}
