package featurize

// service.go owns featurize as a process: building the processor and its
// observer, the HTTP endpoints (health, GET /v1/stats, GET /metrics), and
// waiting for the topics before the consumer starts.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/retry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/schemas"
)

// Service is featurize as a process: the consumer and its health endpoints.
type Service struct {
	cfg Config
	reg *schemas.Registry
	st  store.Online
	log *slog.Logger
	tel *telemetry.Providers
	// tokens guards the endpoints; nil: they are open.
	tokens *auth.Guard
	obs    Observer // the consumer's
	// Proc is the processor the consumer feeds; its Stats are GET
	// /v1/stats.
	Proc *Processor

	catchUps []*catchUp // the views being recomputed; set once by Run
	cuMu     sync.Mutex
}

// Option changes how NewService builds featurize.
type Option func(*Service)

// WithTelemetry instruments featurize with p: a consumer span per
// micro-batch continuing the producers' traces (the store's Redis commands
// are its children when the store's client has p's hooks), the metrics of
// NewObserver, and the HTTP middleware and GET /metrics on the health
// endpoints' listener.
func WithTelemetry(p *telemetry.Providers) Option {
	return func(s *Service) { s.tel = p }
}

// WithTokens makes the endpoints require bearer tokens from g (nil: none):
// the metrics scope for GET /v1/stats and GET /metrics; /healthz and
// /readyz stay open.
func WithTokens(g *auth.Guard) Option {
	return func(s *Service) { s.tokens = g }
}

// NewService builds featurize over the definitions and the store: a
// processor that judges event times with cfg.Times and keeps its
// watermarks in st under cfg.GroupID.
func NewService(cfg Config, reg *schemas.Registry, st store.Online, log *slog.Logger, opts ...Option) (*Service, error) {
	proc, err := NewProcessor(reg, st, cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	proc.JudgeTimes(cfg.Times, nil)
	proc.KeepMarks(cfg.GroupID)
	s := &Service{cfg: cfg, reg: reg, st: st, log: log, Proc: proc}
	for _, o := range opts {
		o(s)
	}
	s.obs = NewObserver(s.tel, cfg.GroupID, proc)
	return s, nil
}

// Consumer returns the consumer the service runs on src: feeding Proc,
// observed as WithTelemetry says.
func (s *Service) Consumer(src Source) *Consumer {
	return NewConsumer(s.cfg, src, s.Proc, s.log, WithObserver(s.obs))
}

// Run serves the health endpoints (and, with telemetry, GET /metrics) on l,
// makes sure the topics exist, and consumes until ctx ends; then it stops
// fetching, flushes, commits and closes the reader.
func (s *Service) Run(ctx context.Context, l net.Listener) error {
	topics := s.Proc.Topics()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpx.Serve(gctx, l, s.handler(topics), 5*time.Second) })
	g.Go(func() error { return s.watchGens(gctx) })
	g.Go(func() error {
		if err := waitForTopics(gctx, s.cfg.Kafka, topics, s.log); err != nil {
			if errors.Is(err, broker.ErrSecurity) {
				return fmt.Errorf("kafka: %w", err) // wrong credentials or certificates: no retry fixes them
			}
			return nil // shutting down before Kafka was ever reachable
		}
		s.startCatchUps(g, gctx)
		reader := NewGroupReader(s.cfg, topics)
		err := s.Consumer(reader).Run(gctx)
		if cerr := reader.Close(); cerr != nil && err == nil {
			s.log.Warn("close consumer", "error", cerr)
		}
		st := &s.Proc.Stats
		s.log.Info("featurize stopped", "messages", st.Messages.Load(), "applied", st.Applied.Load(),
			"duplicates", st.Duplicates.Load(), "late", st.Late.Load(), "undecodable", st.Undecodable.Load(),
			"rejected_time", st.RejectedTime.Load())
		return err
	})
	return g.Wait()
}

// handler serves the health endpoints (ready once the store answers and
// the topics exist), GET /v1/stats (Stats.Snapshot) and, with telemetry,
// GET /metrics; the last two need the metrics scope WithTokens.
func (s *Service) handler(topics []string) http.Handler {
	need := s.tokens.Require
	mux := http.NewServeMux()
	s.tel.MountGuarded(mux, need(auth.Metrics))
	httpx.Health(mux, func(ctx context.Context) error {
		if err := s.st.Ping(ctx); err != nil {
			return fmt.Errorf("online store: %w", err)
		}
		return s.cfg.Kafka.CheckTopics(ctx, topics)
	})
	mux.Handle("GET /v1/stats", need(auth.Metrics)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, s.Proc.Stats.Snapshot())
	})))
	return s.tel.Middleware(telemetry.AccessLog(s.log, httpx.Recover(s.log, httpx.JSONRoutes(mux))))
}

// waitForTopics creates missing topics, retrying until Kafka answers or ctx
// ends (its error); a refused TLS handshake or SASL exchange is returned at
// once (broker.ErrSecurity).
func waitForTopics(ctx context.Context, kc broker.Config, topics []string, log *slog.Logger) error {
	return kc.AwaitTopics(ctx, topics, 10*time.Second, &retry.Backoff{First: 200 * time.Millisecond}, func(err error, d time.Duration) {
		log.Warn("kafka not ready; retrying", "error", err, "backoff", d)
	})
}
