package events

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/freshet-ml/freshet/schemas"
)

// fieldState is what an object said about one declared field.
type fieldState uint8

const (
	missing fieldState = iota
	set
	null
	wrong
)

// Decode decodes and validates one event of type t from data, which must be
// exactly one JSON object (surrounding whitespace allowed). Every error is a
// *FieldError; Decode never panics, whatever data holds.
//
// Each declared field takes exactly one JSON type: a string field a string;
// an int field an integer (no fraction or exponent) that fits in an int64; a
// float field any number; a bool field true or false; a timestamp field an
// RFC 3339 string (any offset) or an integer of epoch milliseconds, kept as
// epoch ms (sub-millisecond digits are truncated towards the past).
//
// A missing or null optional field is Absent; a missing or null required
// field is an error. Fields not in the schema are skipped whatever their
// type, but must still be valid JSON. When a key repeats, the last value
// wins, as in encoding/json. A string value must be text (see AppendText):
// a byte that is not UTF-8, or an escape of half a UTF-16 surrogate pair
// alone (\udcff), is a field error, where encoding/json would read U+FFFD
// and merge different ids into one. A skipped field is not checked for it.
//
// Malformed JSON anywhere in data is reported alone, as a *FieldError;
// otherwise a single wrong field is a *FieldError and several are a
// FieldErrors naming each, in the schema's declaration order.
func Decode(t *schemas.Event, data []byte) (Event, error) {
	return decode(t, data, nil, 0)
}

// Decode is events.Decode that also checks the event time against r at now
// (epoch ms): an implausible time is one more field error, listed with the
// others, so that a sender learns everything wrong with an event at once.
func (r TimeRule) Decode(t *schemas.Event, data []byte, now int64) (Event, error) {
	return decode(t, data, &r, now)
}

// decode is Decode and TimeRule.Decode: one pass over the object, then the
// field errors in declaration order.
//
// It is one long function on purpose. It is the hottest code of ingest
// (every event of every request and replay) and featurize (every message),
// measured by BenchmarkDecode: the per-field state (states, in a stack
// array for up to 64 fields; reasons, allocated only for a wrong value;
// the lookup hint) stays in the locals of one frame, where the compiler
// keeps it off the heap, and a member costs no call beyond the scanner's.
// Split it only with BenchmarkDecode's time and allocations compared.
func decode(t *schemas.Event, data []byte, rule *TimeRule, now int64) (Event, error) {
	if t == nil {
		return Event{}, &FieldError{Reason: "no event type to decode against"}
	}
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(data) {
		return Event{}, s.syntaxError("")
	}
	if c := data[s.pos]; c != '{' {
		// Only a valid JSON value is named by its kind: "not json" is
		// invalid JSON, not a null. This path is the error path only.
		if k := jsonKind(c); k != "" && json.Valid(data) {
			return Event{}, &FieldError{Reason: "expected a JSON object, got " + k}
		}
		return Event{}, s.syntaxError(" looking for beginning of value")
	}
	s.pos++

	n := len(t.Fields)
	longest := 0
	for _, f := range t.Fields {
		longest = max(longest, len(f.Name))
	}
	ev := Event{Type: t, Values: make([]Value, n)}
	var statesBuf [64]fieldState
	var states []fieldState
	if n <= len(statesBuf) {
		states = statesBuf[:n]
	} else {
		states = make([]fieldState, n)
	}
	var reasons []string // by field index, allocated at the first wrong value
	hint := 0            // where lookup tries first
	var number, tsNumber bool

	s.skipSpace()
	if s.pos < len(data) && data[s.pos] == '}' {
		s.pos++
	} else {
		for {
			s.skipSpace()
			if s.pos >= len(data) || data[s.pos] != '"' {
				return Event{}, s.syntaxError(" looking for beginning of object key string")
			}
			raw, plain, err := s.str()
			if err != nil {
				return Event{}, err
			}
			s.skipSpace()
			if err := s.expect(':', " after object key"); err != nil {
				return Event{}, err
			}
			s.skipSpace()
			if i := s.lookup(t, raw, plain, hint, longest); i >= 0 {
				hint = i + 1
				// Whether the value is a number, for the time rule's
				// message: an integer time is shown as read.
				number = s.pos < len(s.data) && (s.data[s.pos] == '-' || (s.data[s.pos] >= '0' && s.data[s.pos] <= '9'))
				st, reason, err := s.value(&t.Fields[i], &ev.Values[i])
				if err != nil {
					return Event{}, err
				}
				states[i] = st
				if t.Fields[i].Name == t.Timestamp {
					tsNumber = number
				}
				if st != set {
					ev.Values[i] = Value{}
				}
				if st == wrong {
					if reasons == nil {
						reasons = make([]string, n)
					}
					reasons[i] = reason
				}
			} else if err := s.skip(1); err != nil {
				return Event{}, err
			}
			s.skipSpace()
			if s.pos < len(data) && data[s.pos] == ',' {
				s.pos++
				continue
			}
			if s.pos < len(data) && data[s.pos] == '}' {
				s.pos++
				break
			}
			return Event{}, s.syntaxError(" after object key:value pair")
		}
	}
	s.skipSpace()
	if s.pos < len(data) {
		return Event{}, s.syntaxError(" after top-level value")
	}

	var errs FieldErrors
	for i := range t.Fields {
		f := &t.Fields[i]
		switch states[i] {
		case wrong:
			errs = append(errs, &FieldError{Field: f.Name, Reason: reasons[i]})
		case missing:
			if f.Required {
				errs = append(errs, &FieldError{Field: f.Name, Reason: "required field is missing"})
			}
		case null:
			if f.Required {
				errs = append(errs, &FieldError{Field: f.Name, Reason: "required field is null"})
			}
		case set:
			if f.Type == schemas.Timestamp && f.Name == t.Timestamp {
				ev.Time = ev.Values[i].I
				if rule != nil {
					if fe := rule.Check(f.Name, ev.Time, tsNumber, now); fe != nil {
						errs = append(errs, fe)
					}
				}
			}
		}
	}
	switch len(errs) {
	case 0:
		return ev, nil
	case 1:
		return Event{}, errs[0]
	}
	return Event{}, errs
}

