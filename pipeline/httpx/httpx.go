// Package httpx is the HTTP plumbing every freshet service shares: JSON
// answers and errors, health and readiness endpoints, panic recovery, and a
// server that runs until its context ends and then drains. Handlers stay
// free of it except for WriteJSON and Error.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unicode/utf8"
)

// WriteJSON writes v as a JSON answer with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error   string `json:"error"`
	Details any    `json:"details,omitempty"`
}

// Error writes {"error": msg} with the given status.
func Error(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, ErrorBody{Error: msg})
}

// Health adds GET /healthz (the process is alive) and GET /readyz (ready
// answers nil) to mux.
func Health(mux *http.ServeMux, ready func(context.Context) error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// Recover turns a handler panic into a 500 with a logged stack, so one bad
// request never takes the process down.
func Recover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				Error(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Serve runs an HTTP server on l until ctx ends, then stops accepting and
// waits up to grace for requests in flight. On a *Listener it takes that
// listener's settings: HTTPS only, HTTP/2 included, with its TLS config
// (WithTLS), and its Limits (WithLimits); otherwise DefaultLimits.
func Serve(ctx context.Context, l net.Listener, h http.Handler, grace time.Duration) error {
	srv, inner, tlsCfg := server(l, h)
	serve := func() error { return srv.Serve(inner) }
	if tlsCfg != nil {
		// ServeTLS, not a tls.Listener: the server then knows it speaks
		// TLS, and offers HTTP/2 by ALPN.
		serve = func() error { return srv.ServeTLS(inner, "", "") }
	}
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Listen opens a TCP listener on addr (":8080", "127.0.0.1:0").
func Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// Principal is who a request is authenticated as: the name of the token
// it presented, once the route's auth middleware admitted it (a 403 too:
// the token is known). The middleware that observe requests (the access
// log, the request metrics) attach one with WithPrincipal before the
// request is routed and read it after; the auth middleware fills it in.
type Principal struct {
	// Token is the token's name; empty when no token was accepted (no
	// tokens file, an open route, a 401). Never the token itself.
	Token string
	// Rate is the events a second the token may send to ingest; 0 for
	// no limit.
	Rate float64
}

type principalKey struct{}

// WithPrincipal returns ctx with an empty Principal to fill in, or ctx
// and its Principal when it has one already, so that the observers of
// one request share it.
func WithPrincipal(ctx context.Context) (context.Context, *Principal) {
	if p := PrincipalOf(ctx); p != nil {
		return ctx, p
	}
	p := &Principal{}
	return context.WithValue(ctx, principalKey{}, p), p
}

// PrincipalOf returns the Principal of ctx, or nil when no observer
// attached one.
func PrincipalOf(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// JSONRoutes serves mux, with JSON answers where mux itself would answer
// in plain text: 404 for a path no route has (naming at most 200
// characters of it, so a huge path is not echoed whole), and 405 with
// Allow for a method a route does not take (POST /healthz is a 405 on
// every service).
func JSONRoutes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// No route: mux's own handler knows whether it is a 404 or a 405
		// and which methods are allowed. Ask it, then answer in JSON.
		rec := &headerRecorder{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		path := Truncate(r.URL.Path, 200)
		if rec.status == http.StatusMethodNotAllowed {
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			Error(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, path, allow))
			return
		}
		Error(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, path))
	})
}

// headerRecorder keeps the status and headers a handler writes, and drops
// its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

// Truncate returns s cut to at most n bytes, on a character boundary,
// with "…" when cut: for echoing a client's text in an error.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
