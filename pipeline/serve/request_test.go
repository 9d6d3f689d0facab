package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// errorText is the message of an error answer with the given status.
func errorText(tb testing.TB, a answer, status int) string {
	tb.Helper()
	require.Equal(tb, status, a.status, "body: %s", a.body)
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(tb, json.Unmarshal(a.body, &e), "body: %s", a.body)
	return e.Error
}

// TestAtUnits: an integer at is epoch milliseconds within [10^11, 10^14),
// in the query, as a JSON integer and as a JSON string of digits alike;
// outside, the refusal names the value and, when it reads as a time in
// another unit, that unit and the milliseconds meant. Expected texts are
// written out by hand.
func TestAtUnits(t *testing.T) {
	base := exampleServer(t)
	const rangeMsg = ": integer epoch milliseconds must lie in [100000000000, 100000000000000) (1973-03-03 to 5138-11-16); use RFC 3339 for other times"
	for _, tc := range []struct {
		name, at string
		want     string // the answer's at, or "" for a refusal
		msg      string // the whole refusal
	}{
		{"milliseconds", "1733230000000", "2024-12-03T12:46:40.000Z", ""},
		{"seconds", "1733230000", "", "invalid at 1733230000: looks like epoch seconds; use milliseconds (1733230000000) or RFC 3339"},
		{"microseconds", "1733230000000000", "", "invalid at 1733230000000000: looks like epoch microseconds; use milliseconds (1733230000000) or RFC 3339"},
		{"nanoseconds", "1733230000000000000", "", "invalid at 1733230000000000000: looks like epoch nanoseconds; use milliseconds (1733230000000) or RFC 3339"},
		{"nanoseconds, not whole ms", "1733230000123456789", "", "invalid at 1733230000123456789: looks like epoch nanoseconds; use milliseconds (1733230000123) or RFC 3339"},
		{"negative", "-1733230000000", "", "invalid at -1733230000000" + rangeMsg},
		{"negative seconds", "-1733230000", "", "invalid at -1733230000" + rangeMsg},
		{"zero", "0", "", "invalid at 0" + rangeMsg},
		{"small", "5", "", "invalid at 5" + rangeMsg},
		{"lowest", "100000000000", "1973-03-03T09:46:40.000Z", ""},
		{"one below the lowest: seconds", "99999999999", "", "invalid at 99999999999: looks like epoch seconds; use milliseconds (99999999999000) or RFC 3339"},
		{"highest", "99999999999999", "5138-11-16T09:46:39.999Z", ""},
		{"one above the highest: microseconds", "100000000000000", "", "invalid at 100000000000000: looks like epoch microseconds; use milliseconds (100000000000) or RFC 3339"},
		{"lowest seconds", "100000000", "", "invalid at 100000000: looks like epoch seconds; use milliseconds (100000000000) or RFC 3339"},
		{"below the lowest seconds", "99999999", "", "invalid at 99999999" + rangeMsg},
		{"largest int64: nanoseconds", "9223372036854775807", "", "invalid at 9223372036854775807: looks like epoch nanoseconds; use milliseconds (9223372036854) or RFC 3339"},
		{"beyond int64", "99999999999999999999", "", "invalid at 99999999999999999999" + rangeMsg},
		{"leading zeros", "001733230000000", "2024-12-03T12:46:40.000Z", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(a answer, form string) {
				t.Helper()
				if tc.want == "" {
					require.Equal(t, tc.msg, errorText(t, a, http.StatusBadRequest), form)
					return
				}
				requireOK(t, a)
				require.Equal(t, `"`+tc.want+`"`, decodeObject(t, a.body).text(t, "at"), form)
			}
			check(get(t, base+"/v1/features/user_spend/u_1?at="+tc.at), "query")
			check(post(t, base+"/v1/features/user_spend", `{"entities":["u_1"],"at":"`+tc.at+`"}`), "JSON string")
			if tc.at[0] != '0' || tc.at == "0" { // JSON has no leading zeros
				check(post(t, base+"/v1/features/user_spend", `{"entities":["u_1"],"at":`+tc.at+`}`), "JSON integer")
			}
		})
	}
	// RFC 3339 works for any year 0000 to 9999, 1970 included.
	for _, at := range []string{"0000-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z", "1973-03-03T09:46:39.999Z", "9999-12-31T23:59:59.999Z"} {
		a := get(t, base+"/v1/features/user_spend/u_1?at="+at)
		requireOK(t, a)
		require.Equal(t, `"`+at+`"`, decodeObject(t, a.body).text(t, "at"))
		a = post(t, base+"/v1/features/user_spend", `{"entities":["u_1"],"at":"`+at+`"}`)
		requireOK(t, a)
		require.Equal(t, `"`+at+`"`, decodeObject(t, a.body).text(t, "at"))
	}
}