// lookup returns the position in t.Fields of the field named by the raw key,
// or -1. Senders usually write fields in declaration order, and the
// normalized form always does, so the field after the previous one (at hint)
// is tried before the map; longest is the length of the longest field name,
// so that longer keys cost no lookup.
func (s *scanner) lookup(t *schemas.Event, raw []byte, plain bool, hint, longest int) int {
	key := raw
	if !plain {
		// A key that is no text matches no field (names are ASCII):
		// skipped as unknown, as encoding/json would skip it.
		s.scratch, _ = unquote(s.scratch[:0], raw)
		key = s.scratch
	}
	if len(key) > longest {
		return -1
	}
	if hint < len(t.Fields) && t.Fields[hint].Name == string(key) && t.Fields[hint].Index == hint {
		return hint
	}
	f, ok := t.Field(string(key))
	if !ok || f.Index < 0 || f.Index >= len(t.Fields) || t.Fields[f.Index].Name != f.Name {
		return -1
	}
	return f.Index
}

// value decodes the value at pos for field f. When it returns the state set,
// it has stored the value in v, assigning only the members of the field's
// kind (v is zero or holds an earlier value of the same field). A value of
// the wrong type is not a syntax error: it returns the state wrong and a
// reason, and is consumed like any other.
func (s *scanner) value(f *schemas.Field, v *Value) (fieldState, string, *FieldError) {
	if s.pos >= len(s.data) {
		return 0, "", s.syntaxError("")
	}
	switch c := s.data[s.pos]; c {
	case 'n':
		if err := s.literal("null"); err != nil {
			return 0, "", err
		}
		return null, "", nil
	case 't', 'f':
		b := c == 't'
		word := "false"
		if b {
			word = "true"
		}
		if err := s.literal(word); err != nil {
			return 0, "", err
		}
		if f.Type != schemas.Bool {
			return mismatch(f, "bool")
		}
		v.Kind, v.B = Bool, b
		return set, "", nil
	case '"':
		raw, plain, err := s.str()
		if err != nil {
			return 0, "", err
		}
		switch f.Type {
		case schemas.String:
			text, reason := s.text(raw, plain)
			if reason != "" {
				return wrong, reason, nil
			}
			v.Kind, v.S = String, text
			return set, "", nil
		case schemas.Timestamp:
			if !plain {
				var bad int
				if s.scratch, bad = unquote(s.scratch[:0], raw); bad >= 0 {
					return wrong, textReason(raw, bad), nil
				}
				raw = s.scratch
			}
			ts, err := time.Parse(time.RFC3339Nano, string(raw))
			if err != nil {
				if IsInteger(string(raw)) { // TimeReason's advice, in JSON terms
					return wrong, "invalid timestamp " + strconv.Quote(Clip(string(raw))) +
						": digits in a string are not an RFC 3339 time; send epoch milliseconds as a JSON number, without quotes", nil
				}
				return wrong, TimeReason(string(raw), err), nil
			}
			v.Kind, v.I = Time, ts.UnixMilli()
			return set, "", nil
		}
		return mismatch(f, "string")
	case '{', '[':
		if err := s.skip(1); err != nil {
			return 0, "", err
		}
		return mismatch(f, jsonKind(c))
	}
	text, integer, err := s.number()
	if err != nil {
		return 0, "", err
	}
	switch f.Type {
	case schemas.Int, schemas.Timestamp:
		if !integer {
			break
		}
		i, ok := parseInt(text)
		if !ok {
			return wrong, "expected " + expectation(f.Type) + ", got " + Clip(string(text)) + " (out of int64 range)", nil
		}
		kind := Int
		if f.Type == schemas.Timestamp {
			kind = Time
		}
		v.Kind, v.I = kind, i
		return set, "", nil
	case schemas.Float:
		x, err := strconv.ParseFloat(string(text), 64)
		if err != nil {
			return wrong, "expected float, got " + Clip(string(text)) + " (out of float64 range)", nil
		}
		v.Kind, v.F = Float, x
		return set, "", nil
	}
	if integer {
		return mismatch(f, "int "+Clip(string(text)))
	}
	return mismatch(f, "float "+Clip(string(text)))
}

