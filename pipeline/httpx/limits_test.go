package httpx_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// limitedServer serves h within lim until the test ends; it returns the
// server's address.
func limitedServer(t *testing.T, lim httpx.Limits, log *slog.Logger, h http.Handler) string {
	t.Helper()
	return refusingServer(t, lim, log, nil, h)
}

// refusingServer is limitedServer telling refused of every request refused
// for load.
func refusingServer(t *testing.T, lim httpx.Limits, log *slog.Logger, refused func(*http.Request), h http.Handler) string {
	t.Helper()
	require.NoError(t, lim.Validate())
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpx.Serve(ctx, httpx.OnRefused(httpx.WithLimits(l, lim, log), refused), h, time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return l.Addr().String()
}

// TestMaxInFlight: beyond the limit a request is answered 503 with
// Retry-After and a JSON error at once, the health endpoints still answer,
// the refusals are logged, and a place freed is taken again.
func TestMaxInFlight(t *testing.T) {
	lim := httpx.DefaultLimits
	lim.MaxInFlight = 2
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	httpx.Health(mux, func(context.Context) error { return nil })
	logs := &testenv.Buffer{}
	refusedPaths := make(chan string, 10)
	addr := refusingServer(t, lim, slog.New(slog.NewTextHandler(logs, nil)), func(r *http.Request) { refusedPaths <- r.URL.Path }, mux)
	base := "http://" + addr

	results := make(chan int, 2)
	for range 2 {
		go func() {
			res, err := http.Get(base + "/slow")
			if err != nil {
				results <- 0
				return
			}
			res.Body.Close()
			results <- res.StatusCode
		}()
	}
	<-entered
	<-entered
	res, err := http.Get(base + "/slow")
	require.NoError(t, err)
	var body httpx.ErrorBody
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	res.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Equal(t, "1", res.Header.Get("Retry-After"))
	require.Equal(t, "too many requests in flight (http-max-in-flight 2): retry", body.Error)
	for _, p := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(base + p)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, "%s is never refused for load", p)
	}
	require.Contains(t, logs.String(), `msg="requests refused: too many in flight" refused=1 http_max_in_flight=2`)
	require.Equal(t, "/slow", <-refusedPaths, "the metrics hook is told of the refusal")
	require.Empty(t, refusedPaths, "and of nothing else")

	close(release)
	require.Equal(t, http.StatusOK, <-results)
	require.Equal(t, http.StatusOK, <-results)
	res, err = http.Get(base + "/slow")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "the places are free again")
}

// TestSlowAndIdleClientsAreCut: a body trickled slower than the read
// timeout and a keep-alive connection idle past the idle timeout are
// closed by the server, and headers over the limit get 431.
func TestSlowAndIdleClientsAreCut(t *testing.T) {
	lim := httpx.DefaultLimits
	lim.ReadTimeout, lim.IdleTimeout, lim.MaxHeaderBytes = 300*time.Millisecond, 300*time.Millisecond, 8<<10
	read := make(chan error, 1)
	addr := limitedServer(t, lim, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
		io.WriteString(w, "ok")
	}))
	// closed waits (10 s at most, far above the limits) for the server to
	// close conn, reading whatever it answers until then.
	closed := func(conn net.Conn) bool {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}

	t.Run("trickled body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
		require.NoError(t, err)
		require.True(t, closed(conn), "the server closes a connection whose body does not arrive in time")
		require.Error(t, <-read, "the handler sees the body cut off")
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.NoError(t, <-read)
		require.True(t, closed(conn), "the server closes a keep-alive connection left idle")
	})
	t.Run("huge headers", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		require.NoError(t, err)
		req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)
	})
}

func TestLimitsValidate(t *testing.T) {
	ok := httpx.DefaultLimits
	require.NoError(t, ok.Validate())
	for _, tc := range []struct {
		change func(*httpx.Limits)
		want   string
	}{
		{func(l *httpx.Limits) { l.ReadTimeout = 0 }, "http-read-timeout: 0s, must be positive"},
		{func(l *httpx.Limits) { l.IdleTimeout = -time.Second }, "http-idle-timeout: -1s, must be positive"},
		{func(l *httpx.Limits) { l.ReadHeaderTimeout = 0 }, "http-read-header-timeout: 0s, must be positive"},
		{func(l *httpx.Limits) { l.WriteTimeout = 0 }, "http-write-timeout: 0s, must be positive"},
		{func(l *httpx.Limits) { l.MaxHeaderBytes = 100 }, "http-max-header-bytes: 100, must be at least 4096"},
		{func(l *httpx.Limits) { l.MaxInFlight = 0 }, "http-max-in-flight: 0, must be at least 1"},
	} {
		l := httpx.DefaultLimits
		tc.change(&l)
		require.EqualError(t, l.Validate(), tc.want)
	}
}

// TestWithTLSKeepsLimits: the listener's settings compose in either order.
func TestWithTLSKeepsLimits(t *testing.T) {
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	lim := httpx.DefaultLimits
	lim.MaxInFlight = 7
	hl := httpx.WithLimits(l, lim, nil).(*httpx.Listener)
	require.Nil(t, hl.TLS)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	both := httpx.WithTLS(hl, cfg).(*httpx.Listener)
	require.Same(t, cfg, both.TLS)
	require.Equal(t, 7, both.Limits.MaxInFlight)
	require.Nil(t, hl.TLS, "WithTLS does not change the listener it was given")
	again := httpx.WithLimits(both, httpx.DefaultLimits, nil).(*httpx.Listener)
	require.Same(t, cfg, again.TLS)
	require.Equal(t, httpx.DefaultLimits.MaxInFlight, again.Limits.MaxInFlight)
}

// TestJSONRoutes: a path no route has is a JSON 404 naming at most 200
// characters of it; a method a route does not take is a JSON 405 with
// Allow; routed requests keep their path values.
func TestJSONRoutes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events/{event}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.PathValue("event")) })
	httpx.Health(mux, func(context.Context) error { return nil })
	h := httpx.JSONRoutes(mux)
	do := func(method, path string) (*http.Response, httpx.ErrorBody) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("{}")))
		var body httpx.ErrorBody
		if rec.Code >= 400 {
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		}
		return rec.Result(), body
	}
	res, _ := do("POST", "/v1/events/transaction")
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, "transaction", string(b))

	res, body := do("POST", "/healthz")
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	require.Equal(t, "GET, HEAD", res.Header.Get("Allow"))
	require.Equal(t, "method POST not allowed on /healthz; use GET, HEAD", body.Error)

	res, body = do("GET", "/v1/events/x")
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	require.Equal(t, "POST", res.Header.Get("Allow"))

	long := "/" + strings.Repeat("é", 5000)
	res, body = do("GET", long)
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	require.Equal(t, "no route GET "+httpx.Truncate(long, 200), body.Error)
	require.Less(t, len(body.Error), 250)
	require.True(t, strings.HasSuffix(body.Error, "…"))
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"ééé", 3, "é…"}, // 2 bytes each: never cut inside a character
		{"", 0, ""},
	} {
		require.Equal(t, tc.want, httpx.Truncate(tc.in, tc.n), "%q", tc.in)
	}
}
