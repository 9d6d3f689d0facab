package serve

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchHandler loads 100 users with three transactions each into the test
// Redis and returns the server's handler and the users.
func benchHandler(b *testing.B) (http.Handler, []string) {
	reg := exampleRegistry(b)
	st := redisStore(b)
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
	s, err := New(reg, st, DefaultConfig(), nil, WithClock(func() time.Time { return now }))
	require.NoError(b, err)
	return s.Handler(), users
}

func BenchmarkGetSingle(b *testing.B) {
	h, users := benchHandler(b)
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

func BenchmarkBatch100(b *testing.B) {
	h, users := benchHandler(b)
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