func mismatch(f *schemas.Field, got string) (fieldState, string, *FieldError) {
	return wrong, "expected " + expectation(f.Type) + ", got " + got, nil
}

func expectation(t schemas.FieldType) string {
	if t == schemas.Timestamp {
		return "timestamp (RFC 3339 string or integer epoch milliseconds)"
	}
	return string(t)
}

// TimeReason explains why value is not an RFC 3339 timestamp without
// repeating the value and layout that time.ParseError spells out; every
// reader of events words it this way.
func TimeReason(value string, err error) string {
	if IsInteger(value) {
		// Epoch milliseconds as text: time.Parse would say
		// `cannot parse "302142648" as "-"`.
		return "invalid timestamp " + strconv.Quote(Clip(value)) + ": digits are not an RFC 3339 time; give epoch milliseconds as an integer, not as text"
	}
	msg := err.Error()
	var pe *time.ParseError
	if errors.As(err, &pe) {
		if pe.Message != "" {
			msg = strings.TrimPrefix(pe.Message, ": ")
		} else {
			msg = "cannot parse " + strconv.Quote(Clip(pe.ValueElem)) + " as " + strconv.Quote(pe.LayoutElem)
		}
	}
	return "invalid timestamp " + strconv.Quote(Clip(value)) + ": " + msg
}

// Clip shortens text quoted in error reasons.
func Clip(text string) string {
	const limit = 64
	if len(text) <= limit {
		return text
	}
	return strings.ToValidUTF8(text[:limit], "") + "..."
}

// IsInteger reports whether s is an integer as JSON writes one: an optional
// minus and one or more ASCII digits (leading zeros allowed), of any
// magnitude. It is freshet's one test of "is this text an integer", for
// readers of text that may hold epoch milliseconds or integer ids.
func IsInteger(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
