// Package serve answers HTTP feature lookups from the online store: the
// freshet lookup API under /v1/features and a Feast-compatible
// /get-online-features. It reads entity state through store.Reader (one
// round trip per request and view) and computes values as of a time with
// aggregate.Layout, so it answers exactly what featurize wrote.
//
// The package owns the HTTP API and its JSON. It must not know Kafka; Redis
// is reached only through store.Reader.
package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/schemas"
)

// Config is serve's configuration.
type Config struct {
	// HTTPAddr is the listen address of the API, e.g. ":8080".
	HTTPAddr string
	// MaxEntities bounds the entities of one request; a request with more
	// is refused with 400.
	MaxEntities int
}

// Sentinel errors of Config.Validate.
var (
	ErrInvalidHTTPAddr = errors.New("invalid http-addr")
	ErrMaxEntities     = errors.New("max-entities must be positive")
)

// RegisterFlags binds the configuration to fs; the flag defaults are the
// configuration defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "listen address of the feature API")
	fs.IntVar(&c.MaxEntities, "max-entities", 10000, "most entities one lookup request may name")
}

// DefaultConfig is the configuration with every flag at its default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("serve", flag.ContinueOnError))
	return c
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("%w %q: %v", ErrInvalidHTTPAddr, c.HTTPAddr, err)
	}
	if c.MaxEntities <= 0 {
		return fmt.Errorf("%w, got %d", ErrMaxEntities, c.MaxEntities)
	}
	return nil
}

// Option changes how New builds a Server.
type Option func(*Server)

// WithClock makes the server read the current time, the default lookup
// time, from now instead of time.Now. Tests use it to pin "now".
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithTokens makes the API require bearer tokens from g (nil: none): the
// serve scope for every lookup (native, Arrow and Feast's), metrics for
// GET /metrics; /healthz, /readyz and Feast's /health stay open.
func WithTokens(g *auth.Guard) Option {
	return func(s *Server) { s.tokens = g }
}

// Server serves feature lookups. It is safe for concurrent use.
type Server struct {
	cfg     Config
	maxBody int64 // bytes of a request body
	st      store.Reader
	log     *slog.Logger
	now     func() time.Time
	tel     *telemetry.Providers
	tokens  *auth.Guard // nil: every route open
	views   map[string]*view
	reg     *schemas.Registry
	form    registry.Form // of reg, for GET /v1/views
	// viewNames lists the views, sorted, for the refusal of an unknown one.
	viewNames []string
	handler   http.Handler
}

// view is one feature view prepared for serving.
type view struct {
	name   string
	layout *aggregate.Layout
	// entity is the event field naming the view's entities.
	entity string
	// all is every feature index in declaration order.
	all []int
	// keys holds each feature's name as a JSON object key with its colon.
	keys [][]byte
	// sortedFeatures lists the feature names, sorted, for the refusal of
	// an unknown one.
	sortedFeatures []string
}

// New builds a server for every view of reg, reading state from st. A nil
// log discards.
func New(reg *schemas.Registry, st store.Reader, cfg Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("serve config: %w", err)
	}
	if reg == nil || st == nil {
		return nil, errors.New("serve: a registry and an online store are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, maxBody: maxBody, st: st, log: log, now: time.Now, views: make(map[string]*view, len(reg.Views)),
		reg: reg, form: registry.Of(reg)}
	for _, o := range opts {
		o(s)
	}
	for _, name := range reg.ViewNames() {
		v := reg.Views[name]
		l, err := aggregate.NewLayout(v)
		if err != nil {
			return nil, fmt.Errorf("serve view %s: %w", name, err)
		}
		pv := &view{name: name, layout: l, entity: v.Entity}
		for i, f := range v.Features {
			pv.all = append(pv.all, i)
			pv.keys = append(pv.keys, append(appendString(nil, f.Name), ':'))
			pv.sortedFeatures = append(pv.sortedFeatures, f.Name)
		}
		slices.Sort(pv.sortedFeatures)
		s.views[name] = pv
		s.viewNames = append(s.viewNames, name) // ViewNames is sorted
	}
	if s.tel != nil {
		s.st = observe(s.st, s.tel, reg.ViewNames())
	}
	s.handler = s.tel.Middleware(telemetry.AccessLog(log, httpx.Recover(log, s.routes())))
	return s, nil
}

