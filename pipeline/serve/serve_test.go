package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// pstdev is the population standard deviation, as the stddev aggregation
// defines it.
func pstdev(xs ...float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss / float64(len(xs)))
}

// The values of u_1 and u_2, worked out by hand from the transactions.
var (
	// u_1 at now: t2, t3, t4 (10, 25.5, 4.5) in the hour and the 24h; t1
	// (100) too in the 7 days.
	u1Now = []feature{
		exact("txn_count_1h", "3"),
		exact("amount_sum_24h", "40.0"),
		exact("amount_mean_7d", "35.0"), // (100+10+25.5+4.5)/4
		exact("amount_max_1h", "25.5"),
		exact("items_min_1h", "1"),
		near("amount_std_24h", pstdev(10, 25.5, 4.5)),
		exact("last_merchant", `"m_a"`),
	}
	// u_1 three hours later: the 1h windows are empty.
	u1Plus3h = []feature{
		exact("txn_count_1h", "0"),
		exact("amount_sum_24h", "40.0"),
		exact("amount_mean_7d", "35.0"),
		exact("amount_max_1h", "null"),
		exact("items_min_1h", "null"),
		near("amount_std_24h", pstdev(10, 25.5, 4.5)),
		exact("last_merchant", `"m_a"`),
	}
	// u_1 two days later: the 24h windows are empty too, the 7d ones not.
	u1Plus2d = []feature{
		exact("txn_count_1h", "0"),
		exact("amount_sum_24h", "0.0"),
		exact("amount_mean_7d", "35.0"),
		exact("amount_max_1h", "null"),
		exact("items_min_1h", "null"),
		exact("amount_std_24h", "null"),
		exact("last_merchant", `"m_a"`),
	}
	// u_2 at now: one transaction of 7 without items or merchant.
	u2Now = []feature{
		exact("txn_count_1h", "1"),
		exact("amount_sum_24h", "7.0"),
		exact("amount_mean_7d", "7.0"),
		exact("amount_max_1h", "7.0"),
		exact("items_min_1h", "null"),
		exact("amount_std_24h", "0.0"),
		exact("last_merchant", "null"),
	}
	allNull = []feature{
		exact("txn_count_1h", "null"),
		exact("amount_sum_24h", "null"),
		exact("amount_mean_7d", "null"),
		exact("amount_max_1h", "null"),
		exact("items_min_1h", "null"),
		exact("amount_std_24h", "null"),
		exact("last_merchant", "null"),
	}
)

func TestGetFeatures(t *testing.T) {
	base := exampleServer(t)
	for _, tc := range []struct {
		name, path, at, status, eventTime string
		want                              []feature
	}{
		{"now by default", "/v1/features/user_spend/u_1", "2024-06-01T00:00:00.000Z", "PRESENT", `"2024-05-31T23:50:00.250Z"`, u1Now},
		{"3h later", "/v1/features/user_spend/u_1?at=2024-06-01T03:00:00Z", "2024-06-01T03:00:00.000Z", "PRESENT", `"2024-05-31T23:50:00.250Z"`, u1Plus3h},
		{"2d later", "/v1/features/user_spend/u_1?at=2024-06-03T00:00:00Z", "2024-06-03T00:00:00.000Z", "PRESENT", `"2024-05-31T23:50:00.250Z"`, u1Plus2d},
		{"other entity", "/v1/features/user_spend/u_2", "2024-06-01T00:00:00.000Z", "PRESENT", `"2024-05-31T23:55:00.000Z"`, u2Now},
		{"not found", "/v1/features/user_spend/nobody", "2024-06-01T00:00:00.000Z", "NOT_FOUND", "null", allNull},
		{"escaped entity", "/v1/features/user_spend/" + url.PathEscape("a/b c"), "2024-06-01T00:00:00.000Z", "NOT_FOUND", "null", allNull},
		{"merchant view", "/v1/features/merchant_activity/m_a?features=txn_count_24h,items_sum_1h,amount_sum_1h,card_present_last",
			"2024-06-01T00:00:00.000Z", "PRESENT", `"2024-05-31T23:50:00.250Z"`, []feature{
				exact("txn_count_24h", "2"), // t2, t4
				exact("items_sum_1h", "5"),  // 2+3, an int sum stays an int
				exact("amount_sum_1h", "14.5"),
				exact("card_present_last", "true"),
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, base+tc.path)
			requireOK(t, a)
			o := decodeObject(t, a.body)
			require.Equal(t, []string{"view", "entity", "at", "status", "features", "event_time"}, o.keys)
			path, _, _ := strings.Cut(tc.path, "?")
			segs := strings.Split(path, "/")
			ent, err := url.PathUnescape(segs[4])
			require.NoError(t, err)
			require.Equal(t, `"`+segs[3]+`"`, o.text(t, "view"))
			require.Equal(t, fmt.Sprintf("%q", ent), o.text(t, "entity"))
			require.Equal(t, `"`+tc.at+`"`, o.text(t, "at"))
			require.Equal(t, `"`+tc.status+`"`, o.text(t, "status"))
			require.Equal(t, tc.eventTime, o.text(t, "event_time"))
			requireFeatures(t, o.object(t, "features"), tc.want)
		})
	}
}