// TestUnknownNames: an unknown view, feature or member is refused with the
// valid names, sorted, and the closest one when it is a likely typo.
func TestUnknownNames(t *testing.T) {
	base := exampleServer(t)
	const views = "views: merchant_activity, user_spend"
	const userFeatures = "its features: amount_max_1h, amount_mean_7d, amount_std_24h, amount_sum_24h, items_min_1h, last_merchant, txn_count_1h"
	feast := func(ref string) string {
		return `{"features":["user_spend:txn_count_1h",` + ref + `],"entities":{"user_id":["u_1"]}}`
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"view typo", "GET", "/v1/features/user_spendd/u_1", "", 404,
			`unknown view "user_spendd"; ` + views + `; did you mean "user_spend"?`},
		{"view far off", "GET", "/v1/features/nope/u_1", "", 404, `unknown view "nope"; ` + views},
		{"view typo, batch", "POST", "/v1/features/merchant_activty", `{"entities":[]}`, 404,
			`unknown view "merchant_activty"; ` + views + `; did you mean "merchant_activity"?`},
		{"feature typo", "GET", "/v1/features/user_spend/u_1?features=txn_count_2h", "", 400,
			`unknown feature "txn_count_2h" in view "user_spend"; ` + userFeatures + `; did you mean "txn_count_1h"?`},
		{"feature far off", "GET", "/v1/features/user_spend/u_1?features=clicks", "", 400,
			`unknown feature "clicks" in view "user_spend"; ` + userFeatures},
		{"feature typo, batch", "POST", "/v1/features/merchant_activity", `{"entities":[],"features":["txn_count_10"]}`, 400,
			`unknown feature "txn_count_10" in view "merchant_activity"; its features: amount_sum_1h, card_present_last, items_sum_1h, txn_count_10m, txn_count_24h; did you mean "txn_count_10m"?`},
		{"one letter is no typo", "GET", "/v1/features/user_spend/u_1?features=x", "", 400,
			`unknown feature "x" in view "user_spend"; ` + userFeatures},
		{"feast view typo", "POST", "/get-online-features", feast(`"usr_spend:txn_count_1h"`), 404,
			`unknown view "usr_spend"; ` + views + `; did you mean "user_spend"?`},
		{"feast feature typo", "POST", "/get-online-features", feast(`"user_spend:amount_max_1d"`), 400,
			`unknown feature "amount_max_1d" in view "user_spend"; ` + userFeatures + `; did you mean "amount_max_1h"?`},
		{"feast feature far off", "POST", "/get-online-features", feast(`"user_spend:zzz"`), 400,
			`unknown feature "zzz" in view "user_spend"; ` + userFeatures},
		{"member typo", "POST", "/v1/features/user_spend", `{"entites":["u_1"]}`, 400,
			`unknown member "entites"; the members are: at, entities, features; did you mean "entities"?`},
		{"member far off", "POST", "/v1/features/user_spend", `{"entity":["u_1"]}`, 400,
			`unknown member "entity"; the members are: at, entities, features`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.msg, errorText(t, do(t, tc.method, base+tc.path, tc.body), tc.status))
		})
	}
}

func TestNameList(t *testing.T) {
	require.Equal(t, "(none)", nameList(nil))
	long := make([]string, maxListed+3)
	for i := range long {
		long[i] = "f"
	}
	require.True(t, strings.HasSuffix(nameList(long), ", f, … (3 more)"), nameList(long))
}

// goTypeNames are texts that show a Go decoder's error leaking to the
// caller.
var goTypeNames = []string{"Go struct", "Go value", "json.RawMessage", "RawMessage", "batchRequest", "feastRequest", "of type", "json:", "unmarshal"}

// malformed is a body an endpoint refuses with 400, and what the refusal
// says.
type malformed struct{ name, body, want string }

