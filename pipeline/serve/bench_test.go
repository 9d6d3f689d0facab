package serve

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// benchHandler loads 100 users with three transactions each into the test
// Redis and returns the server's handler and the users; with tel, the
// server and its Redis client are instrumented with it.
func benchHandler(b *testing.B, tel *telemetry.Providers) (http.Handler, []string) {
	reg := testenv.Registry(b)
	_, rc := testenv.Redis(b, tel.InstrumentRedis)
	st := store.NewRedis(rc, testenv.Unique("serve-test:"))
	var lines, users []string
	for u := range 100 {
		user := fmt.Sprintf("bench_%03d", u)
		users = append(users, user)
		for k := range 3 {
			ts := now.Add(-time.Duration(10+k*15) * time.Minute).UnixMilli()
			lines = append(lines, fmt.Sprintf(`{"txn_id":"b%d_%d","user_id":%q,"ts":%d,"amount":%d.25,"merchant_id":"m_%d","items":%d}`, u, k, user, ts, 10+k, k, k+1))
		}
	}
	load(b, reg, st, "transaction", lines)
	s, err := New(reg, st, DefaultConfig(), nil, WithClock(func() time.Time { return now }), WithTelemetry(tel))
	require.NoError(b, err)
	return s.Handler(), users
}

func BenchmarkGetSingle(b *testing.B) { benchGetSingle(b, nil) }

func BenchmarkGetSingleTelemetry(b *testing.B) { testenv.EachTelemetry(b, benchGetSingle) }

func BenchmarkBatch100(b *testing.B) { benchBatch100(b, nil) }

func BenchmarkBatch100Telemetry(b *testing.B) { testenv.EachTelemetry(b, benchBatch100) }

func benchGetSingle(b *testing.B, tel *telemetry.Providers) {
	h, users := benchHandler(b, tel)
	r := httptest.NewRequest(http.MethodGet, "/v1/features/user_spend/"+users[7], nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

func benchBatch100(b *testing.B, tel *telemetry.Providers) {
	h, users := benchHandler(b, tel)
	body := `{"entities":["` + strings.Join(users, `","`) + `"],"at":"2024-06-01T00:00:00Z"}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/v1/features/user_spend", strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkFeastSingle is Feast's POST /get-online-features for one entity
// and every feature of user_spend: the request BenchmarkGetSingle answers
// by GET, so the two differ by the Feast request and answer alone.
func BenchmarkFeastSingle(b *testing.B) {
	h, users := benchHandler(b, nil)
	reg := testenv.Registry(b)
	var refs []string
	for _, f := range reg.Views["user_spend"].Features {
		refs = append(refs, `"user_spend:`+f.Name+`"`)
	}
	body := `{"features":[` + strings.Join(refs, ",") + `],"entities":{"user_id":["` + users[7] + `"]}}`
	r := httptest.NewRequest(http.MethodPost, "/get-online-features", nil)
	rd := strings.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		r.Body, r.ContentLength = io.NopCloser(rd), int64(len(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// decodeBodies are the bodies of the largest lookups the default limit
// lets through: 10,000 entities, as a batch and as Feast's request.
func decodeBodies() (batch, feast string) {
	entities := make([]string, DefaultConfig().MaxEntities)
	for i := range entities {
		entities[i] = fmt.Sprintf(`"u_%06d"`, i)
	}
	list := strings.Join(entities, ",")
	batch = `{"entities":[` + list + `],"features":["txn_count_1h","amount_sum_24h"],"at":"2024-06-01T00:00:00Z"}`
	feast = `{"features":["user_spend:txn_count_1h","user_spend:amount_sum_24h"],"entities":{"user_id":[` + list + `]},"full_feature_names":false}`
	return batch, feast
}

// benchDecode reads body as a request to path with read, which must
// return the number of entities.
func benchDecode(b *testing.B, path, body string, read func(s *Server, w http.ResponseWriter, r *http.Request) (int, error)) {
	s, err := New(testenv.Registry(b), &memStore{}, DefaultConfig(), nil)
	require.NoError(b, err)
	r := httptest.NewRequest(http.MethodPost, path, nil)
	w := httptest.NewRecorder()
	rd := strings.NewReader(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(body)
		r.Body, r.ContentLength = io.NopCloser(rd), int64(len(body))
		n, err := read(s, w, r)
		if err != nil || n != s.cfg.MaxEntities {
			b.Fatalf("%d entities, %v", n, err)
		}
	}
}

// BenchmarkDecodeBatch reads the body of a batch lookup of 10,000
// entities, up to their canonical texts.
func BenchmarkDecodeBatch(b *testing.B) {
	body, _ := decodeBodies()
	benchDecode(b, "/v1/features/user_spend", body, func(s *Server, w http.ResponseWriter, r *http.Request) (int, error) {
		req, err := s.readBatch(w, r)
		return len(req.entities), err
	})
}

// BenchmarkDecodeFeast reads the body of a Feast request for 10,000
// entities, up to their canonical texts.
func BenchmarkDecodeFeast(b *testing.B) {
	_, body := decodeBodies()
	benchDecode(b, "/get-online-features", body, func(s *Server, w http.ResponseWriter, r *http.Request) (int, error) {
		req, err := s.readFeast(w, r)
		return len(req.values), err
	})
}
