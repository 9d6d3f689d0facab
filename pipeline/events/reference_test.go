package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/schemas"
)

// The test event types. e declares one field of every type; f reads the same
// field names with other types, so that one input exercises both the
// accepting and the rejecting side of every rule.
const testSchemas = `
events:
  e:
    key: id
    timestamp: ts
    fields:
      id: string
      n: int
      x: float
      ok: bool
      at: timestamp
      s: string
    required: [n]
  f:
    key: n
    timestamp: at
    fields:
      id: float
      n: int
      x: string
      ok: timestamp
      s: bool
      ts: int
`

func loadTestSchemas(tb testing.TB) (e, f *schemas.Event) {
	tb.Helper()
	reg, err := schemas.Parse("test.yaml", []byte(testSchemas))
	require.NoError(tb, err)
	return reg.Events["e"], reg.Events["f"]
}

// refDecode is the reference decoder: encoding/json does the parsing (into a
// map, numbers kept as text), and the type rules are checked on the result.
// It shares no code with Decode. ok is false when the input must be rejected.
func refDecode(t *schemas.Event, data []byte) (values []Value, eventTime int64, ok bool) {
	if !json.Valid(data) {
		return nil, 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, 0, false
	}
	obj, isObject := doc.(map[string]any)
	if !isObject {
		return nil, 0, false
	}
	// The members again, as JSON text: encoding/json reads a string that
	// is no text (invalid UTF-8, a lone surrogate escape) as U+FFFD, which
	// Decode refuses in a declared string field.
	var texts map[string]json.RawMessage
	if err := json.Unmarshal(data, &texts); err != nil {
		return nil, 0, false
	}
	values = make([]Value, len(t.Fields))
	for _, f := range t.Fields {
		raw, present := obj[f.Name]
		if !present || raw == nil {
			if f.Required {
				return nil, 0, false
			}
			continue
		}
		var v Value
		switch f.Type {
		case schemas.String:
			s, isString := raw.(string)
			if !isString || !refIsText(texts[f.Name]) {
				return nil, 0, false
			}
			v = Value{Kind: String, S: s}
		case schemas.Int:
			i, isInt := refInt(raw)
			if !isInt {
				return nil, 0, false
			}
			v = Value{Kind: Int, I: i}
		case schemas.Float:
			num, isNumber := raw.(json.Number)
			if !isNumber {
				return nil, 0, false
			}
			x, err := num.Float64()
			if err != nil {
				return nil, 0, false
			}
			v = Value{Kind: Float, F: x}
		case schemas.Bool:
			b, isBool := raw.(bool)
			if !isBool {
				return nil, 0, false
			}
			v = Value{Kind: Bool, B: b}
		case schemas.Timestamp:
			if s, isString := raw.(string); isString {
				ts, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return nil, 0, false
				}
				v = Value{Kind: Time, I: ts.UnixMilli()}
			} else if i, isInt := refInt(raw); isInt {
				v = Value{Kind: Time, I: i}
			} else {
				return nil, 0, false
			}
			if f.Name == t.Timestamp {
				eventTime = v.I
			}
		}
		values[f.Index] = v
	}
	return values, eventTime, true
}

// refIsText reports whether the JSON string quoted (quotes included,
// checked by json.Valid) is text: valid UTF-8, every escape of half a
// UTF-16 surrogate pair followed by an escape of its other half. It is
// written apart from Decode's unquote, as the reference for it.
func refIsText(quoted []byte) bool {
	s := string(quoted[1 : len(quoted)-1])
	hex := func(i int) uint64 {
		v, err := strconv.ParseUint(s[i+2:i+6], 16, 32) // after `\u`
		if err != nil {
			panic(err) // checked JSON: not reached
		}
		return v
	}
	for i := 0; i < len(s); {
		switch {
		case s[i] != '\\':
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			i += n
		case s[i+1] != 'u':
			i += 2
		default:
			r := hex(i)
			i += 6
			if r >= 0xDC00 && r <= 0xDFFF {
				return false // a low half first
			}
			if r >= 0xD800 && r <= 0xDBFF {
				if !strings.HasPrefix(s[i:], `\u`) {
					return false
				}
				if lo := hex(i); lo < 0xDC00 || lo > 0xDFFF {
					return false
				}
				i += 6
			}
		}
	}
	return true
}

