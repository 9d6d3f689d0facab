package serve

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"time"

	"github.com/freshet-ml/freshet/schemas"
)

// Example looks up one user's spending features as of a time, from the
// example definitions. The store here is in memory; serve runs on
// store.NewRedis.
func Example() {
	reg, err := schemas.Load(filepath.Join("..", "..", "schemas", "example"))
	if err != nil {
		panic(err)
	}
	st, err := buildMemStore(reg, "transaction", transactions)
	if err != nil {
		panic(err)
	}
	s, err := New(reg, st, DefaultConfig(), nil, WithClock(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet,
		"/v1/features/user_spend/u_1?at=2024-06-01T03:00:00Z&features=txn_count_1h,amount_sum_24h,amount_max_1h,last_merchant", nil))
	fmt.Print(w.Body.String())
	// Output:
	// {"view":"user_spend","entity":"u_1","at":"2024-06-01T03:00:00.000Z","status":"PRESENT","features":{"txn_count_1h":0,"amount_sum_24h":40.0,"amount_max_1h":null,"last_merchant":"m_a"},"event_time":"2024-05-31T23:50:00.250Z"}
}
