package serve

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// WithTelemetry instruments the server with p: the HTTP middleware (a
// server span and http_server_request_duration_seconds by route pattern),
// GET /metrics, and an observing decorator around the store (below). The
// store's Redis spans are children of the request's when its client has
// p's hooks.
func WithTelemetry(p *telemetry.Providers) Option {
	return func(s *Server) { s.tel = p }
}

// observedStore is the store.Reader decorator that measures lookups; the
// handlers never see it. Per store read (one per request and view):
//
//	freshet_serve_lookups_total{view,status}               entities looked up: PRESENT or NOT_FOUND
//	freshet_serve_request_entities{view}                   entities per request and view
//	freshet_serve_store_read_duration_seconds{view,outcome} the Redis round trip: ok or error
type observedStore struct {
	store.Reader
	lookups  metric.Int64Counter
	entities metric.Int64Histogram
	latency  metric.Float64Histogram
	views    map[string]*viewOpts
}

// viewOpts are a view's attribute options, made once.
type viewOpts struct {
	view, ok, failed, present, notFound metric.MeasurementOption
}

var _ store.Reader = (*observedStore)(nil)

func observe(st store.Reader, p *telemetry.Providers, views []string) *observedStore {
	m := p.Meter("github.com/freshet-ml/freshet/pipeline/serve")
	o := &observedStore{Reader: st, views: map[string]*viewOpts{}}
	o.lookups = telemetry.Instrument(m.Int64Counter("freshet.serve.lookups", metric.WithUnit("{entity}"),
		metric.WithDescription("Entities looked up, by view and status: PRESENT (the entity has state) or NOT_FOUND.")))
	o.entities = telemetry.Instrument(m.Int64Histogram("freshet.serve.request.entities", metric.WithUnit("{entity}"),
		metric.WithDescription("Entities per request and view (one store read)."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)))
	o.latency = telemetry.Instrument(m.Float64Histogram("freshet.serve.store.read.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of one store read: the Redis round trip of a request and view, decoding included."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)))
	for _, v := range views {
		o.views[v] = newViewOpts(v)
	}
	return o
}

func newViewOpts(view string) *viewOpts {
	v := attribute.String("view", view)
	set := func(kv attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(v, kv))
	}
	return &viewOpts{
		view:     metric.WithAttributeSet(attribute.NewSet(v)),
		ok:       set(attribute.String("outcome", "ok")),
		failed:   set(attribute.String("outcome", "error")),
		present:  set(attribute.String("status", "PRESENT")),
		notFound: set(attribute.String("status", "NOT_FOUND")),
	}
}

// Read implements store.Reader, measuring the read.
func (o *observedStore) Read(ctx context.Context, l *aggregate.Layout, entities []string) ([]*aggregate.State, error) {
	start := time.Now()
	states, err := o.Reader.Read(ctx, l, entities)
	took := time.Since(start).Seconds()
	vo := o.views[l.View.Name]
	if vo == nil { // not a view of the registry: never from the handlers
		vo = newViewOpts(l.View.Name)
	}
	if err != nil {
		o.latency.Record(ctx, took, vo.failed)
		return states, err
	}
	o.latency.Record(ctx, took, vo.ok)
	o.entities.Record(ctx, int64(len(entities)), vo.view)
	present := 0
	for _, st := range states {
		if found(st) {
			present++
		}
	}
	if present > 0 {
		o.lookups.Add(ctx, int64(present), vo.present)
	}
	if n := len(states) - present; n > 0 {
		o.lookups.Add(ctx, int64(n), vo.notFound)
	}
	return states, nil
}