// malformedBatchBodies are malformed bodies of POST /v1/features/{view}.
func malformedBatchBodies() []malformed {
	deep := `{"entities":[` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `]}`
	return []malformed{
		{"empty", ``, "empty request body: want a JSON object"},
		{"blank", "  \n", "empty request body: want a JSON object"},
		{"null", `null`, "request body: want a JSON object, got null"},
		{"list", `["u_1"]`, "request body: want a JSON object, got a list"},
		{"string", `"u_1"`, "request body: want a JSON object, got a string"},
		{"number", `42`, "request body: want a JSON object, got a number"},
		{"bool", `true`, "request body: want a JSON object, got a bool"},
		{"open brace", `{`, "invalid JSON body: it ends before the JSON object does"},
		{"cut in a list", `{"entities":["u_1"`, "invalid JSON body: it ends before the JSON object does"},
		{"cut after a list", `{"entities":["u_1"]`, "invalid JSON body: it ends before the JSON object does"},
		{"trailing comma", `{"entities":[],}`, "invalid JSON body: invalid character '}'"},
		{"trailing comma in list", `{"entities":[1,]}`, "invalid JSON body: invalid character ']'"},
		{"missing colon", `{"entities" []}`, "invalid JSON body: "},
		{"not JSON", `entities=u_1`, "invalid JSON body: invalid character 'e'"},
		{"second value", `{"entities":[]} {}`, "invalid JSON body: data after the JSON object"},
		{"garbage after", `{"entities":[]} x`, "invalid JSON body: invalid character 'x'"},
		{"too deep", deep, "invalid JSON body: "},
		{"entities string", `{"entities":"u_1"}`, `"entities": want a list of strings or integers, got a string`},
		{"entities number", `{"entities":42}`, `"entities": want a list of strings or integers, got a number`},
		{"entities object", `{"entities":{"user_id":["u_1"]}}`, `"entities": want a list of strings or integers, got an object`},
		{"entities bool", `{"entities":true}`, `"entities": want a list of strings or integers, got a bool`},
		{"entities null", `{"entities":null}`, `missing "entities": want a list of strings or integers`},
		{"entities missing", `{"features":["txn_count_1h"]}`, `missing "entities": want a list of strings or integers`},
		{"entity bool", `{"entities":["u_1",true]}`, "entities[1]: want a string or an integer, got a bool"},
		{"entity list", `{"entities":[["u_1"]]}`, "entities[0]: want a string or an integer, got a list"},
		{"entity fraction", `{"entities":[1.5]}`, "entities[0]: 1.5 is not an integer: want a string or an integer"},
		{"features string", `{"entities":[],"features":"txn_count_1h"}`, `"features": want a list of feature names, got a string`},
		{"features number", `{"entities":[],"features":5}`, `"features": want a list of feature names, got a number`},
		{"features object", `{"entities":[],"features":{"txn_count_1h":true}}`, `"features": want a list of feature names, got an object`},
		{"feature number", `{"entities":[],"features":["txn_count_1h",1]}`, "features[1]: want a feature name (a string), got a number"},
		{"feature null", `{"entities":[],"features":[null]}`, "features[0]: want a feature name (a string), got null"},
		{"feature list", `{"entities":[],"features":[["txn_count_1h"]]}`, "features[0]: want a feature name (a string), got a list"},
		{"unknown member", `{"entity":["u_1"]}`, `unknown member "entity"; the members are: at, entities, features`},
		{"member twice", `{"entities":["u_1"],"entities":["u_2"]}`, `"entities" given twice`},
		{"at bool", `{"entities":[],"at":true}`, "invalid at true: want an RFC 3339 time or integer epoch milliseconds"},
		{"at list", `{"entities":[],"at":[1733230000000]}`, "invalid at [1733230000000]: want an RFC 3339 time or integer epoch milliseconds"},
		{"at object", `{"entities":[],"at":{}}`, "invalid at {}: want an RFC 3339 time or integer epoch milliseconds"},
		{"at exponent", `{"entities":[],"at":1.7e12}`, "invalid at 1.7e12: want an RFC 3339 time or integer epoch milliseconds"},
		{"at seconds", `{"entities":[],"at":1733230000}`, "invalid at 1733230000: looks like epoch seconds; use milliseconds (1733230000000) or RFC 3339"},
		{"at seconds as text", `{"entities":[],"at":"1733230000"}`, "invalid at 1733230000: looks like epoch seconds; use milliseconds (1733230000000) or RFC 3339"},
		{"at text", `{"entities":[],"at":"noon"}`, `invalid at "noon": want an RFC 3339 time or integer epoch milliseconds`},
	}
}

