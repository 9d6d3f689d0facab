package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		name   string
		body   string
		ndjson bool
		want   []string
		err    string // substring; empty for success
	}{
		{name: "object", body: ` {"a":1} `, want: []string{`{"a":1}`}},
		{name: "object left to Decode", body: "\n{\"a\":1} {\"b\r\n", want: []string{`{"a":1} {"b`}},
		{name: "array", body: `[{"a":1},{"b":[1,{"c":"]"}]}]`, want: []string{`{"a":1}`, `{"b":[1,{"c":"]"}]}`}},
		{name: "array with whitespace", body: "\r\n[ {\"a\":1} ,\n\t{ } ]\n", want: []string{`{"a":1}`, `{ }`}},
		{name: "empty array", body: ` [ ] `, want: nil},
		{name: "array element not an object", body: `[{"a":1},2]`, err: "array element 1: expected a JSON object, got number"},
		{name: "array element array", body: `[[{"a":1}]]`, err: "array element 0: expected a JSON object, got array"},
		{name: "array element null", body: `[{},null]`, err: "array element 1: expected a JSON object, got null"},
		{name: "array element invalid", body: `[{"a":1},{"a":tru}]`, err: "array element 1: invalid JSON"},
		{name: "array trailing comma", body: `[{"a":1},]`, err: "array element 1: invalid JSON: invalid character ']'"},
		{name: "array missing comma", body: `[{"a":1} {"b":2}]`, err: "array element 0: invalid JSON"},
		{name: "array unclosed", body: `[{"a":1}`, err: "array element 0: invalid JSON: unexpected end of input"},
		{name: "array unclosed element", body: `[{"a":1`, err: "array element 0: invalid JSON: unexpected end of input"},
		{name: "array trailing garbage", body: `[{"a":1}] x`, err: "invalid JSON: invalid character 'x' after top-level value"},
		{name: "top-level string", body: `"a"`, err: "expected a JSON object or an array of objects, got string"},
		{name: "top-level garbage", body: `<a>`, err: "invalid JSON: invalid character '<'"},
		{name: "empty", body: ``, err: "empty body"},
		{name: "blank", body: " \r\n ", err: "empty body"},

		{name: "ndjson", ndjson: true, body: "{\"a\":1}\n{\"b\":2}\n", want: []string{`{"a":1}`, `{"b":2}`}},
		{name: "ndjson without final newline", ndjson: true, body: "{\"a\":1}\n{\"b\":2}", want: []string{`{"a":1}`, `{"b":2}`}},
		{name: "ndjson CRLF and blank lines", ndjson: true, body: "\r\n{\"a\":1}\r\n\r\n  \t\r\n {\"b\":\"\\n\"} \r\n\r\n", want: []string{`{"a":1}`, `{"b":"\n"}`}},
		{name: "ndjson one line", ndjson: true, body: `{"a":[1,2]}`, want: []string{`{"a":[1,2]}`}},
		{name: "ndjson line left to Decode", ndjson: true, body: "{\"a\":1}\n{broken\n", want: []string{`{"a":1}`, `{broken`}},
		// Lines that are not objects are events too, for Decode to reject
		// alone, so a client learns their index instead of losing the body.
		{name: "ndjson array line", ndjson: true, body: "{\"a\":1}\n\n[{\"b\":2}]\n", want: []string{`{"a":1}`, `[{"b":2}]`}},
		{name: "ndjson number line", ndjson: true, body: "\r\n5\r\n", want: []string{`5`}},
		{name: "ndjson garbage line", ndjson: true, body: "{}\nx\n", want: []string{`{}`, `x`}},
		{name: "ndjson pretty-printed object", ndjson: true, body: "{\n  \"a\": 1\n}\n", want: []string{`{`, `"a": 1`, `}`}},
		{name: "ndjson empty", ndjson: true, body: "", err: "empty body"},
		{name: "ndjson blank", ndjson: true, body: "\n\r\n \n", err: "empty body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Split([]byte(c.body), c.ndjson, 0)
			if c.err != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), c.err)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, len(c.want))
			for i := range c.want {
				require.Equal(t, c.want[i], string(got[i]), "event %d", i)
			}
		})
	}
}

// TestSplitArrayAgainstEncodingJSON checks that Split finds the same array
// elements as encoding/json.
func TestSplitArrayAgainstEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		if !json.Valid([]byte(c.in)) || !strings.HasPrefix(strings.TrimSpace(c.in), "{") {
			continue
		}
		body := "[" + c.in + ",\n" + c.in + "]"
		got, err := Split([]byte(body), false, 0)
		var want []json.RawMessage
		if json.Unmarshal([]byte(body), &want) != nil { // nested too deep
			require.Error(t, err, c.name)
			continue
		}
		require.NoError(t, err, c.name)
		require.Len(t, got, len(want))
		for i := range want {
			require.Equal(t, string(want[i]), string(got[i]), c.name)
		}
	}
}

// FuzzSplit checks Split against encoding/json: an array body splits into
// the elements encoding/json finds, and a body that is a valid array of
// objects always splits.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{`[{"a":1},{"b":[1,{"c":"]"}]}]`, `[]`, ` {"a":1} `, `[{},1]`, "{\"a\":1}\r\n\n{}\n", `[{"a":"\"]"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Split(body, false, 0)
		var want []json.RawMessage
		arrayOfObjects := json.Unmarshal(body, &want) == nil && bytes.HasPrefix(trimSpace(body), []byte{'['})
		for _, raw := range want {
			arrayOfObjects = arrayOfObjects && raw[0] == '{'
		}
		switch {
		case arrayOfObjects:
			require.NoError(t, err, "%q", body)
			require.Len(t, got, len(want))
			for i := range want {
				require.Equal(t, string(want[i]), string(got[i]))
			}
		case err == nil && len(got) == 1 && bytes.Equal(got[0], trimSpace(body)):
			require.Equal(t, byte('{'), got[0][0], "a single object, left to Decode")
		default:
			require.Error(t, err, "%q split into %q", body, got)
		}

		lines, err := Split(body, true, 0)
		if err == nil {
			require.NotEmpty(t, lines)
			for _, l := range lines {
				require.NotEmpty(t, l)
				require.NotContains(t, string(l), "\n")
				require.Equal(t, trimSpace(l), l)
			}
		}
	})
}

// TestSplitLimit: a body of more events than the limit is refused while
// it is split, in both modes, whatever else it holds; at the limit it is
// split whole.
func TestSplitLimit(t *testing.T) {
	const ev = `{"a":1}`
	for _, ndjson := range []bool{true, false} {
		body := func(n int) []byte {
			if ndjson {
				return []byte(strings.Repeat(ev+"\n\n", n))
			}
			return []byte("[" + strings.TrimSuffix(strings.Repeat(ev+",", n), ",") + "]")
		}
		got, err := Split(body(3), ndjson, 3)
		require.NoError(t, err)
		require.Len(t, got, 3)
		_, err = Split(body(4), ndjson, 3)
		var tm *TooManyEventsError
		require.ErrorAs(t, err, &tm, "ndjson %v", ndjson)
		require.EqualError(t, err, "more than 3 events in one request: split it")
		// Refused before the end: a syntax error after the limit is not
		// reached.
		_, err = Split(append(body(4)[:len(body(4))-1], "!!!"...), ndjson, 3)
		require.ErrorAs(t, err, &tm, "ndjson %v", ndjson)
	}
}