// Handler is every route of the API, with panics turned into 500s, and
// the scope each needs WithTokens:
//
//	GET  /v1/features/{view}/{entity}[?at=T][&features=a,b]               serve
//	POST /v1/features/{view}       {"entities": [...], "features": [...], "at": T}   serve
//	POST /get-online-features      Feast's feature server request          serve
//	GET  /v1/views                 the views, features and definitions version   serve
//	GET  /health                   Feast's liveness check                  open
//	GET  /healthz, GET /readyz     liveness, and readiness (the store answers)   open
//	GET  /metrics                  the metrics, with telemetry             metrics
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves the API on l until ctx ends, then drains requests in flight
// for up to 10s.
func (s *Server) Run(ctx context.Context, l net.Listener) error {
	s.log.Info("serving feature lookups", "addr", l.Addr().String(), "views", len(s.views))
	if err := s.st.FollowGens(ctx); err != nil {
		// Not fatal: the store may come up later; until it is read, views
		// read the keys of their fingerprint as before generations.
		s.log.Warn("read the views' generations", "error", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.followGens(fctx) })
	defer wg.Wait()
	if err := httpx.Serve(ctx, l, s.handler, 10*time.Second); err != nil {
		return fmt.Errorf("serve http on %s: %w", l.Addr(), err)
	}
	return nil
}

// followGens keeps the store's reads on the generations featurize records
// (a view whose catch-up completes turns from PENDING to its values within
// a second), until ctx ends. An error is logged once until it clears.
func (s *Server) followGens(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.st.FollowGens(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.log.Warn("read the views' generations; retrying every second", "error", err)
		case err == nil && failing:
			s.log.Info("views' generations read again")
		}
		failing = err != nil
	}
}

func (s *Server) routes() http.Handler {
	need := s.tokens.Require
	lookup := need(auth.Serve)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/features/{view}/{entity}", lookup(http.HandlerFunc(s.getOne)))
	mux.Handle("POST /v1/features/{view}", lookup(http.HandlerFunc(s.getBatch)))
	mux.Handle("POST /get-online-features", lookup(http.HandlerFunc(s.feast)))
	mux.Handle("GET /v1/views", lookup(http.HandlerFunc(s.listViews)))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	httpx.Health(mux, s.st.Ping)
	s.tel.MountGuarded(mux, need(auth.Metrics))
	return httpx.JSONRoutes(mux)
}

// lookup returns the named view or a 404.
func (s *Server) lookup(name string) (*view, error) {
	if v := s.views[name]; v != nil {
		return v, nil
	}
	return nil, &apiError{http.StatusNotFound, unknownName(fmt.Sprintf("view %q", name), name, "views", s.viewNames)}
}

// read fetches the state of entities of v in one store call; an empty list
// costs no round trip.
func (s *Server) read(ctx context.Context, v *view, entities []string) ([]*aggregate.State, error) {
	if len(entities) == 0 {
		return nil, nil
	}
	states, err := s.st.Read(ctx, v.layout, entities)
	if err != nil {
		return nil, &storeError{err}
	}
	if len(states) != len(entities) {
		return nil, &storeError{fmt.Errorf("read %s: %d states for %d entities", v.name, len(states), len(entities))}
	}
	return states, nil
}

// apiError is a refusal with its HTTP status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// storeError is a failure of the online store: the request may succeed
// when retried.
type storeError struct{ err error }

func (e *storeError) Error() string { return "online store unavailable: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// fail answers err: its own status for an apiError, 503 with Retry-After
// for a store failure.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var se *storeError
	switch {
	case errors.As(err, &ae):
		httpx.Error(w, ae.status, ae.msg)
	case errors.As(err, &se):
		if r.Context().Err() == nil {
			s.log.WarnContext(r.Context(), "online store read failed", "path", r.URL.Path, "err", se.err)
		} // else the client went away: nothing is wrong with the store
		w.Header().Set("Retry-After", "1")
		httpx.Error(w, http.StatusServiceUnavailable, se.Error())
	default:
		s.log.ErrorContext(r.Context(), "lookup failed", "path", r.URL.Path, "err", err)
		httpx.Error(w, http.StatusInternalServerError, "internal error")
	}
}
