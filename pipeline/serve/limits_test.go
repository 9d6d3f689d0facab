package serve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// limitHandler serves the example definitions from memory with cfg.
func limitHandler(tb testing.TB, cfg Config) http.Handler {
	tb.Helper()
	reg := testenv.Registry(tb)
	s, err := New(reg, newMemStore(tb, reg, "transaction", transactions), cfg, nil, WithClock(func() time.Time { return now }))
	require.NoError(tb, err)
	return s.Handler()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// listReader is the elements elem(0) … elem(n-1) of a JSON list, comma
// separated, made as they are read: a body of millions of entities costs
// the test no memory.
type listReader struct {
	n, i    int
	elem    func(i int) string
	pending []byte
}

func (l *listReader) Read(p []byte) (int, error) {
	read := 0
	for read < len(p) {
		if len(l.pending) == 0 {
			if l.i == l.n {
				break
			}
			if l.i > 0 {
				l.pending = append(l.pending, ',')
			}
			l.pending = append(l.pending, l.elem(l.i)...)
			l.i++
		}
		k := copy(p[read:], l.pending)
		l.pending = l.pending[k:]
		read += k
	}
	if read == 0 {
		return 0, io.EOF
	}
	return read, nil
}

// lazyBody is prefix, the list of n elements, then suffix, read through
// a counter.
type lazyBody struct {
	countingReader
	list *listReader
}

func newLazyBody(prefix string, n int, elem func(int) string, suffix string) *lazyBody {
	l := &listReader{n: n, elem: elem}
	return &lazyBody{countingReader{r: io.MultiReader(strings.NewReader(prefix), l, strings.NewReader(suffix))}, l}
}

// serveBody answers a POST of body to path, of no declared length, as a
// client streaming it would send it.
func serveBody(h http.Handler, path, accept string, body io.Reader) answer {
	r := httptest.NewRequest(http.MethodPost, path, body)
	r.ContentLength = -1
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return answer{w.Code, w.Header(), w.Body.Bytes()}
}

func intEntity(i int) string    { return strconv.Itoa(1_000_000 + i) }
func stringEntity(i int) string { return `"u_` + strconv.Itoa(i) + `"` }
func repeatedRef(int) string    { return `"user_spend:txn_count_1h"` }

// TestEntityLimit: a request of MaxEntities entities is answered, one of
// one more is refused with 400 naming the limit, on every endpoint that
// takes a body.
func TestEntityLimit(t *testing.T) {
	h := limitHandler(t, testConfig()) // at most 5
	list := func(n int) string {
		e := make([]string, n)
		for i := range e {
			e[i] = stringEntity(i)
		}
		return "[" + strings.Join(e, ",") + "]"
	}
	for _, tc := range []struct {
		name, path, accept string
		body               func(entities string) string
	}{
		{"batch", "/v1/features/user_spend", "", func(e string) string { return `{"entities":` + e + `}` }},
		{"batch, entities last", "/v1/features/user_spend", "", func(e string) string { return `{"features":["txn_count_1h"],"at":1717200000000,"entities":` + e + `}` }},
		{"arrow", "/v1/features/user_spend", ArrowStream, func(e string) string { return `{"entities":` + e + `}` }},
		{"feast", "/get-online-features", "", func(e string) string {
			return `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":` + e + `}}`
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := serveBody(h, tc.path, tc.accept, strings.NewReader(tc.body(list(5))))
			require.Equal(t, http.StatusOK, a.status, "body: %s", a.body)
			a = serveBody(h, tc.path, tc.accept, strings.NewReader(tc.body(list(6))))
			require.Equal(t, "too many entities: at most 5 per request; split the request", errorText(t, a, http.StatusBadRequest))
		})
	}
}

// TestRefusedEarly: a body of millions of entities (or feature names) is
// refused as soon as its list passes the limit, having read a bounded
// prefix of it, not decoded whole before its entities are counted (6.8 s
// of CPU for 8M entities, 3 GB for four such requests at once). The body
// stays under the 16 MiB limit, so nothing else refuses it.
func TestRefusedEarly(t *testing.T) {
	h := limitHandler(t, DefaultConfig()) // at most 10,000 entities
	const n = 2_000_000
	for _, tc := range []struct {
		name, path, accept string
		body               *lazyBody
		msg                string
	}{
		{"batch", "/v1/features/user_spend", "",
			newLazyBody(`{"entities":[`, n, intEntity, `]}`), "too many entities: at most 10000 per request"},
		{"arrow", "/v1/features/user_spend", ArrowStream,
			newLazyBody(`{"at":1717200000000,"entities":[`, n, intEntity, `]}`), "too many entities: at most 10000 per request"},
		{"feast", "/get-online-features", "",
			newLazyBody(`{"features":["user_spend:txn_count_1h"],"entities":{"user_id":[`, n, intEntity, `]}}`), "too many entities: at most 10000 per request"},
		{"feast, strings", "/get-online-features", "",
			newLazyBody(`{"features":["user_spend:txn_count_1h"],"entities":{"user_id":[`, n/2, stringEntity, `]}}`), "too many entities: at most 10000 per request"},
		{"batch features", "/v1/features/user_spend", "",
			newLazyBody(`{"entities":["u_1"],"features":[`, n/4, func(int) string { return `"txn_count_1h"` }, `]}`), "too many features: at most 1000 per request"},
		// The request of the report: 200,000 references for 200
		// entities, 5.4 MB, was answered with 1.58 GB after 75 s.
		{"feast references", "/get-online-features", "",
			newLazyBody(`{"entities":{"user_id":[`+strings.Repeat(`"u_1",`, 199)+`"u_1"]},"features":[`, 200_000, repeatedRef, `]}`),
			"too many features: at most 1000 per request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := serveBody(h, tc.path, tc.accept, tc.body)
			require.Contains(t, errorText(t, a, http.StatusBadRequest), tc.msg)
			// 10,000 entities of 8 bytes are 80 kB, and the reader's
			// buffer 16 KiB; the whole body is 5 to 16 MB.
			require.Less(t, tc.body.n, int64(256<<10), "bytes read before the refusal")
			// At most the limit (10,000 entities, 1,000 features) and
			// the elements one buffer holds, of 200,000 to 2,000,000.
			require.Less(t, tc.body.list.i, 12_000, "list elements read before the refusal")
		})
	}
}

