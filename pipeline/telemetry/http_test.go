package telemetry_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestTokenLabelAndAccessLog: the name an auth middleware records on the
// request's Principal labels the request metrics (no label without one)
// and is in the debug access log, with the route; both see the route when
// stacked as the services stack them.
func TestTokenLabelAndAccessLog(t *testing.T) {
	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "http-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		if name := r.Header.Get("X-Test-Name"); name != "" { // what an auth middleware does
			httpx.PrincipalOf(r.Context()).Token = name
		}
		w.WriteHeader(http.StatusTeapot)
	})
	tel.Mount(mux)
	for _, h := range []http.Handler{
		tel.Middleware(telemetry.AccessLog(log, mux)),
		telemetry.AccessLog(log, mux), // without telemetry
	} {
		for _, name := range []string{"grafana", ""} {
			r := httptest.NewRequest(http.MethodGet, "/v1/things/42", nil)
			r.Header.Set("X-Test-Name", name)
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, rec.Body.String(), `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="418",http_route="/v1/things/{id}",token="grafana"} 1`)
	require.Contains(t, rec.Body.String(), `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="418",http_route="/v1/things/{id}"} 1`)
	require.Equal(t, 4, strings.Count(logs.String(), `msg="http request" method=GET route=/v1/things/{id} path=/v1/things/42 status=418`), logs.String())
	require.Equal(t, 2, strings.Count(logs.String(), "token=grafana\n"), logs.String())
	require.Equal(t, 2, strings.Count(logs.String(), "token=\"\"\n"), logs.String())

	// Above debug, the access log is not there at all.
	info := slog.New(slog.NewTextHandler(&logs, nil))
	require.Equal(t, http.Handler(mux), telemetry.AccessLog(info, mux))
}

// TestRefusalsAreCounted: a request refused for load before any handler
// (httpx.OnRefused) and a refused /metrics scrape are in the request
// metrics; an accepted scrape is not.
func TestRefusalsAreCounted(t *testing.T) {
	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "refusal-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	mux := http.NewServeMux()
	tel.MountGuarded(mux, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer good" {
				httpx.Error(w, http.StatusUnauthorized, "no")
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	h := tel.Middleware(mux)
	for range 2 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
	}
	tel.Refused(httptest.NewRequest(http.MethodPost, "/v1/events/x", nil))
	var nilTel *telemetry.Providers
	nilTel.Refused(httptest.NewRequest(http.MethodPost, "/v1/events/x", nil)) // without telemetry: nothing

	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Header.Set("Authorization", "Bearer good")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	require.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="401",http_route="/metrics"} 2`)
	require.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="503"} 1`)
	require.NotContains(t, body, `http_response_status_code="200",http_route="/metrics"`, "accepted scrapes are not timed")
}
