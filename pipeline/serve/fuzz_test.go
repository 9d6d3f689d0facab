package serve

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/stretchr/testify/require"
)

// fuzzHandler serves the example definitions from memory, so fuzzing needs
// no Redis.
func fuzzHandler(tb testing.TB) http.Handler {
	reg := testenv.Registry(tb)
	s, err := New(reg, newMemStore(tb, reg, "transaction", transactions), testConfig(), nil, WithClock(func() time.Time { return now }))
	require.NoError(tb, err)
	return s.Handler()
}

// requireHandled checks that whatever the request, the answer is one of
// the documented statuses with a JSON body: never a 500, never a panic.
// The mux redirects paths with . or .. segments to their clean form.
func requireHandled(t *testing.T, h http.Handler, r *http.Request) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	switch w.Code {
	case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return
	case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
	default:
		t.Fatalf("%s %s: status %d: %s", r.Method, r.URL, w.Code, w.Body.String())
	}
	require.True(t, json.Valid(w.Body.Bytes()), "%s %s answered invalid JSON: %q", r.Method, r.URL, w.Body.String())
}

func FuzzBatchRequest(f *testing.F) {
	for _, s := range []string{
		`{"entities":["u_1",42,"nobody"],"features":["txn_count_1h"],"at":1717200000000}`,
		`{"entities":[],"at":"2024-06-01T00:00:00Z"}`,
		`{"entities":[1e400,-0,"\ud800",null]}`,
		`{"entities":["\u0000\u2028"],"at":"1717200000000"}`,
		`{"entities":[123456789012345678901234567890],"at":"0000-01-01T00:00:00Z"}`,
		`{"entities":["u_1"],"at":1717200000}`,
		`{"entity":["u_1"],"features":"txn_count_1h","at":-1}`,
		`{"entities":["a"]}{}`,
		`[`,
	} {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/features/user_spend", "/get-online-features"} {
			requireHandled(t, h, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		}
	})
}

func FuzzFeastRequest(f *testing.F) {
	for _, s := range []string{
		`{"features":["user_spend:txn_count_1h","user_spend:last_merchant"],"entities":{"user_id":["u_1",7]},"full_feature_names":true}`,
		`{"features":["merchant_activity:txn_count_10m"],"entities":{"merchant_id":["m_a","\u00e9"]}}`,
		`{"features":[":"],"entities":{"":[]}}`,
		`{"feature_service":{},"entities":{}}`,
	} {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		requireHandled(t, h, httptest.NewRequest(http.MethodPost, "/get-online-features", strings.NewReader(body)))
	})
}

func FuzzGetQuery(f *testing.F) {
	for _, s := range [][2]string{
		{"u_1", "at=1717200000000&features=txn_count_1h,last_merchant"},
		{"42", "at=2024-06-01T00:00:00.123456789%2B01:00"},
		{"%FF%00", "at=9223372036854775807"},
		{"u_2", "at=-9223372036854775808&features=,"},
		{"u_1", "at=1717200000&features=txn_count_2h"},
		{"x", "at=0000-01-01T00:00:00Z"},
	} {
		f.Add(s[0], s[1])
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, entity, query string) {
		u := &url.URL{Path: "/v1/features/user_spend/" + entity, RawQuery: query}
		if strings.ContainsAny(query, " #\x00\r\n\t") || entity == "" || strings.Contains(entity, "/") {
			return // not a request line a client can send
		}
		r, err := http.NewRequest(http.MethodGet, "http://serve"+u.EscapedPath()+"?"+query, nil)
		if err != nil {
			return
		}
		requireHandled(t, h, r)
	})
}
