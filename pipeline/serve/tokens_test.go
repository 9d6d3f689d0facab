package serve

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/auth/authtest"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// tokenServer serves the example transactions behind the tokens of f,
// with telemetry, logging to log, and returns the server's handler.
func tokenServer(t *testing.T, f *authtest.File, log *slog.Logger) http.Handler {
	t.Helper()
	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "serve-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	reg := testenv.Registry(t)
	st := newMemStore(t, reg, "transaction", transactions)
	s, err := New(reg, st, testConfig(), log, WithClock(func() time.Time { return now }), WithTelemetry(tel), WithTokens(f.Guard))
	require.NoError(t, err)
	return s.Handler()
}

// call sends a request to h as who (authtest.File.Authorize).
func call(h http.Handler, f *authtest.File, method, path, body, who string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	f.Authorize(req, who)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestTokens: with a tokens file every lookup (native, Arrow, Feast's)
// needs the serve scope and GET /metrics the metrics scope, while /healthz,
// /readyz and Feast's /health stay open; refusals are serve's JSON errors.
// The token's name, never the token, labels the request metrics and is in
// the access log.
func TestTokens(t *testing.T) {
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := authtest.New(t, log, []string{"model:serve", "prometheus:metrics", "shop:ingest", "ops:admin"})
	h := tokenServer(t, f, log)

	const (
		one   = "/v1/features/user_spend/u_1"
		batch = "/v1/features/user_spend"
		feast = "/get-online-features"
	)
	batchBody := `{"entities": ["u_1", "u_2"]}`
	feastBody := `{"features": ["user_spend:txn_count_1h"], "entities": {"user_id": ["u_1"]}}`
	for _, tc := range []struct {
		name, method, path, body, who string
		status                        int
		want                          string
	}{
		{"lookup without token", "GET", one, "", "", 401, "missing token"},
		{"lookup with malformed header", "GET", one, "", "Bearer", 401, `no token after "Bearer"`},
		{"lookup with unknown token", "GET", one, "", "Bearer " + strings.Repeat("x", 43), 401, "unknown token"},
		{"lookup with metrics token", "GET", one, "", "prometheus", 403, `lacks the "serve" scope`},
		{"lookup with ingest token", "GET", one, "", "shop", 403, `lacks the "serve" scope`},
		{"lookup with admin token", "GET", one, "", "ops", 403, `lacks the "serve" scope`},
		{"lookup with serve token", "GET", one, "", "model", 200, ""},
		{"unknown view with serve token", "GET", "/v1/features/nope/u_1", "", "model", 404, "unknown view"},
		{"batch without token", "POST", batch, batchBody, "", 401, "missing token"},
		{"batch with metrics token", "POST", batch, batchBody, "prometheus", 403, `lacks the "serve" scope`},
		{"batch with serve token", "POST", batch, batchBody, "model", 200, ""},
		{"feast without token", "POST", feast, feastBody, "", 401, "missing token"},
		{"feast with ingest token", "POST", feast, feastBody, "shop", 403, `lacks the "serve" scope`},
		{"feast with serve token", "POST", feast, feastBody, "model", 200, ""},
		{"views without token", "GET", "/v1/views", "", "", 401, "missing token"},
		{"views with metrics token", "GET", "/v1/views", "", "prometheus", 403, `lacks the "serve" scope`},
		{"views with serve token", "GET", "/v1/views", "", "model", 200, ""},
		{"metrics without token", "GET", "/metrics", "", "", 401, "missing token"},
		{"metrics with serve token", "GET", "/metrics", "", "model", 403, `lacks the "metrics" scope`},
		{"metrics with metrics token", "GET", "/metrics", "", "prometheus", 200, ""},
		{"healthz is open", "GET", "/healthz", "", "", 200, ""},
		{"readyz is open", "GET", "/readyz", "", "", 200, ""},
		{"feast health is open", "GET", "/health", "", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(h, f, tc.method, tc.path, tc.body, tc.who)
			a := answer{rec.Code, rec.Header(), rec.Body.Bytes()}
			if tc.want != "" {
				requireError(t, a, tc.status, tc.want)
			} else {
				require.Equal(t, tc.status, a.status, "body: %s", a.body)
			}
			if tc.status == 401 {
				require.Equal(t, "Bearer", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}

	// Arrow answers behind the same scope.
	req := httptest.NewRequest("POST", batch, strings.NewReader(batchBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.apache.arrow.stream")
	f.Authorize(req, "prometheus")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 403, rec.Code)
	f.Authorize(req, "model")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "application/vnd.apache.arrow.stream", rec.Header().Get("Content-Type"))

	metrics := call(h, f, "GET", "/metrics", "", "prometheus").Body.String()
	for _, line := range []string{
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/v1/features/{view}/{entity}",token="model"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="200",http_route="/get-online-features",token="model"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="403",http_route="/v1/features/{view}/{entity}",token="ops"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="401",http_route="/v1/features/{view}/{entity}"} 3`,
	} {
		require.Contains(t, metrics, line)
	}
	require.Contains(t, logs.String(), `msg="http request" method=GET route=/v1/features/{view}/{entity} path=/v1/features/user_spend/u_1 status=200`)
	require.Contains(t, logs.String(), "token=model\n")
	for name, tok := range f.Tokens {
		require.NotContains(t, logs.String(), tok, "%s's token is logged", name)
		require.NotContains(t, metrics, tok, "%s's token is in the metrics", name)
	}
}

// TestTokensRotate: a rewritten tokens file is in force within the poll,
// without a restart: the new token works, the old one is refused; a
// malformed rewrite keeps the tokens in force.
func TestTokensRotate(t *testing.T) {
	f := authtest.New(t, nil, []string{"model:serve"}, auth.PollEvery(20*time.Millisecond))
	h := tokenServer(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Guard.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	old := f.Tokens["model"]
	require.Equal(t, 200, call(h, f, "GET", "/v1/features/user_spend/u_1", "", "model").Code)
	f.Write(t, "model:serve")
	require.Eventually(t, func() bool {
		return call(h, f, "GET", "/v1/features/user_spend/u_1", "", "model").Code == 200
	}, 5*time.Second, 10*time.Millisecond, "the new token works")
	require.Equal(t, 401, call(h, f, "GET", "/v1/features/user_spend/u_1", "", "Bearer "+old).Code, "the old token is revoked")

	current := f.Tokens["model"]
	require.NoError(t, writeRaw(f.Path, "model serv sha256:"+strings.Repeat("0", 64)+"\n"))
	time.Sleep(200 * time.Millisecond) // ten polls
	require.Equal(t, 200, call(h, f, "GET", "/v1/features/user_spend/u_1", "", "Bearer "+current).Code, "a malformed file changes nothing")
}

// writeRaw replaces the file at path with content.
func writeRaw(path, content string) error {
	tmp := path + ".raw"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
