package featurize

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/auth/authtest"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestTokens: with a tokens file, GET /v1/stats and GET /metrics need the
// metrics scope; /healthz and /readyz stay open. Refusals are JSON: 401
// with WWW-Authenticate, 403 naming the scope. No token reaches the log.
func TestTokens(t *testing.T) {
	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "featurize-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := authtest.New(t, log, []string{"prometheus:metrics", "model:serve", "ops:admin"})
	_, rc := testenv.Redis(t)
	cfg := defaultConfig(t)
	cfg.Kafka.Brokers = testenv.Kafka(t)
	cfg.Kafka.TopicPrefix = testenv.Unique("featurize-tokens.")
	svc, err := NewService(cfg, testenv.Registry(t), store.NewRedis(rc, testenv.Unique("featurize-tokens:")), log,
		WithTelemetry(tel), WithTokens(f.Guard))
	require.NoError(t, err)
	h := svc.handler(svc.Proc.Topics())

	for _, tc := range []struct {
		name, path, who string
		status          int
		want            string
	}{
		{"stats without token", "/v1/stats", "", 401, "missing token"},
		{"stats with malformed header", "/v1/stats", "Basic b3BzOnB3", 401, "malformed Authorization header"},
		{"stats with unknown token", "/v1/stats", "Bearer " + strings.Repeat("z", 43), 401, "unknown token"},
		{"stats with serve token", "/v1/stats", "model", 403, `lacks the "metrics" scope`},
		{"stats with admin token", "/v1/stats", "ops", 403, `lacks the "metrics" scope`},
		{"stats with metrics token", "/v1/stats", "prometheus", 200, ""},
		{"metrics without token", "/metrics", "", 401, "missing token"},
		{"metrics with serve token", "/metrics", "model", 403, `lacks the "metrics" scope`},
		{"metrics with metrics token", "/metrics", "prometheus", 200, ""},
		{"healthz is open", "/healthz", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			f.Authorize(req, tc.who)
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
	// Ready or not (the topics may not exist), readiness needs no token.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Contains(t, []int{200, 503}, rec.Code, rec.Body.String())

	require.Contains(t, logs.String(), `route=/v1/stats path=/v1/stats status=200`)
	require.Contains(t, logs.String(), "token=prometheus\n")
	for name, tok := range f.Tokens {
		require.NotContains(t, logs.String(), tok, "%s's token is logged", name)
	}
}