// malformedFeastBodies are malformed bodies of POST /get-online-features.
func malformedFeastBodies() []malformed {
	return []malformed{
		{"empty", ``, "empty request body: want a JSON object"},
		{"list", `["user_spend:txn_count_1h"]`, "request body: want a JSON object, got a list"},
		{"cut", `{"features":[`, "invalid JSON body: it ends before the JSON object does"},
		{"cut in an ignored member", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]},"request_context":{`, "invalid JSON body: it ends before the JSON object does"},
		{"features string", `{"features":"user_spend:txn_count_1h","entities":{"user_id":["u_1"]}}`, `"features": want a list of "view:feature" references, got a string`},
		{"features object", `{"features":{"user_spend":"txn_count_1h"},"entities":{"user_id":["u_1"]}}`, `"features": want a list of "view:feature" references, got an object`},
		{"feature number", `{"features":[1],"entities":{"user_id":["u_1"]}}`, `features[0]: want a "view:feature" reference (a string), got a number`},
		{"features twice", `{"features":[],"features":[],"entities":{"user_id":["u_1"]}}`, `"features" given twice`},
		{"entities list", `{"features":["user_spend:txn_count_1h"],"entities":["u_1"]}`, `"entities": want an object mapping the entity field to a list of values, got a list`},
		{"entities string", `{"features":["user_spend:txn_count_1h"],"entities":"u_1"}`, `"entities": want an object mapping the entity field to a list of values, got a string`},
		{"entity values string", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":"u_1"}}`, `"entities.user_id": want a list of strings or integers, got a string`},
		{"entity values object", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":{"id":"u_1"}}}`, `"entities.user_id": want a list of strings or integers, got an object`},
		{"entity values null", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":null}}`, `"entities.user_id": want a list of strings or integers, got null`},
		{"entity value bool", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":[true]}}`, "entities.user_id[0]: want a string or an integer, got a bool"},
		{"entity field twice", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"],"user_id":["u_2"]}}`, `"entities": "user_id" given twice`},
		{"entities twice", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]},"entities":{"user_id":["u_2"]}}`, `"entities" given twice`},
		{"full_feature_names string", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]},"full_feature_names":"yes"}`, `"full_feature_names": want true or false, got a string`},
		{"full_feature_names number", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]},"full_feature_names":1}`, `"full_feature_names": want true or false, got a number`},
		{"full_feature_names list", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]},"full_feature_names":[true]}`, `"full_feature_names": want true or false, got a list`},
	}
}

// requireBadRequest posts the JSON body to url, with the Accept header
// unless it is empty, and requires a 400 whose message contains want and
// names no Go type.
func requireBadRequest(t *testing.T, url, accept, body, want string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	msg := errorText(t, a, http.StatusBadRequest)
	require.Contains(t, msg, want)
	for _, bad := range goTypeNames {
		require.NotContains(t, msg, bad)
	}
}

// TestMalformedBodies sends many malformed bodies to each endpoint: every
// answer is a 400 naming the member and what it wants in the caller's
// terms, never a Go type.
func TestMalformedBodies(t *testing.T) {
	base := exampleServer(t)
	batchURL, feastURL := base+"/v1/features/user_spend", base+"/get-online-features"
	batch, feast := malformedBatchBodies(), malformedFeastBodies()
	for _, tc := range batch {
		t.Run("batch "+tc.name, func(t *testing.T) {
			for _, accept := range []string{"", ArrowStream} {
				requireBadRequest(t, batchURL, accept, tc.body, tc.want)
			}
		})
	}
	for _, tc := range feast {
		t.Run("feast "+tc.name, func(t *testing.T) {
			requireBadRequest(t, feastURL, "", tc.body, tc.want)
		})
	}
	// The bodies of one endpoint sent to the other are malformed there
	// too, in other ways: still no Go type names.
	for _, tc := range batch {
		requireBadRequest(t, feastURL, "", tc.body, "")
	}
	for _, tc := range feast {
		requireBadRequest(t, batchURL, "", tc.body, "")
	}
}

// tokenMembers lists the members of a JSON object with encoding/json's
// tokenizer, as the reference for bodyReader.members: names decoded,
// values as compact JSON text.
func tokenMembers(tb testing.TB, obj []byte) [][2]string {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	require.NoError(tb, err)
	require.Equal(tb, json.Delim('{'), tok)
	var out [][2]string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(tb, err)
		var v json.RawMessage
		require.NoError(tb, dec.Decode(&v))
		var c bytes.Buffer
		require.NoError(tb, json.Compact(&c, v))
		out = append(out, [2]string{tok.(string), c.String()})
	}
	return out
}

