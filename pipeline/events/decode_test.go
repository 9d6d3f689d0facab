package events

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func str(s string) Value    { return Value{Kind: String, S: s} }
func integer(i int64) Value { return Value{Kind: Int, I: i} }
func flt(x float64) Value   { return Value{Kind: Float, F: x} }
func boolean(b bool) Value  { return Value{Kind: Bool, B: b} }
func ms(i int64) Value      { return Value{Kind: Time, I: i} }

// pre opens an object holding the required fields of event e: id "a", ts 0,
// n 1. Cases append the fields under test.
const pre = `{"id":"a","ts":0,"n":1,`

// base is what pre decodes to, plus the fields in extra.
func base(extra map[string]Value) map[string]Value {
	m := map[string]Value{"id": str("a"), "ts": ms(0), "n": integer(1)}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

type decodeCase struct {
	name string
	in   string
	// want holds the present fields of event e; nil when Decode must fail.
	want map[string]Value
	// errField and errReason (a substring) describe the expected error.
	errField, errReason string
}

// decodeCases run against event e, and against both test events through the
// reference decoder; they also seed FuzzDecode.
var decodeCases = []decodeCase{
	// The required fields, and nothing else.
	{name: "minimal", in: `{"id":"a","ts":0,"n":1}`, want: base(nil)},
	{name: "field order is free", in: `{"n":1,"ts":0,"id":"a"}`, want: base(nil)},
	{name: "every field", in: `{"id":"t-1","n":-7,"x":42.17,"ok":true,"at":"2024-05-01T12:34:56.789Z","s":"","ts":1714566896789}`,
		want: map[string]Value{"id": str("t-1"), "n": integer(-7), "x": flt(42.17), "ok": boolean(true),
			"at": ms(1714566896789), "s": str(""), "ts": ms(1714566896789)}},
	{name: "whitespace everywhere", in: " \t\r\n{ \"id\" :\n\"a\" ,\t\"ts\"\r\n: 0 , \"n\":1 }\n\n ", want: base(nil)},

	// string
	{name: "string empty", in: pre + `"s":""}`, want: base(map[string]Value{"s": str("")})},
	{name: "string from int", in: pre + `"s":5}`, errField: "s", errReason: "expected string, got int 5"},
	{name: "string from float", in: pre + `"s":5.5}`, errField: "s", errReason: "expected string, got float 5.5"},
	{name: "string from bool", in: pre + `"s":false}`, errField: "s", errReason: "expected string, got bool"},
	{name: "string from object", in: pre + `"s":{"a":"b"}}`, errField: "s", errReason: "expected string, got object"},
	{name: "string from array", in: pre + `"s":["b"]}`, errField: "s", errReason: "expected string, got array"},
	{name: "string escapes", in: pre + `"s":"q\"b\\s\/b\bf\fn\nr\rt\t"}`, want: base(map[string]Value{"s": str("q\"b\\s/b\bf\fn\nr\rt\t")})},
	{name: "string unicode escapes", in: pre + `"s":"\u00e9\u00E9\u20ac\u0000\u001f"}`, want: base(map[string]Value{"s": str("éé€\x00\x1f")})},
	{name: "string surrogate pair", in: pre + `"s":"\ud83d\ude00x"}`, want: base(map[string]Value{"s": str("😀x")})},
	// A string must be text: encoding/json reads a byte that is not UTF-8
	// and an escape of a lone surrogate as U+FFFD, which would merge
	// different ids into one; Decode refuses them.
	{name: "string lone high surrogate", in: pre + `"s":"\ud800x"}`, errField: "s", errReason: `invalid UTF-8: \ud800 at the start is half of a UTF-16 surrogate pair, which is no character alone`},
	{name: "string lone low surrogate", in: pre + `"s":"ab\udc00"}`, errField: "s", errReason: `invalid UTF-8: \udc00 after "ab" is half of a UTF-16 surrogate pair`},
	{name: "string high surrogate then non-surrogate", in: pre + `"s":"\ud800\u0041"}`, errField: "s", errReason: `invalid UTF-8: \ud800 at the start`},
	{name: "string two high surrogates", in: pre + `"s":"\ud800\ud83d\ude00"}`, errField: "s", errReason: `invalid UTF-8: \ud800 at the start`},
	{name: "string low surrogate after a pair", in: pre + `"s":"\ud83d\ude00\ude00"}`, errField: "s", errReason: `invalid UTF-8: \ude00 after "😀"`},
	{name: "string replacement character sent as such", in: pre + "\"s\":\"\uFFFD\\ufffd\\uFFFD\"}", want: base(map[string]Value{"s": str("\uFFFD\uFFFD\uFFFD")})},
	{name: "string raw UTF-8", in: pre + `"s":"héllo 😀 日本"}`, want: base(map[string]Value{"s": str("héllo 😀 日本")})},
	{name: "string invalid UTF-8", in: pre + "\"s\":\"a\xffb\xc3\"}", errField: "s", errReason: `invalid UTF-8: byte 0xff after "a"; send text as UTF-8`},
	{name: "string invalid UTF-8 ids", in: "{\"id\":\"probe_\xff\xfe\",\"ts\":0,\"n\":1}", errField: "id", errReason: `invalid UTF-8: byte 0xff after "probe_"`},
	{name: "string invalid UTF-8, other order", in: "{\"id\":\"probe_\xfe\xff\",\"ts\":0,\"n\":1}", errField: "id", errReason: `invalid UTF-8: byte 0xfe after "probe_"`},
	{name: "string cut UTF-8 at the end", in: pre + "\"s\":\"caf\xc3\"}", errField: "s", errReason: `invalid UTF-8: byte 0xc3 after "caf"`},
	{name: "string encoded surrogate", in: pre + "\"s\":\"\xed\xa0\x80\"}", errField: "s", errReason: "invalid UTF-8: byte 0xed at the start"},
	{name: "string invalid UTF-8 after an escape", in: pre + "\"s\":\"\\n\xff\"}", errField: "s", errReason: `invalid UTF-8: byte 0xff after "\n"`},
	{name: "string invalid UTF-8 after a long text", in: pre + "\"s\":\"" + strings.Repeat("x", 40) + "é\xff\"}", errField: "s", errReason: `invalid UTF-8: byte 0xff after "...xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxé"`},
	{name: "string invalid UTF-8 in a skipped field", in: pre + "\"u\":\"\xff\",\"v\":[\"\\udc00\"]}", want: base(nil)},
	{name: "key invalid UTF-8 is unknown", in: pre + "\"\xff\":\"x\",\"s\\udc00\":1}", want: base(nil)},
	{name: "string DEL and U+2028 kept", in: pre + "\"s\":\"\x7f\u2028\"}", want: base(map[string]Value{"s": str("\x7f\u2028")})},
	{name: "string raw control character", in: pre + "\"s\":\"a\tb\"}", errReason: "invalid JSON"},
	{name: "string raw newline", in: pre + "\"s\":\"a\nb\"}", errReason: "invalid JSON"},
	{name: "string invalid escape", in: pre + `"s":"\x41"}`, errReason: "invalid JSON"},
	{name: "string single-quote escape", in: pre + `"s":"\'"}`, errReason: "invalid JSON"},
	{name: "string short unicode escape", in: pre + `"s":"\u12"}`, errReason: "invalid JSON"},
	{name: "string non-hex unicode escape", in: pre + `"s":"\u12g4"}`, errReason: "invalid JSON"},
	{name: "string unterminated", in: pre + `"s":"abc}`, errReason: "invalid JSON"},
	{name: "string escape at end", in: pre + `"s":"abc\`, errReason: "invalid JSON"},
	{name: "single-quoted string", in: pre + `"s":'a'}`, errReason: "invalid JSON"},

	// int
	{name: "int zero", in: pre + `"n":0}`, want: base(map[string]Value{"n": integer(0)})},
	{name: "int negative zero", in: `{"id":"a","ts":0,"n":-0}`, want: base(map[string]Value{"n": integer(0)})},
	{name: "int max", in: `{"id":"a","ts":0,"n":9223372036854775807}`, want: base(map[string]Value{"n": integer(math.MaxInt64)})},
	{name: "int min", in: `{"id":"a","ts":0,"n":-9223372036854775808}`, want: base(map[string]Value{"n": integer(math.MinInt64)})},
	{name: "int 18 digits", in: `{"id":"a","ts":0,"n":-999999999999999999}`, want: base(map[string]Value{"n": integer(-999999999999999999)})},
	{name: "int 19 digits", in: `{"id":"a","ts":0,"n":1000000000000000000}`, want: base(map[string]Value{"n": integer(1000000000000000000)})},
	{name: "int overflow", in: `{"id":"a","ts":0,"n":9223372036854775808}`, errField: "n", errReason: "expected int, got 9223372036854775808 (out of int64 range)"},
	{name: "int underflow", in: `{"id":"a","ts":0,"n":-9223372036854775809}`, errField: "n", errReason: "out of int64 range"},
	{name: "int huge", in: `{"id":"a","ts":0,"n":` + strings.Repeat("9", 400) + `}`, errField: "n", errReason: "9999... (out of int64 range)"},
	{name: "int from fraction", in: `{"id":"a","ts":0,"n":1.5}`, errField: "n", errReason: "expected int, got float 1.5"},
	{name: "int from .0", in: `{"id":"a","ts":0,"n":1.0}`, errField: "n", errReason: "expected int, got float 1.0"},
	{name: "int from exponent", in: `{"id":"a","ts":0,"n":1e2}`, errField: "n", errReason: "expected int, got float 1e2"},
	{name: "int from string", in: `{"id":"a","ts":0,"n":"1"}`, errField: "n", errReason: "expected int, got string"},
	{name: "int from bool", in: `{"id":"a","ts":0,"n":true}`, errField: "n", errReason: "expected int, got bool"},

	// float
	{name: "float", in: pre + `"x":42.17}`, want: base(map[string]Value{"x": flt(42.17)})},
	{name: "float from integer", in: pre + `"x":3}`, want: base(map[string]Value{"x": flt(3)})},
	{name: "float negative exponent", in: pre + `"x":-1.5E-3}`, want: base(map[string]Value{"x": flt(-0.0015)})},
	{name: "float positive exponent", in: pre + `"x":2e+3}`, want: base(map[string]Value{"x": flt(2000)})},
	{name: "float negative zero", in: pre + `"x":-0.0}`, want: base(map[string]Value{"x": flt(math.Copysign(0, -1))})},
	{name: "float large", in: pre + `"x":1.7976931348623157e308}`, want: base(map[string]Value{"x": flt(math.MaxFloat64)})},
	{name: "float underflows to zero", in: pre + `"x":1e-400}`, want: base(map[string]Value{"x": flt(0)})},
	{name: "float subnormal", in: pre + `"x":5e-324}`, want: base(map[string]Value{"x": flt(5e-324)})},
	{name: "float beyond int64", in: pre + `"x":18446744073709551616}`, want: base(map[string]Value{"x": flt(18446744073709551616)})},
	{name: "float overflow", in: pre + `"x":1e309}`, errField: "x", errReason: "expected float, got 1e309 (out of float64 range)"},
	{name: "float from string", in: pre + `"x":"1.5"}`, errField: "x", errReason: "expected float, got string"},
	{name: "float from array", in: pre + `"x":[1.5]}`, errField: "x", errReason: "expected float, got array"},
	{name: "float leading zero", in: pre + `"x":01}`, errReason: "invalid JSON"},
	{name: "float leading plus", in: pre + `"x":+1}`, errReason: "invalid JSON"},
	{name: "float leading dot", in: pre + `"x":.5}`, errReason: "invalid JSON"},
	{name: "float trailing dot", in: pre + `"x":1.}`, errReason: "invalid JSON"},
	{name: "float empty exponent", in: pre + `"x":1e}`, errReason: "invalid JSON"},
	{name: "float sign only exponent", in: pre + `"x":1e+}`, errReason: "invalid JSON"},
	{name: "float minus only", in: pre + `"x":-}`, errReason: "invalid JSON"},
	{name: "float NaN", in: pre + `"x":NaN}`, errReason: "invalid JSON"},
	{name: "float Infinity", in: pre + `"x":-Infinity}`, errReason: "invalid JSON"},
	{name: "float hex", in: pre + `"x":0x10}`, errReason: "invalid JSON"},

	// bool
	{name: "bool true", in: pre + `"ok":true}`, want: base(map[string]Value{"ok": boolean(true)})},
	{name: "bool false", in: pre + `"ok":false}`, want: base(map[string]Value{"ok": boolean(false)})},
	{name: "bool from int", in: pre + `"ok":1}`, errField: "ok", errReason: "expected bool, got int 1"},
	{name: "bool from string", in: pre + `"ok":"true"}`, errField: "ok", errReason: "expected bool, got string"},
	{name: "bool misspelt", in: pre + `"ok":tru}`, errReason: "invalid JSON"},
	{name: "bool capitalized", in: pre + `"ok":True}`, errReason: "invalid JSON"},
	{name: "bool followed by letters", in: pre + `"ok":truex}`, errReason: "invalid JSON"},

	// timestamp
	{name: "timestamp UTC", in: pre + `"at":"2024-05-01T12:34:56.789Z"}`, want: base(map[string]Value{"at": ms(1714566896789)})},
	{name: "timestamp positive offset", in: pre + `"at":"2024-05-01T14:34:56.789+02:00"}`, want: base(map[string]Value{"at": ms(1714566896789)})},
	{name: "timestamp negative offset", in: pre + `"at":"2024-05-01T05:04:56.789-07:30"}`, want: base(map[string]Value{"at": ms(1714566896789)})},
	{name: "timestamp no fraction", in: pre + `"at":"2024-05-01T12:34:56Z"}`, want: base(map[string]Value{"at": ms(1714566896000)})},
	{name: "timestamp nanoseconds truncated", in: pre + `"at":"2024-05-01T12:34:56.789999999Z"}`, want: base(map[string]Value{"at": ms(1714566896789)})},
	{name: "timestamp before 1970 floors", in: pre + `"at":"1969-12-31T23:59:59.9995Z"}`, want: base(map[string]Value{"at": ms(-1)})},
	{name: "timestamp escaped", in: pre + `"at":"2024-05-01T12:34:56.789\u005a"}`, want: base(map[string]Value{"at": ms(1714566896789)})},
	{name: "timestamp epoch ms", in: pre + `"at":1714566896789}`, want: base(map[string]Value{"at": ms(1714566896789)})},
	{name: "timestamp negative epoch ms", in: pre + `"at":-5}`, want: base(map[string]Value{"at": ms(-5)})},
	{name: "timestamp event time", in: `{"id":"a","ts":"2024-05-01T12:34:56.789Z","n":1}`, want: base(map[string]Value{"ts": ms(1714566896789)})},
	{name: "timestamp bad month", in: pre + `"at":"2024-13-01T00:00:00Z"}`, errField: "at", errReason: `invalid timestamp "2024-13-01T00:00:00Z": month out of range`},
	{name: "timestamp date only", in: pre + `"at":"2024-05-01"}`, errField: "at", errReason: `invalid timestamp "2024-05-01": cannot parse`},
	{name: "timestamp epoch ms as a string", in: `{"id":"a","n":1,"ts":"1796302142648"}`, errField: "ts",
		errReason: `invalid timestamp "1796302142648": digits in a string are not an RFC 3339 time; send epoch milliseconds as a JSON number, without quotes`},
	{name: "timestamp negative digits as a string", in: pre + `"at":"-5"}`, errField: "at", errReason: `invalid timestamp "-5": digits in a string are not an RFC 3339 time`},
	{name: "timestamp invalid UTF-8", in: pre + "\"at\":\"2024-05-01T12:34:56Z\xff\"}", errField: "at", errReason: `invalid UTF-8: byte 0xff after "2024-05-01T12:34:56Z"`},
	{name: "timestamp lone surrogate", in: pre + `"at":"2024\udc00"}`, errField: "at", errReason: `invalid UTF-8: \udc00 after "2024"`},
	{name: "timestamp space separator", in: pre + `"at":"2024-05-01 12:34:56Z"}`, errField: "at", errReason: `invalid timestamp "2024-05-01 12:34:56Z"`},
	{name: "timestamp no zone", in: pre + `"at":"2024-05-01T12:34:56"}`, errField: "at", errReason: `invalid timestamp`},
	{name: "timestamp empty", in: pre + `"at":""}`, errField: "at", errReason: `invalid timestamp ""`},
	{name: "timestamp fractional ms", in: pre + `"at":1.5}`, errField: "at", errReason: "expected timestamp (RFC 3339 string or integer epoch milliseconds), got float 1.5"},
	{name: "timestamp from bool", in: pre + `"at":true}`, errField: "at", errReason: "expected timestamp (RFC 3339 string or integer epoch milliseconds), got bool"},
	{name: "timestamp overflow", in: pre + `"at":99999999999999999999}`, errField: "at", errReason: "(out of int64 range)"},
	{name: "event time from float", in: `{"id":"a","ts":0.5,"n":1}`, errField: "ts", errReason: "got float 0.5"},

	// missing and null
	{name: "optional null", in: pre + `"x":null,"ok":null,"at":null,"s":null}`, want: base(nil)},
	{name: "required missing", in: `{"id":"a","ts":0}`, errField: "n", errReason: "required field is missing"},
	{name: "required null", in: `{"id":"a","ts":0,"n":null}`, errField: "n", errReason: "required field is null"},
	{name: "key missing", in: `{"ts":0,"n":1}`, errField: "id", errReason: "required field is missing"},
	{name: "event time missing", in: `{"id":"a","n":1}`, errField: "ts", errReason: "required field is missing"},
	{name: "event time null", in: `{"id":"a","n":1,"ts":null}`, errField: "ts", errReason: "required field is null"},
	{name: "empty object", in: `{}`, errField: "id", errReason: "required field is missing"},
	{name: "first wrong field in declaration order", in: `{"s":1,"ts":"x","ok":2,"n":null,"id":"a"}`, errField: "n", errReason: "required field is null"},
	{name: "wrong before missing in declaration order", in: `{"n":1,"ts":0,"id":7}`, errField: "id", errReason: "expected string, got int 7"},
	{name: "syntax error beats field errors", in: `{"id":1,"n":"x","ts":0,}`, errReason: "invalid JSON"},
	{name: "null literal misspelt", in: pre + `"x":nul}`, errReason: "invalid JSON"},

	// duplicate keys: the last one wins
	{name: "duplicate last wins", in: pre + `"x":1,"x":2}`, want: base(map[string]Value{"x": flt(2)})},
	{name: "duplicate wrong then right", in: pre + `"x":"a","x":2}`, want: base(map[string]Value{"x": flt(2)})},
	{name: "duplicate right then wrong", in: pre + `"x":2,"x":"a"}`, errField: "x", errReason: "expected float, got string"},
	{name: "duplicate value then null", in: pre + `"x":2,"x":null}`, want: base(nil)},
	{name: "duplicate required then null", in: pre + `"n":null}`, errField: "n", errReason: "required field is null"},
	{name: "duplicate null then value", in: `{"id":"a","ts":0,"n":null,"n":3}`, want: base(map[string]Value{"n": integer(3)})},

	// keys
	{name: "escaped key", in: `{"id":"a","ts":0,"\u006e":5}`, want: base(map[string]Value{"n": integer(5)})},
	{name: "key case matters", in: pre + `"X":"not x"}`, want: base(nil)},
	{name: "key with escapes unknown", in: pre + `"x\n\u00e9\ud83d\ude00":{}}`, want: base(nil)},
	{name: "key longer than any field", in: pre + `"` + strings.Repeat("k", 100) + `":1}`, want: base(nil)},
	{name: "key not a string", in: `{"id":"a","ts":0,n:1}`, errReason: "invalid JSON"},
	{name: "key without colon", in: `{"id":"a","ts":0,"n" 1}`, errReason: "invalid JSON"},
	{name: "key without value", in: `{"id":"a","ts":0,"n":}`, errReason: "invalid JSON"},

	// unknown fields are skipped whatever their type, but must be valid
	{name: "unknown string", in: pre + `"u":"\"}{]["}`, want: base(nil)},
	{name: "unknown number", in: pre + `"u":-1.5e+300}`, want: base(nil)},
	{name: "unknown huge number", in: pre + `"u":1e999999}`, want: base(nil)},
	{name: "unknown literals", in: pre + `"u":true,"v":false,"w":null}`, want: base(nil)},
	{name: "unknown empty containers", in: pre + `"u":{},"v":[],"w":{ },"z":[ ]}`, want: base(nil)},
	{name: "unknown nested", in: pre + `"u":{"a":[1,{"b":[[],{}]},"x",null,true],"c":{"d":{"e":"}"}}},"x":1}`, want: base(map[string]Value{"x": flt(1)})},
	{name: "unknown nested with spaces", in: pre + "\"u\" : [ { \"a\" : [ 1 , 2 ] } , [ ] ] , \"x\" : 1 }", want: base(map[string]Value{"x": flt(1)})},
	{name: "unknown deep", in: pre + `"u":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, want: base(nil)},
	{name: "unknown deepest allowed", in: pre + `"u":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, want: base(nil)},
	{name: "unknown too deep", in: pre + `"u":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, errReason: "invalid JSON: exceeded max nesting depth"},
	{name: "known field too deep", in: pre + `"x":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000) + `}`, errReason: "invalid JSON"},
	{name: "unknown trailing comma in array", in: pre + `"u":[1,2,]}`, errReason: "invalid JSON"},
	{name: "unknown trailing comma in object", in: pre + `"u":{"a":1,}}`, errReason: "invalid JSON"},
	{name: "unknown object without value", in: pre + `"u":{"a"}}`, errReason: "invalid JSON"},
	{name: "unknown object with non-string key", in: pre + `"u":{1:2}}`, errReason: "invalid JSON"},
	{name: "unknown mismatched brackets", in: pre + `"u":[1}}`, errReason: "invalid JSON"},
	{name: "unknown unclosed array", in: pre + `"u":[1,2`, errReason: "invalid JSON"},
	{name: "unknown missing comma", in: pre + `"u":[1 2]}`, errReason: "invalid JSON"},
	{name: "unknown bad number", in: pre + `"u":[1.]}`, errReason: "invalid JSON"},
	{name: "unknown bad string", in: pre + "\"u\":[\"a\x01\"]}", errReason: "invalid JSON"},
	{name: "unknown bad literal", in: pre + `"u":[nil]}`, errReason: "invalid JSON"},
	{name: "unknown invalid UTF-8", in: pre + "\"u\":\"\xff\xfe\"}", want: base(nil)},

	// the object itself
	{name: "empty input", in: ``, errReason: "invalid JSON: unexpected end of input"},
	{name: "only whitespace", in: " \n\t", errReason: "invalid JSON: unexpected end of input"},
	{name: "top-level array", in: `[{"id":"a","ts":0,"n":1}]`, errReason: "expected a JSON object, got array"},
	{name: "top-level string", in: `"x"`, errReason: "expected a JSON object, got string"},
	{name: "top-level number", in: `12`, errReason: "expected a JSON object, got number"},
	{name: "top-level null", in: `null`, errReason: "expected a JSON object, got null"},
	{name: "top-level bool", in: `true`, errReason: "expected a JSON object, got bool"},
	{name: "top-level garbage", in: `x`, errReason: "invalid JSON: invalid character 'x'"},
	{name: "byte order mark", in: "\uFEFF" + `{"id":"a","ts":0,"n":1}`, errReason: "invalid JSON"},
	{name: "trailing garbage", in: `{"id":"a","ts":0,"n":1}x`, errReason: "invalid JSON: invalid character 'x' after top-level value"},
	{name: "trailing object", in: `{"id":"a","ts":0,"n":1} {}`, errReason: "invalid JSON"},
	{name: "trailing NUL", in: "{\"id\":\"a\",\"ts\":0,\"n\":1}\x00", errReason: "invalid JSON"},
	{name: "trailing comma", in: `{"id":"a","ts":0,"n":1,}`, errReason: "invalid JSON"},
	{name: "missing comma", in: `{"id":"a" "ts":0,"n":1}`, errReason: "invalid JSON"},
	{name: "unclosed object", in: `{"id":"a","ts":0,"n":1`, errReason: "invalid JSON: unexpected end of input"},
	{name: "unclosed object after comma", in: `{"id":"a","ts":0,"n":1,`, errReason: "invalid JSON"},
	{name: "only an opening brace", in: `{`, errReason: "invalid JSON"},
	{name: "closing brace only", in: `}`, errReason: "invalid JSON"},
	{name: "leading comma", in: `{,"id":"a","ts":0,"n":1}`, errReason: "invalid JSON"},
	{name: "vertical tab is not whitespace", in: "{\v\"id\":\"a\",\"ts\":0,\"n\":1}", errReason: "invalid JSON"},
}

func TestDecode(t *testing.T) {
	e, ef := loadTestSchemas(t)
	for _, c := range decodeCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(e, []byte(c.in))
			if c.want == nil {
				require.Error(t, err)
				var fe *FieldError
				require.True(t, errors.As(err, &fe), "error %v is not a *FieldError", err)
				require.Equal(t, c.errField, fe.Field, "error: %v", err)
				require.Contains(t, fe.Reason, c.errReason)
			} else {
				require.NoError(t, err)
				want := make([]Value, len(e.Fields))
				for name, v := range c.want {
					f, ok := e.Field(name)
					require.True(t, ok, "test case names unknown field %q", name)
					want[f.Index] = v
				}
				sameValues(t, want, got.Values, c.in)
				require.Equal(t, c.want["ts"].I, got.Time)
			}
			checkAgainstReference(t, e, []byte(c.in))
			checkAgainstReference(t, ef, []byte(c.in))
		})
	}
}

func TestDecodeNeverRetainsInput(t *testing.T) {
	e, _ := loadTestSchemas(t)
	in := []byte(`{"id":"abc","ts":0,"n":1,"s":"plain"}`)
	ev, err := Decode(e, in)
	require.NoError(t, err)
	for i := range in {
		in[i] = 'X'
	}
	require.Equal(t, "abc", ev.Get("id").S)
	require.Equal(t, "plain", ev.Get("s").S)
}

// TestDecodeConcurrent shares one event type between goroutines; run with
// -race.
func TestDecodeConcurrent(t *testing.T) {
	e, _ := loadTestSchemas(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, c := range decodeCases {
				got, err := Decode(e, []byte(c.in))
				if c.want != nil && (err != nil || got.Get("n") != c.want["n"]) {
					t.Errorf("%s: got %+v, %v", c.name, got.Get("n"), err)
				}
			}
		})
	}
	wg.Wait()
}

func TestDecodeNilType(t *testing.T) {
	_, err := Decode(nil, []byte(`{}`))
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
}

func TestFieldError(t *testing.T) {
	require.Equal(t, "field amount: expected float, got string",
		(&FieldError{Field: "amount", Reason: "expected float, got string"}).Error())
	require.Equal(t, "invalid JSON: unexpected end of input",
		(&FieldError{Reason: "invalid JSON: unexpected end of input"}).Error())
}

func TestIsInteger(t *testing.T) {
	// Integer text of any magnitude: beyond int64 too.
	for _, s := range []string{"0", "-0", "007", "1700000000000", "-12", "123456789012345678901234567890"} {
		require.True(t, IsInteger(s), "%q", s)
	}
	for _, s := range []string{"", "-", "+1", "--1", "1.0", "1e3", " 1", "1 ", "0x10", "1_000", "\u0663"} {
		require.False(t, IsInteger(s), "%q", s)
	}
}

func TestEvent(t *testing.T) {
	e, _ := loadTestSchemas(t)
	ev, err := Decode(e, []byte(`{"s":"a\"b<é>\u2028","ts":"2024-05-01T14:34:56.789+02:00","u":[1],"x":3,"id":"k-1","n":-2,"ok":false}`))
	require.NoError(t, err)
	require.Equal(t, "k-1", ev.Key())
	require.Equal(t, int64(1714566896789), ev.Time)
	require.Equal(t, integer(-2), ev.Get("n"))
	require.Equal(t, Value{}, ev.Get("at"), "absent")
	require.Equal(t, Value{}, ev.Get("nope"), "unknown")
	require.Equal(t, `{"id":"k-1","n":-2,"x":3.0,"ok":false,"s":"a\"b<é>\u2028","ts":1714566896789}`,
		string(ev.AppendJSON(nil)))
	require.Equal(t, `prefix{"id":"k-1"`, string(ev.AppendJSON([]byte("prefix")))[:len(`prefix{"id":"k-1"`)])

	var zero Event
	require.Equal(t, Value{}, zero.Get("n"))
	require.Equal(t, "", zero.Key())
	require.Equal(t, "{}", string(zero.AppendJSON(nil)))
}

func TestValue(t *testing.T) {
	for _, c := range []struct {
		v     Value
		text  string
		json  string
		float float64
	}{
		{Value{}, "", "null", 0},
		{str("u_0042"), "u_0042", `"u_0042"`, 0},
		{str(""), "", `""`, 0},
		{str("q\"\\/\b\f\n\r\t\x00\x1f\x7f"), "q\"\\/\b\f\n\r\t\x00\x1f\x7f", `"q\"\\/\b\f\n\r\t\u0000\u001f` + "\x7f\"", 0},
		{str("<&>é😀\u2028\u2029"), "<&>é😀\u2028\u2029", `"<&>é😀\u2028\u2029"`, 0},
		{str("a\xffb"), "a\xffb", `"a\ufffdb"`, 0},
		{integer(-42), "-42", "-42", -42},
		{integer(math.MinInt64), "-9223372036854775808", "-9223372036854775808", math.MinInt64},
		{flt(3), "3", "3.0", 3},
		{flt(-0.5), "-0.5", "-0.5", -0.5},
		{flt(42.17), "42.17", "42.17", 42.17},
		{flt(math.Copysign(0, -1)), "-0", "-0.0", math.Copysign(0, -1)},
		{flt(1234567), "1.234567e+06", "1234567.0", 1234567},
		{flt(1e20), "1e+20", "100000000000000000000.0", 1e20},
		{flt(1e21), "1e+21", "1e+21", 1e21},
		{flt(1e-7), "1e-07", "1e-7", 1e-7},
		{flt(0.000001), "1e-06", "0.000001", 0.000001},
		{flt(5e-324), "5e-324", "5e-324", 5e-324},
		{flt(math.MaxFloat64), "1.7976931348623157e+308", "1.7976931348623157e+308", math.MaxFloat64},
		{flt(math.NaN()), "NaN", "null", math.NaN()},
		{flt(math.Inf(-1)), "-Inf", "null", math.Inf(-1)},
		{boolean(true), "true", "true", 0},
		{boolean(false), "false", "false", 0},
		{ms(1714566896789), "1714566896789", "1714566896789", 1714566896789},
		{ms(-1), "-1", "-1", -1},
	} {
		require.Equal(t, c.v.Kind != Absent, c.v.Present(), "%+v", c.v)
		require.Equal(t, c.text, c.v.Text(), "%+v", c.v)
		require.Equal(t, c.json, string(c.v.AppendJSON(nil)), "%+v", c.v)
		require.Equal(t, "x"+c.json, string(c.v.AppendJSON([]byte("x"))), "%+v", c.v)
		if math.IsNaN(c.float) {
			require.True(t, math.IsNaN(c.v.Float()))
		} else {
			require.Equal(t, math.Float64bits(c.float), math.Float64bits(c.v.Float()), "%+v", c.v)
		}
	}
}

func TestKindString(t *testing.T) {
	require.Equal(t, "absent", Absent.String())
	require.Equal(t, "time", Time.String())
	require.Equal(t, "kind(9)", Kind(9).String())
}

// TestTimeReason: the readers of other formats (Arrow string columns) get
// advice for epoch milliseconds sent as text too, not time.Parse's
// `cannot parse "302142648" as "-"`.
func TestTimeReason(t *testing.T) {
	for _, c := range []struct{ value, want string }{
		{"1796302142648", `invalid timestamp "1796302142648": digits are not an RFC 3339 time; give epoch milliseconds as an integer, not as text`},
		{"2024-05-01", `invalid timestamp "2024-05-01": cannot parse "" as "T"`},
		{"2024-13-01T00:00:00Z", `invalid timestamp "2024-13-01T00:00:00Z": month out of range`},
	} {
		_, err := time.Parse(time.RFC3339Nano, c.value)
		require.Error(t, err)
		require.Equal(t, c.want, TimeReason(c.value, err))
	}
}