// TestAtForms asks for the same lookup time written every accepted way.
func TestAtForms(t *testing.T) {
	base := exampleServer(t)
	const threeH = "2024-06-01T03:00:00.000Z"
	ms := now.Add(3 * time.Hour).UnixMilli()
	for _, q := range []string{
		fmt.Sprint(ms),
		"2024-06-01T03:00:00Z",
		"2024-06-01T03:00:00.000Z",
		"2024-06-01T03:00:00.000999Z", // below the ms: truncated
		url.QueryEscape("2024-06-01T05:00:00+02:00"),
		"2024-06-01T05:00:00+02:00", // the + arrives as a space
		"2024-05-31T22:00:00-05:00",
	} {
		t.Run("query "+q, func(t *testing.T) {
			a := get(t, base+"/v1/features/user_spend/u_1?at="+q)
			requireOK(t, a)
			o := decodeObject(t, a.body)
			require.Equal(t, `"`+threeH+`"`, o.text(t, "at"))
			requireFeatures(t, o.object(t, "features"), u1Plus3h)
		})
	}
	for _, at := range []string{
		fmt.Sprint(ms),
		fmt.Sprintf(`"%d"`, ms),
		`"2024-06-01T03:00:00Z"`,
		`"2024-06-01T05:00:00+02:00"`,
	} {
		t.Run("json "+at, func(t *testing.T) {
			a := post(t, base+"/v1/features/user_spend", `{"entities":["u_1"],"at":`+at+`}`)
			requireOK(t, a)
			o := decodeObject(t, a.body)
			require.Equal(t, `"`+threeH+`"`, o.text(t, "at"))
			rows := o.array(t, "rows")
			require.Len(t, rows, 1)
			requireFeatures(t, decodeObject(t, rows[0]).object(t, "features"), u1Plus3h)
		})
	}
	t.Run("json null is now", func(t *testing.T) {
		a := post(t, base+"/v1/features/user_spend", `{"entities":["u_1"],"at":null}`)
		requireOK(t, a)
		require.Equal(t, `"2024-06-01T00:00:00.000Z"`, decodeObject(t, a.body).text(t, "at"))
	})
}

func TestFeatureSubsetAndOrder(t *testing.T) {
	base := exampleServer(t)
	want := []feature{exact("last_merchant", `"m_a"`), exact("txn_count_1h", "3"), exact("amount_max_1h", "25.5")}

	a := get(t, base+"/v1/features/user_spend/u_1?features=last_merchant,txn_count_1h,amount_max_1h")
	requireOK(t, a)
	requireFeatures(t, decodeObject(t, a.body).object(t, "features"), want)

	a = get(t, base+"/v1/features/user_spend/u_1?features=last_merchant&features=txn_count_1h,amount_max_1h")
	requireOK(t, a)
	requireFeatures(t, decodeObject(t, a.body).object(t, "features"), want)

	a = post(t, base+"/v1/features/user_spend", `{"entities":["u_1","nobody"],"features":["last_merchant","txn_count_1h","amount_max_1h"]}`)
	requireOK(t, a)
	rows := decodeObject(t, a.body).array(t, "rows")
	require.Len(t, rows, 2)
	requireFeatures(t, decodeObject(t, rows[0]).object(t, "features"), want)
	requireFeatures(t, decodeObject(t, rows[1]).object(t, "features"), []feature{
		exact("last_merchant", "null"), exact("txn_count_1h", "null"), exact("amount_max_1h", "null"),
	})

	// An empty list means every feature.
	a = post(t, base+"/v1/features/user_spend", `{"entities":["u_1"],"features":[]}`)
	requireOK(t, a)
	requireFeatures(t, decodeObject(t, decodeObject(t, a.body).array(t, "rows")[0]).object(t, "features"), u1Now)
}