// walkMembers lists the members bodyReader.members sees, each value read
// with rawValue, in the same form. The reader gets one byte per read, so
// that every token crosses a refill of its buffer.
func walkMembers(tb testing.TB, obj []byte) [][2]string {
	tb.Helper()
	b := newBodyReader(iotest.OneByteReader(bytes.NewReader(obj)))
	defer b.release()
	c, ok := b.peek()
	require.True(tb, ok)
	require.Equal(tb, byte('{'), c)
	var out [][2]string
	require.NoError(tb, b.members(func(name string) error {
		raw, err := b.rawValue(1)
		require.NoError(tb, err)
		var c bytes.Buffer
		require.NoError(tb, json.Compact(&c, raw), "value %q", raw)
		out = append(out, [2]string{name, c.String()})
		return nil
	}))
	return out
}

func TestMembers(t *testing.T) {
	for _, obj := range []string{
		`{}`,
		` { } `,
		`{"a":1}`,
		`{"a" : -1.5e+3 , "b":true,"c":false,"d":null}`,
		`{"s":"x}]\",{[\\","t":"\u00e9\n"}`,
		`{"nested":{"a":[1,{"b":"]}"}],"c":{}},"after":[[],[[]]]}`,
		"{\n\t\"entities\" :\r\n [ \"u_1\" , 42 ] ,\n\"at\":\"2024-06-01T00:00:00Z\"\n}",
		`{"\u0065ntities":["u_1"],"a\"b":0,"":""}`,
		`{"dup":1,"dup":2}`,
		`{"long":"` + strings.Repeat("x", 3*bodyBufSize) + `","n":` + strings.Repeat("7", bodyBufSize) + `}`,
	} {
		t.Run(clip(obj), func(t *testing.T) {
			require.Equal(t, tokenMembers(t, []byte(obj)), walkMembers(t, []byte(obj)))
		})
	}
}

// FuzzMembers: for any JSON object, bodyReader.members sees the members
// the tokenizer sees, never panicking on it.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"s":"x}]\"","n":[{"b":"]}"}]}`, `{"\u00e9":-0.0e-0,"t":true}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &v) != nil || !strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{") {
			return // members is given objects; FuzzSkip covers the rest
		}
		require.Equal(t, tokenMembers(t, []byte(s)), walkMembers(t, []byte(s)))
	})
}

// skipsAsValid reads data with bodyReader.skip, one byte per read, and
// reports whether it took data as one JSON value and nothing after it.
func skipsAsValid(data []byte) bool {
	b := newBodyReader(iotest.OneByteReader(bytes.NewReader(data)))
	defer b.release()
	if err := b.skip(0); err != nil {
		return false
	}
	_, more := b.peek()
	return !more && b.err == io.EOF
}

// TestSkip: bodyReader.skip accepts exactly what encoding/json accepts.
func TestSkip(t *testing.T) {
	for _, s := range skipSeeds {
		require.Equal(t, json.Valid([]byte(s)), skipsAsValid([]byte(s)), "%q", s)
	}
}

var skipSeeds = []string{
	``, ` `, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e`, `1e+`, `1E-7`, `.5`, `+1`, `1-2`, `0x1`,
	`"`, `""`, `"\"`, `"\u12"`, `"\u12g4"`, `"\u00e9"`, `"\x"`, "\"a\tb\"", "\"\xff\"", `"\ud800"`,
	`true`, `tru`, `truex`, `nul`, `null`, `false`, `[`, `[]`, `[1,]`, `[,1]`, `[1 2]`, `{}`, `{"a"}`, `{"a":}`,
	`{"a":1,}`, `{1:2}`, `{"a":1 "b":2}`, `[[[]]]`, `[{"a":[{"b":{}}]}]`, `{"a":1}}`, `[1]]`, `"a" "b"`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
}

// FuzzSkip: for any input, bodyReader.skip agrees with json.Valid.
func FuzzSkip(f *testing.F) {
	for _, s := range skipSeeds[:len(skipSeeds)-2] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		require.Equal(t, json.Valid([]byte(s)), skipsAsValid([]byte(s)), "%q", s)
	})
}