// TestFeatureLimit: more than maxFeatures feature names, or one named
// twice, is refused with 400 naming the limit or the duplicate, in each
// form of lookup. Feast's references were neither bounded nor checked for
// duplicates: 200,000 of them for 200 entities answered 1.58 GB.
func TestFeatureLimit(t *testing.T) {
	h := limitHandler(t, testConfig())
	refs := func(n int, name string) string {
		r := make([]string, n)
		for i := range r {
			r[i] = `"` + name + `"`
		}
		return "[" + strings.Join(r, ",") + "]"
	}
	query := strings.TrimSuffix(strings.Repeat("txn_count_1h,", maxFeatures+1), ",")
	for _, tc := range []struct {
		name, method, path, body string
		msg                      string
	}{
		{"batch, too many", "POST", "/v1/features/user_spend", `{"entities":["u_1"],"features":` + refs(maxFeatures+1, "nope") + `}`,
			"too many features: at most 1000 per request"},
		{"batch, at the limit: the first unknown", "POST", "/v1/features/user_spend", `{"entities":["u_1"],"features":` + refs(maxFeatures, "nope") + `}`,
			`unknown feature "nope" in view "user_spend"; its features: amount_max_1h, amount_mean_7d, amount_std_24h, amount_sum_24h, items_min_1h, last_merchant, txn_count_1h`},
		{"batch, twice", "POST", "/v1/features/user_spend", `{"entities":["u_1"],"features":["txn_count_1h","last_merchant","txn_count_1h"]}`,
			`feature "txn_count_1h" of view "user_spend" requested twice`},
		{"get, too many", "GET", "/v1/features/user_spend/u_1?features=" + query, "",
			"too many features: at most 1000 per request"},
		{"feast, too many", "POST", "/get-online-features", `{"features":` + refs(maxFeatures+1, "user_spend:txn_count_1h") + `,"entities":{"user_id":["u_1"]}}`,
			"too many features: at most 1000 per request"},
		{"feast, at the limit: the first duplicate", "POST", "/get-online-features", `{"features":` + refs(maxFeatures, "user_spend:txn_count_1h") + `,"entities":{"user_id":["u_1"]}}`,
			`feature "txn_count_1h" of view "user_spend" requested twice`},
		{"feast, twice", "POST", "/get-online-features", `{"features":["user_spend:txn_count_1h","user_spend:last_merchant","user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]}}`,
			`feature "txn_count_1h" of view "user_spend" requested twice`},
		{"feast, twice with full names", "POST", "/get-online-features", `{"features":["user_spend:last_merchant","user_spend:last_merchant"],"entities":{"user_id":["u_1"]},"full_feature_names":true}`,
			`feature "last_merchant" of view "user_spend" requested twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, tc.msg, errorText(t, answer{w.Code, w.Header(), w.Body.Bytes()}, http.StatusBadRequest))
		})
	}
}

// TestFeastAnswerBound: the largest Feast request the limits let through,
// every feature of the entity field's views once for MaxEntities
// entities, answers one value, status and time per entity and reference:
// its size is bounded by entities × references, a few dozen bytes each.
func TestFeastAnswerBound(t *testing.T) {
	cfg := DefaultConfig()
	h := limitHandler(t, cfg)
	reg := testenv.Registry(t)
	var refs []string
	for _, name := range reg.ViewNames() {
		if v := reg.Views[name]; v.Entity == "user_id" {
			for _, f := range v.Features {
				refs = append(refs, `"`+name+`:`+f.Name+`"`)
			}
		}
	}
	entities := make([]string, cfg.MaxEntities)
	for i := range entities {
		entities[i] = stringEntity(i)
	}
	body := `{"features":[` + strings.Join(refs, ",") + `],"entities":{"user_id":[` + strings.Join(entities, ",") + `]}}`
	a := serveBody(h, "/get-online-features", "", strings.NewReader(body))
	require.Equal(t, http.StatusOK, a.status, "body: %.300s", a.body)
	o := decodeObject(t, a.body)
	results := o.array(t, "results")
	require.Len(t, results, len(refs)+1)
	for _, r := range results {
		require.Len(t, decodeObject(t, r).array(t, "values"), cfg.MaxEntities)
	}
	cells := (len(refs) + 1) * cfg.MaxEntities
	require.Less(t, len(a.body), 64*cells, "bytes per value, status and time")

	// One more reference can only repeat one: refused.
	body = `{"features":[` + strings.Join(append(refs, refs[0]), ",") + `],"entities":{"user_id":["u_1"]}}`
	a = serveBody(h, "/get-online-features", "", strings.NewReader(body))
	require.Contains(t, errorText(t, a, http.StatusBadRequest), "requested twice")
}

// TestInvalidText: an entity id or a feature name that is not text (a byte
// that is not UTF-8, an escape of half a UTF-16 surrogate pair) is refused
// with 400 naming it, as ingest refuses such an id: encoding/json would
// read U+FFFD in its place, so that "probe_\xff\xfe" and "probe_\xfe\xff"
// looked up one entity, which no event could have stored under that text.
func TestInvalidText(t *testing.T) {
	h := limitHandler(t, testConfig())
	feast := func(entity string) string {
		return `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1",` + entity + `]}}`
	}
	for _, tc := range []struct {
		name, method, path, accept, body string
		msg                              string // "" for a 200
	}{
		{"batch", "POST", "/v1/features/user_spend", "", "{\"entities\":[\"probe_\xff\xfe\"]}",
			`entities[0]: invalid UTF-8: byte 0xff after "probe_"; send text as UTF-8`},
		{"batch, other order", "POST", "/v1/features/user_spend", "", "{\"entities\":[\"probe_\xfe\xff\"]}",
			`entities[0]: invalid UTF-8: byte 0xfe after "probe_"; send text as UTF-8`},
		{"arrow", "POST", "/v1/features/user_spend", ArrowStream, "{\"entities\":[\"u_1\",\"\xc3\"]}",
			`entities[1]: invalid UTF-8: byte 0xc3 at the start; send text as UTF-8`},
		{"batch, lone surrogate", "POST", "/v1/features/user_spend", "", `{"entities":["probe_\udcff"]}`,
			`entities[0]: invalid UTF-8: \udcff after "probe_" is half of a UTF-16 surrogate pair, which is no character alone`},
		{"batch, high surrogate then text", "POST", "/v1/features/user_spend", "", `{"entities":["\ud83dx"]}`,
			`entities[0]: invalid UTF-8: \ud83d at the start is half of a UTF-16 surrogate pair, which is no character alone`},
		{"batch, feature name", "POST", "/v1/features/user_spend", "", "{\"entities\":[\"u_1\"],\"features\":[\"txn_count_1h\xff\"]}",
			`features[0]: invalid UTF-8: byte 0xff after "txn_count_1h"; send text as UTF-8`},
		{"feast", "POST", "/get-online-features", "", feast("\"probe_\xff\xfe\""),
			`entities.user_id[1]: invalid UTF-8: byte 0xff after "probe_"; send text as UTF-8`},
		{"feast, lone surrogate", "POST", "/get-online-features", "", feast(`"\udcff"`),
			`entities.user_id[1]: invalid UTF-8: \udcff at the start is half of a UTF-16 surrogate pair, which is no character alone`},
		{"feast, reference", "POST", "/get-online-features", "", "{\"features\":[\"user_spend:\xff\"],\"entities\":{\"user_id\":[\"u_1\"]}}",
			`features[0]: invalid UTF-8: byte 0xff after "user_spend:"; send text as UTF-8`},
		{"get", "GET", "/v1/features/user_spend/probe_%FF%FE", "", "",
			`entity in the path: invalid UTF-8: byte 0xff after "probe_"; send text as UTF-8`},
		{"get, encoded surrogate", "GET", "/v1/features/user_spend/%ED%A0%80", "", "",
			`entity in the path: invalid UTF-8: byte 0xed at the start; send text as UTF-8`},
		// U+FFFD itself is text, raw or escaped; so is a surrogate pair.
		{"replacement character", "POST", "/v1/features/user_spend", "", `{"entities":["probe_` + "\uFFFD" + `","probe_\ufffd"]}`, ""},
		{"replacement character, get", "GET", "/v1/features/user_spend/probe_%EF%BF%BD", "", "", ""},
		{"surrogate pair", "POST", "/get-online-features", "", feast(`"\ud83d\ude00"`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := httptest.NewRequest(tc.method, tc.path, body)
			if tc.accept != "" {
				r.Header.Set("Accept", tc.accept)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			a := answer{w.Code, w.Header(), w.Body.Bytes()}
			if tc.msg == "" {
				requireOK(t, a)
				return
			}
			require.Equal(t, tc.msg, errorText(t, a, http.StatusBadRequest))
		})
	}
}