// refInt accepts a JSON integer without fraction or exponent that fits in an
// int64.
func refInt(raw any) (int64, bool) {
	num, isNumber := raw.(json.Number)
	if !isNumber || strings.ContainsAny(string(num), ".eE") {
		return 0, false
	}
	i, err := strconv.ParseInt(string(num), 10, 64)
	return i, err == nil
}

// sameValues compares values exactly, floats bit for bit.
func sameValues(tb testing.TB, want, got []Value, context string) {
	tb.Helper()
	require.Len(tb, got, len(want), context)
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(tb, w.Kind, g.Kind, "%s: value %d: kind", context, i)
		require.Equal(tb, w.S, g.S, "%s: value %d: string", context, i)
		require.Equal(tb, w.I, g.I, "%s: value %d: int", context, i)
		require.Equal(tb, math.Float64bits(w.F), math.Float64bits(g.F), "%s: value %d: float %v vs %v", context, i, w.F, g.F)
		require.Equal(tb, w.B, g.B, "%s: value %d: bool", context, i)
	}
}

// checkAgainstReference decodes data with Decode and with refDecode and
// requires that they agree, that errors are *FieldError, and that the
// normalized form of an accepted event decodes back to the same event.
func checkAgainstReference(tb testing.TB, t *schemas.Event, data []byte) {
	tb.Helper()
	got, err := Decode(t, data)
	want, wantTime, ok := refDecode(t, data)
	if !ok {
		require.Error(tb, err, "event %s: the reference rejects %q, Decode accepts it as %+v", t.Name, data, got.Values)
		var fe *FieldError
		require.True(tb, errors.As(err, &fe), "error %v is not a *FieldError", err)
		return
	}
	require.NoError(tb, err, "event %s: the reference accepts %q as %+v", t.Name, data, want)
	require.Same(tb, t, got.Type)
	require.Equal(tb, wantTime, got.Time, "event time of %q", data)
	sameValues(tb, want, got.Values, fmt.Sprintf("event %s: %q", t.Name, data))

	norm := got.AppendJSON(nil)
	require.True(tb, json.Valid(norm), "normalized form %q is not valid JSON", norm)
	again, err := Decode(t, norm)
	require.NoError(tb, err, "normalized form %q", norm)
	require.Equal(tb, got.Time, again.Time)
	sameValues(tb, got.Values, again.Values, fmt.Sprintf("normalized form %q", norm))
	require.Equal(tb, string(norm), string(again.AppendJSON(nil)), "normalizing is idempotent")
}

func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c.in))
	}
	e, ef := loadTestSchemas(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstReference(t, e, data)
		checkAgainstReference(t, ef, data)
	})
}

// FuzzValueJSON checks that AppendJSON writes valid JSON that encoding/json
// reads back to the same value.
func FuzzValueJSON(f *testing.F) {
	f.Add("plain", 3.0, int64(0))
	f.Add("\"\\\x00\x1f\u2028\u2029<>&\xff\xc3", 1e21, int64(math.MinInt64))
	f.Add("é😀", 1e-7, int64(math.MaxInt64))
	f.Add("", math.Copysign(0, -1), int64(-1))
	f.Add("\xed\xa0\x80", 5e-324, int64(42))
	f.Fuzz(func(t *testing.T, s string, x float64, i int64) {
		text := Value{Kind: String, S: s}.AppendJSON(nil)
		var gotS string
		require.NoError(t, json.Unmarshal(text, &gotS), "%q", text)
		require.Equal(t, replaceInvalidUTF8(s), gotS)
		require.True(t, utf8.Valid(text), "output %q is not valid UTF-8", text)

		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			text = Value{Kind: Float, F: x}.AppendJSON(nil)
			require.True(t, json.Valid(text), "%q", text)
			require.True(t, bytes.ContainsAny(text, ".e"), "float %v written as %q reads as an integer", x, text)
			back, err := strconv.ParseFloat(string(text), 64)
			require.NoError(t, err)
			require.Equal(t, math.Float64bits(x), math.Float64bits(back), "%v written as %q", x, text)
		}

		for _, k := range []Kind{Int, Time} {
			text = Value{Kind: k, I: i}.AppendJSON(nil)
			require.Equal(t, strconv.FormatInt(i, 10), string(text))
		}
	})
}

// replaceInvalidUTF8 replaces each invalid byte by U+FFFD, as encoding/json
// does (strings.ToValidUTF8 would replace runs).
func replaceInvalidUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}
