package httpx

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limits bound what clients can hold of a service's HTTP server, so that
// slow, idle or too many clients cost a bounded amount of memory and
// goroutines: a body trickled a byte at a time, a keep-alive connection
// left open, huge headers, or more requests at once than the service can
// answer. Request bodies are bounded by each service (its max-body).
type Limits struct {
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long it may take to send a whole request, body
	// included.
	ReadTimeout time.Duration
	// WriteTimeout is how long a request may take from the end of its
	// headers to the end of its answer: a client that never reads its
	// answer frees its request's place after it.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection stays open between
	// requests.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 beyond).
	MaxHeaderBytes int
	// MaxInFlight is how many requests the service handles at once; more
	// are answered 503 with Retry-After at once, rather than queued
	// without bound. The health endpoints are never refused.
	MaxInFlight int
}

// DefaultLimits are the limits of a server whose listener has none. Each
// service registers its own in-flight default (RegisterFlags).
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       time.Minute,
	WriteTimeout:      2 * time.Minute,
	// Above the 60 s idle timeout of common load balancers (AWS ALB,
	// nginx's 75 s is close): a backend that closes first makes the
	// balancer answer 502 now and then.
	IdleTimeout:    90 * time.Second,
	MaxHeaderBytes: 64 << 10,
	MaxInFlight:    256,
}

// RegisterFlags registers the limits, with inFlight the service's default
// of --http-max-in-flight: --http-read-header-timeout,
// --http-read-timeout, --http-write-timeout, --http-idle-timeout,
// --http-max-header-bytes and --http-max-in-flight (FRESHET_HTTP_READ_TIMEOUT and so on).
func (c *Limits) RegisterFlags(fs *flag.FlagSet, inFlight int) {
	d := DefaultLimits
	fs.DurationVar(&c.ReadHeaderTimeout, "http-read-header-timeout", d.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	fs.DurationVar(&c.ReadTimeout, "http-read-timeout", d.ReadTimeout, "how long a client may take to send a whole request, body included")
	fs.DurationVar(&c.WriteTimeout, "http-write-timeout", d.WriteTimeout, "how long a request may take from the end of its headers to the end of its answer")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", d.IdleTimeout, "how long a keep-alive connection stays open between requests "+
		"(keep it above a load balancer's idle timeout)")
	fs.IntVar(&c.MaxHeaderBytes, "http-max-header-bytes", d.MaxHeaderBytes, "largest request headers, in bytes (431 beyond)")
	fs.IntVar(&c.MaxInFlight, "http-max-in-flight", inFlight, "requests handled at once; more are answered 503 with Retry-After "+
		"(health endpoints excepted)")
}

// Validate refuses a limit that is not positive: zero would mean none.
func (c *Limits) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"http-read-header-timeout", c.ReadHeaderTimeout},
		{"http-read-timeout", c.ReadTimeout},
		{"http-write-timeout", c.WriteTimeout},
		{"http-idle-timeout", c.IdleTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %s, must be positive", d.name, d.v))
		}
	}
	if c.MaxHeaderBytes < 4<<10 {
		errs = append(errs, fmt.Errorf("http-max-header-bytes: %d, must be at least 4096", c.MaxHeaderBytes))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("http-max-in-flight: %d, must be at least 1", c.MaxInFlight))
	}
	return errors.Join(errs...)
}

// Listener is a listener with the settings of the server that serves it,
// which Serve reads: how every service's server gets them the same way.
type Listener struct {
	net.Listener
	// TLS, when set, has Serve speak HTTPS only, HTTP/2 included; the
	// listener itself accepts plain TCP, so that the server knows it
	// speaks TLS and negotiates HTTP/2.
	TLS *tls.Config
	// Limits, when set, replace DefaultLimits.
	Limits *Limits
	// Log, when set, receives the server's own errors (failed TLS
	// handshakes) and the summary of refused requests, instead of the
	// standard library's log on stderr.
	Log *slog.Logger
	// Refused, when set, is told of every request refused for load (503
	// from MaxInFlight), which never reaches the handler and its metrics.
	Refused func(*http.Request)
}

// WithTLS returns l to be served over TLS with cfg; l itself when cfg is
// nil.
func WithTLS(l net.Listener, cfg *tls.Config) net.Listener {
	if cfg == nil {
		return l
	}
	hl := settings(l)
	hl.TLS = cfg
	return hl
}

// WithLimits returns l to be served within lim, its server's errors and
// refusals logged to log.
func WithLimits(l net.Listener, lim Limits, log *slog.Logger) net.Listener {
	hl := settings(l)
	hl.Limits, hl.Log = &lim, log
	return hl
}

// OnRefused returns l with refused told of every request its server
// refuses for load, as a metrics hook.
func OnRefused(l net.Listener, refused func(*http.Request)) net.Listener {
	hl := settings(l)
	hl.Refused = refused
	return hl
}

// settings returns a copy of l's settings, or new ones around l.
func settings(l net.Listener) *Listener {
	if hl, ok := l.(*Listener); ok {
		c := *hl
		return &c
	}
	return &Listener{Listener: l}
}

// server returns the server for l's settings, serving h.
func server(l net.Listener, h http.Handler) (srv *http.Server, inner net.Listener, tlsCfg *tls.Config) {
	lim, log, inner := DefaultLimits, (*slog.Logger)(nil), l
	var refused func(*http.Request)
	if hl, ok := l.(*Listener); ok {
		inner, tlsCfg, log, refused = hl.Listener, hl.TLS, hl.Log, hl.Refused
		if hl.Limits != nil {
			lim = *hl.Limits
		}
	}
	srv = &http.Server{
		Handler:           limitInFlight(h, lim.MaxInFlight, log, refused),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		TLSConfig:         tlsCfg,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return srv, inner, tlsCfg
}

// exempt are the paths never refused for load: an orchestrator that sees
// a busy service's health check fail would restart it, and make things
// worse.
var exempt = map[string]bool{"/healthz": true, "/readyz": true, "/health": true}

// limitInFlight answers 503 with Retry-After to a request beyond max
// handled at once. Refusals are summed and logged at most every 10 s,
// where the operator looks (the client has its 503), and each is told to
// onRefused, when set.
func limitInFlight(next http.Handler, limit int, log *slog.Logger, onRefused func(*http.Request)) http.Handler {
	sem := make(chan struct{}, limit)
	var mu sync.Mutex
	var refused int
	var since time.Time
	report := func() {
		mu.Lock()
		defer mu.Unlock()
		refused++
		if now := time.Now(); now.Sub(since) >= 10*time.Second {
			if log != nil {
				log.Warn("requests refused: too many in flight", "refused", refused, "http_max_in_flight", limit)
			}
			refused, since = 0, now
		}
	}
	msg := "too many requests in flight (http-max-in-flight " + strconv.Itoa(limit) + "): retry"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exempt[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			next.ServeHTTP(w, r)
		default:
			report()
			if onRefused != nil {
				onRefused(r)
			}
			w.Header().Set("Retry-After", "1")
			Error(w, http.StatusServiceUnavailable, msg)
		}
	})
}