func TestBatch(t *testing.T) {
	reg := testenv.Registry(t)
	st := &countingStore{Online: redisStore(t)}
	load(t, reg, st, "transaction", transactions)
	_, base := newServer(t, reg, st, testConfig())

	a := post(t, base+"/v1/features/user_spend", `{"entities":["u_2","nobody","u_1","u_2"]}`)
	requireOK(t, a)
	require.Equal(t, [][]string{{"u_2", "nobody", "u_1", "u_2"}}, st.Reads(), "one store read for the batch")
	o := decodeObject(t, a.body)
	require.Equal(t, []string{"view", "at", "rows"}, o.keys)
	require.Equal(t, `"user_spend"`, o.text(t, "view"))
	require.Equal(t, `"2024-06-01T00:00:00.000Z"`, o.text(t, "at"))
	rows := o.array(t, "rows")
	require.Len(t, rows, 4)
	for i, want := range []struct {
		entity, status, eventTime string
		features                  []feature
	}{
		{"u_2", "PRESENT", `"2024-05-31T23:55:00.000Z"`, u2Now},
		{"nobody", "NOT_FOUND", "null", allNull},
		{"u_1", "PRESENT", `"2024-05-31T23:50:00.250Z"`, u1Now},
		{"u_2", "PRESENT", `"2024-05-31T23:55:00.000Z"`, u2Now},
	} {
		row := decodeObject(t, rows[i])
		require.Equal(t, []string{"entity", "status", "features", "event_time"}, row.keys, "row %d", i)
		require.Equal(t, `"`+want.entity+`"`, row.text(t, "entity"), "row %d", i)
		require.Equal(t, `"`+want.status+`"`, row.text(t, "status"), "row %d", i)
		require.Equal(t, want.eventTime, row.text(t, "event_time"), "row %d", i)
		requireFeatures(t, row.object(t, "features"), want.features)
	}

	// No entities: no rows and no round trip.
	a = post(t, base+"/v1/features/user_spend", `{"entities":[]}`)
	requireOK(t, a)
	require.JSONEq(t, `{"view":"user_spend","at":"2024-06-01T00:00:00.000Z","rows":[]}`, string(a.body))
	require.Len(t, st.Reads(), 1)
}

// TestIntEntity: 42 and "42" name one entity, in the path and in JSON.
func TestIntEntity(t *testing.T) {
	reg := clickRegistry(t)
	st := redisStore(t)
	load(t, reg, st, "click", clicks)
	_, base := newServer(t, reg, st, testConfig())
	user42 := []feature{exact("clicks_1h", "2"), exact("dwell_sum_1h", "3.5")}

	a := get(t, base+"/v1/features/clicks/42")
	requireOK(t, a)
	o := decodeObject(t, a.body)
	require.Equal(t, `"42"`, o.text(t, "entity"))
	require.Equal(t, `"PRESENT"`, o.text(t, "status"))
	require.Equal(t, `"2024-05-31T23:30:00.000Z"`, o.text(t, "event_time"))
	requireFeatures(t, o.object(t, "features"), user42)

	a = post(t, base+"/v1/features/clicks", `{"entities":[42,"42",7,-0,99]}`)
	requireOK(t, a)
	rows := decodeObject(t, a.body).array(t, "rows")
	require.Len(t, rows, 5)
	for i, want := range []struct {
		entity, status string
		features       []feature
	}{
		{"42", "PRESENT", user42},
		{"42", "PRESENT", user42},
		{"7", "PRESENT", []feature{exact("clicks_1h", "1"), exact("dwell_sum_1h", "0.25")}},
		{"0", "NOT_FOUND", []feature{exact("clicks_1h", "null"), exact("dwell_sum_1h", "null")}},
		{"99", "NOT_FOUND", []feature{exact("clicks_1h", "null"), exact("dwell_sum_1h", "null")}},
	} {
		row := decodeObject(t, rows[i])
		require.Equal(t, `"`+want.entity+`"`, row.text(t, "entity"), "row %d", i)
		require.Equal(t, `"`+want.status+`"`, row.text(t, "status"), "row %d", i)
		requireFeatures(t, row.object(t, "features"), want.features)
	}

	// An integer beyond int64 keeps its digits: a valid, unknown entity.
	a = post(t, base+"/v1/features/pages", `{"entities":[123456789012345678901234567890]}`)
	requireOK(t, a)
	row := decodeObject(t, decodeObject(t, a.body).array(t, "rows")[0])
	require.Equal(t, `"123456789012345678901234567890"`, row.text(t, "entity"))
	require.Equal(t, `"NOT_FOUND"`, row.text(t, "status"))
}

