package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecoverAnswersJSON500(t *testing.T) {
	h := Recover(slog.New(slog.NewTextHandler(io.Discard, nil)), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	var body ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "internal error", body.Error)
}

func TestHealth(t *testing.T) {
	mux := http.NewServeMux()
	var ready error
	Health(mux, func(context.Context) error { return ready })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(path string) int {
		res, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, 200, get("/healthz"))
	require.Equal(t, 200, get("/readyz"))
	ready = errors.New("kafka down")
	require.Equal(t, 200, get("/healthz"), "alive even when not ready")
	require.Equal(t, 503, get("/readyz"))
}

// TestServeDrainsInFlight stops the server while a request runs: the
// request completes and Serve returns without error.
func TestServeDrainsInFlight(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		WriteJSON(w, 200, map[string]string{"ok": "yes"})
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h, 5*time.Second) }()
	resc := make(chan int, 1)
	go func() {
		res, err := http.Get("http://" + l.Addr().String())
		if err != nil {
			resc <- 0
			return
		}
		res.Body.Close()
		resc <- res.StatusCode
	}()
	<-started
	cancel()
	close(release)
	require.Equal(t, 200, <-resc)
	require.NoError(t, <-done)
}

// TestPrincipal: the observers of one request share its Principal.
func TestPrincipal(t *testing.T) {
	require.Nil(t, PrincipalOf(context.Background()))
	ctx, p := WithPrincipal(context.Background())
	require.Same(t, p, PrincipalOf(ctx))
	ctx2, p2 := WithPrincipal(ctx)
	require.Same(t, p, p2, "a second observer reuses the first one's")
	require.Equal(t, ctx, ctx2)
	p.Token = "grafana"
	require.Equal(t, "grafana", PrincipalOf(ctx2).Token)
}
