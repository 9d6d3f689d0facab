package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/auth/authtest"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestTokens: with a tokens file, sending events needs the ingest scope and
// GET /metrics the metrics scope; the health routes stay open. A refusal is
// JSON: 401 with WWW-Authenticate for a missing, malformed or unknown token,
// 403 naming the scope. The token's name, never the token, is in the access
// log and on the request metrics.
func TestTokens(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "ingest-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	cfg := kafkaConfig(testenv.Kafka(t))
	ensureTopics(t, cfg, reg)
	w := cfg.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tokens := authtest.New(t, log, []string{"shop:ingest", "prometheus:metrics", "ops:admin"})
	srv := NewServer(reg, NewPublisher(cfg, w, WithTelemetry(tel)), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, log, WithTelemetry(tel), WithTokens(tokens.Guard))
	h := srv.Handler()

	event := `{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":1717027202000}`
	for _, tc := range []struct {
		name, method, path, who string
		status                  int
		want                    string // in the JSON error
	}{
		{"event without token", "POST", "/v1/events/transaction", "", 401, "missing token"},
		{"event with basic auth", "POST", "/v1/events/transaction", "Basic dTpw", 401, "malformed Authorization header"},
		{"event with unknown token", "POST", "/v1/events/transaction", "Bearer " + strings.Repeat("A", 43), 401, "unknown token"},
		{"event with metrics token", "POST", "/v1/events/transaction", "prometheus", 403, `lacks the "ingest" scope`},
		{"event with admin token", "POST", "/v1/events/transaction", "ops", 403, `lacks the "ingest" scope`},
		{"event with ingest token", "POST", "/v1/events/transaction", "shop", 202, ""},
		{"unknown event type with ingest token", "POST", "/v1/events/nope", "shop", 404, "unknown event type"},
		{"metrics without token", "GET", "/metrics", "", 401, "missing token"},
		{"metrics with ingest token", "GET", "/metrics", "shop", 403, `lacks the "metrics" scope`},
		{"metrics with metrics token", "GET", "/metrics", "prometheus", 200, ""},
		{"healthz is open", "GET", "/healthz", "", 200, ""},
		{"readyz is open", "GET", "/readyz", "", 200, ""},
		{"healthz with unknown token is open", "GET", "/healthz", "Bearer nope", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(event))
			req.Header.Set("Content-Type", "application/json")
			tokens.Authorize(req, tc.who)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.status == 401 {
				require.Equal(t, "Bearer", rec.Header().Get("WWW-Authenticate"))
			}
			if tc.want != "" {
				var body struct{ Error string }
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
				require.Contains(t, body.Error, tc.want)
			}
		})
	}

	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	tokens.Authorize(req, "prometheus")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	metrics := rec.Body.String()
	for _, line := range []string{
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="202",http_route="/v1/events/{event}",token="shop"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="403",http_route="/v1/events/{event}",token="prometheus"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="401",http_route="/v1/events/{event}"} 3`,
	} {
		require.Contains(t, metrics, line)
	}
	require.Contains(t, logs.String(), `msg="http request" method=POST route=/v1/events/{event} path=/v1/events/transaction status=202`)
	require.Contains(t, logs.String(), "token=shop\n")
	for name, tok := range tokens.Tokens {
		require.NotContains(t, logs.String(), tok, "%s's token is logged", name)
		require.NotContains(t, metrics, tok, "%s's token is in the metrics", name)
	}
}

// TestNoTokens: without a tokens file every route is open, as before, and
// the request metrics carry no token label.
func TestNoTokens(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "ingest-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	srv := NewServer(reg, nil, Config{MaxBody: DefaultMaxBody, Kafka: kafkaConfig([]string{"127.0.0.1:1"})}, nil, WithTelemetry(tel), WithTokens(nil))
	h := srv.Handler()
	require.Equal(t, http.StatusNotFound, post(h, "nope", "application/json", "{}").Code)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="404",http_route="/v1/events/{event}"} 1`)
	require.NotContains(t, rec.Body.String(), `token=`)
}

// TestRateLimit: a token with rate= sends at most a second's worth ahead
// of its rate; beyond, its request gets 429 with Retry-After and nothing
// of it is published, while another token is not held back. No telemetry
// and no debug log: the limit does not depend on the observers.
func TestRateLimit(t *testing.T) {
	reg := testenv.Registry(t)
	cfg := kafkaConfig(testenv.Kafka(t))
	ensureTopics(t, cfg, reg)
	w := cfg.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	tokens := authtest.New(t, nil, []string{"partner:ingest:rate=10", "shop:ingest"})
	h := NewServer(reg, NewPublisher(cfg, w), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil, WithTokens(tokens.Guard)).Handler()
	send := func(who string, n int) *httptest.ResponseRecorder {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"txn_id":"r%d","user_id":"u_%d","amount":1.5,"ts":1717027202000}`+"\n", i, i)
		}
		req := httptest.NewRequest("POST", "/v1/events/transaction", strings.NewReader(b.String()))
		req.Header.Set("Content-Type", "application/x-ndjson")
		tokens.Authorize(req, who)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	published := func() int64 {
		var n int64
		for _, o := range endOffsets(t, cfg, cfg.Topic("transaction")) {
			n += o
		}
		return n
	}
	require.Equal(t, http.StatusAccepted, send("partner", 10).Code, "a second's worth")
	require.Equal(t, http.StatusAccepted, send("partner", 15).Code, "a second ahead at most: admitted, and now 2.5 s ahead")
	require.EqualValues(t, 25, published())
	rec := send("partner", 1)
	require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
	require.Equal(t, "2", rec.Header().Get("Retry-After"), "1.5 s over the second allowed, rounded up")
	require.JSONEq(t, `{"error":"token \"partner\" is over its rate of 10 events a second (rate= in the tokens file): nothing was published; retry in 2s"}`, rec.Body.String())
	require.EqualValues(t, 25, published(), "nothing of a refused request is published")
	require.Equal(t, http.StatusAccepted, send("shop", 100).Code, "a token without rate= is not held back")
}