func TestErrors(t *testing.T) {
	base := exampleServer(t)
	big := strings.Repeat("9", 30)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		parts                    []string
	}{
		{"get unknown view", "GET", "/v1/features/nope/u_1", "", 404, []string{`unknown view "nope"`}},
		{"get unknown feature", "GET", "/v1/features/user_spend/u_1?features=txn_count_1h,x", "", 400, []string{`unknown feature "x" in view "user_spend"`}},
		{"get duplicate feature", "GET", "/v1/features/user_spend/u_1?features=txn_count_1h,txn_count_1h", "", 400, []string{`"txn_count_1h"`, "twice"}},
		{"get invalid at", "GET", "/v1/features/user_spend/u_1?at=yesterday", "", 400, []string{`invalid at "yesterday"`}},
		{"get empty at", "GET", "/v1/features/user_spend/u_1?at=", "", 400, []string{`invalid at ""`}},
		{"get at twice", "GET", "/v1/features/user_spend/u_1?at=1717200000000&at=1717203600000", "", 400, []string{"at given 2 times"}},
		{"get at beyond int64", "GET", "/v1/features/user_spend/u_1?at=" + big, "", 400, []string{`invalid at ` + big + `: integer epoch milliseconds must lie in [100000000000, 100000000000000)`}},
		{"get at beyond year 9999", "GET", "/v1/features/user_spend/u_1?at=9999-12-31T23:59:59-01:00", "", 400, []string{`"9999-12-31T23:59:59-01:00"`, "outside years"}},
		{"get at before year 0", "GET", "/v1/features/user_spend/u_1?at=0000-01-01T00:00:00%2B01:00", "", 400, []string{`"0000-01-01T00:00:00+01:00"`, "outside years"}},
		{"get unknown parameter", "GET", "/v1/features/user_spend/u_1?feature=x", "", 400, []string{`unknown query parameter "feature"`}},
		{"get bad query escape", "GET", "/v1/features/user_spend/u_1?at=%zz", "", 400, []string{"invalid query string"}},
		{"post unknown view", "POST", "/v1/features/nope", `{"entities":[]}`, 404, []string{`unknown view "nope"`}},
		{"post malformed", "POST", "/v1/features/user_spend", `{"entities":["u_1"`, 400, []string{"invalid JSON body"}},
		{"post not json", "POST", "/v1/features/user_spend", `entities=u_1`, 400, []string{"invalid JSON body"}},
		{"post empty body", "POST", "/v1/features/user_spend", "", 400, []string{"empty request body"}},
		{"post trailing data", "POST", "/v1/features/user_spend", `{"entities":[]} {}`, 400, []string{"invalid JSON body"}},
		{"post unknown member", "POST", "/v1/features/user_spend", `{"entity":["u_1"]}`, 400, []string{`unknown member "entity"; the members are: at, entities, features`}},
		{"post missing entities", "POST", "/v1/features/user_spend", `{"features":["txn_count_1h"]}`, 400, []string{`missing "entities"`}},
		{"post null entities", "POST", "/v1/features/user_spend", `{"entities":null}`, 400, []string{`missing "entities"`}},
		{"post entities not a list", "POST", "/v1/features/user_spend", `{"entities":"u_1"}`, 400, []string{`"entities": want a list of strings or integers, got a string`}},
		{"post bool entity", "POST", "/v1/features/user_spend", `{"entities":["u_1",true]}`, 400, []string{"entities[1]", "got a bool"}},
		{"post null entity", "POST", "/v1/features/user_spend", `{"entities":[null]}`, 400, []string{"entities[0]", "got null"}},
		{"post object entity", "POST", "/v1/features/user_spend", `{"entities":["a","b",{"id":1}]}`, 400, []string{"entities[2]", "got an object"}},
		{"post array entity", "POST", "/v1/features/user_spend", `{"entities":[["u_1"]]}`, 400, []string{"entities[0]", "got a list"}},
		{"post float entity", "POST", "/v1/features/user_spend", `{"entities":[4.5]}`, 400, []string{"entities[0]", "4.5 is not an integer"}},
		{"post exponent entity", "POST", "/v1/features/user_spend", `{"entities":["x",1e3]}`, 400, []string{"entities[1]", "1e3 is not an integer"}},
		{"post too many entities", "POST", "/v1/features/user_spend", `{"entities":[1,2,3,4,5,6]}`, 400, []string{"too many entities: at most 5 per request"}},
		{"post unknown feature", "POST", "/v1/features/user_spend", `{"entities":[],"features":["nope"]}`, 400, []string{`unknown feature "nope" in view "user_spend"`}},
		{"post features not strings", "POST", "/v1/features/user_spend", `{"entities":[],"features":[1]}`, 400, []string{"features[0]: want a feature name (a string), got a number"}},
		{"post at bool", "POST", "/v1/features/user_spend", `{"entities":[],"at":true}`, 400, []string{"invalid at true"}},
		{"post at fraction", "POST", "/v1/features/user_spend", `{"entities":[],"at":1717200000000.5}`, 400, []string{"invalid at 1717200000000.5"}},
		{"post at text", "POST", "/v1/features/user_spend", `{"entities":[],"at":"noon"}`, 400, []string{`invalid at "noon"`}},
		{"wrong method on lookup", "DELETE", "/v1/features/user_spend/u_1", "", 405, []string{"DELETE", "GET"}},
		{"wrong method on batch", "GET", "/v1/features/user_spend", "", 405, []string{"POST"}},
		{"wrong method on feast", "GET", "/get-online-features", "", 405, []string{"POST"}},
		{"unknown route", "GET", "/v2/features", "", 404, []string{"no route GET /v2/features"}},
		{"post healthz", "POST", "/healthz", "", 405, []string{"method POST not allowed on /healthz; use GET, HEAD"}},
		{"empty entity segment", "GET", "/v1/features/user_spend/", "", 404, []string{"no route"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireError(t, do(t, tc.method, base+tc.path, tc.body), tc.status, tc.parts...)
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	reg := testenv.Registry(t)
	_, base := newServer(t, reg, &memStore{}, testConfig())
	// A declared length over 16 MiB is refused before reading.
	body := `{"entities":["` + strings.Repeat("a", 16<<20) + `"]}`
	for _, path := range []string{"/v1/features/user_spend", "/get-online-features"} {
		requireError(t, post(t, base+path, body), http.StatusRequestEntityTooLarge, "request body larger than 16 MiB")
	}
	// A body without a length is cut off while decoding; a small limit
	// keeps the test fast.
	s, err := New(reg, &memStore{}, testConfig(), nil)
	require.NoError(t, err)
	s.maxBody = 1000
	for _, path := range []string{"/v1/features/user_spend", "/get-online-features"} {
		r := httptest.NewRequest(http.MethodPost, path, io.MultiReader(strings.NewReader(`{"entities":["`), strings.NewReader(strings.Repeat("a", 2000)+`"]}`)))
		r.ContentLength = -1
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		requireError(t, answer{w.Code, w.Header(), w.Body.Bytes()}, http.StatusRequestEntityTooLarge, "request body larger than 1000 bytes")
	}
	// At the limit is fine.
	r := httptest.NewRequest(http.MethodPost, "/v1/features/user_spend", strings.NewReader(`{"entities":["`+strings.Repeat("a", 1000-17)+`"]}`))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, "body: %s", w.Body)
}

// TestStoreDown: a store that does not answer is a 503 with Retry-After,
// never a 500.
func TestStoreDown(t *testing.T) {
	m := miniredis.RunT(t)
	// No retries, so that the test is quick: the answer is the same.
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	reg := testenv.Registry(t)
	st := store.NewRedis(c, "serve-test:")
	load(t, reg, st, "transaction", transactions)
	_, base := newServer(t, reg, st, testConfig())
	requireOK(t, get(t, base+"/v1/features/user_spend/u_1"))
	requireOK(t, get(t, base+"/readyz"))
	m.Close()

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/features/user_spend/u_1", ""},
		{"POST", "/v1/features/user_spend", `{"entities":["u_1","u_2"]}`},
		{"POST", "/get-online-features", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]}}`},
	} {
		a := do(t, tc.method, base+tc.path, tc.body)
		requireError(t, a, http.StatusServiceUnavailable, "online store unavailable: ")
		require.Equal(t, "1", a.header.Get("Retry-After"), "%s %s", tc.method, tc.path)
	}
	// Bad input is still a 400, and no entities need no store.
	requireError(t, post(t, base+"/v1/features/user_spend", `{"entities":[true]}`), http.StatusBadRequest)
	requireOK(t, post(t, base+"/v1/features/user_spend", `{"entities":[]}`))

	a := get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, a.status)
	requireOK(t, get(t, base+"/healthz"))
	requireOK(t, get(t, base+"/health"))
}

func TestHealth(t *testing.T) {
	base := exampleServer(t)
	for _, path := range []string{"/health", "/healthz", "/readyz"} {
		requireOK(t, get(t, base+path))
	}
}

// TestRun serves on a listener until the context ends.
func TestRun(t *testing.T) {
	reg := testenv.Registry(t)
	s, err := New(reg, redisStore(t), testConfig(), nil)
	require.NoError(t, err)
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, l) }()
	requireOK(t, get(t, "http://"+l.Addr().String()+"/readyz"))
	a := get(t, "http://"+l.Addr().String()+"/v1/features/user_spend/nobody")
	requireOK(t, a)
	require.Equal(t, `"NOT_FOUND"`, decodeObject(t, a.body).text(t, "status"))
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestConfig(t *testing.T) {
	require.Equal(t, Config{HTTPAddr: ":8080", MaxEntities: 10000}, DefaultConfig())

	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-http-addr", "127.0.0.1:9000", "-max-entities", "7"}))
	require.Equal(t, Config{HTTPAddr: "127.0.0.1:9000", MaxEntities: 7}, c)
	require.NoError(t, c.Validate())

	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{HTTPAddr: "", MaxEntities: 1}, ErrInvalidHTTPAddr},
		{Config{HTTPAddr: "localhost", MaxEntities: 1}, ErrInvalidHTTPAddr},
		{Config{HTTPAddr: ":80", MaxEntities: 0}, ErrMaxEntities},
	} {
		err := tc.cfg.Validate()
		require.ErrorIs(t, err, tc.want, "%+v", tc.cfg)
		_, err = New(testenv.Registry(t), &memStore{}, tc.cfg, nil)
		require.ErrorIs(t, err, tc.want)
	}
}

// TestConcurrentLookups runs lookups in parallel: under -race it checks the
// shared buffers, and every answer must be the same.
func TestConcurrentLookups(t *testing.T) {
	base := exampleServer(t)
	want := get(t, base+"/v1/features/user_spend/u_1")
	requireOK(t, want)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				resp, err := http.Get(base + "/v1/features/user_spend/u_1")
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && string(b) != string(want.body) {
					err = errors.New("answer differs: " + string(b))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// TestRealRedisAndMiniredisAgree serves the same state from miniredis,
// which dev mode uses, and from the test Redis.
func TestRealRedisAndMiniredisAgree(t *testing.T) {
	reg := testenv.Registry(t)
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	mini := store.NewRedis(c, testenv.Unique("serve-test:"))
	real := redisStore(t)
	load(t, reg, mini, "transaction", transactions)
	load(t, reg, real, "transaction", transactions)
	_, a := newServer(t, reg, mini, testConfig())
	_, b := newServer(t, reg, real, testConfig())
	for _, at := range []string{"2024-06-01T00:00:00Z", "2024-06-01T03:00:00Z", "2024-06-03T00:00:00Z"} {
		body := `{"entities":["u_1","u_2","nobody"],"at":"` + at + `"}`
		x, y := post(t, a+"/v1/features/user_spend", body), post(t, b+"/v1/features/user_spend", body)
		requireOK(t, x)
		requireOK(t, y)
		require.JSONEq(t, string(x.body), string(y.body), "at %s", at)
	}
}
