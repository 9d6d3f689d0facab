// Package telemetry is freshet's OpenTelemetry plumbing: the tracer and
// meter providers of a process, the Prometheus /metrics handler, the HTTP
// middleware, the Redis client hooks and the spans of Kafka writes and
// micro-batches with the W3C trace context carried in message headers.
//
// Components never build providers: they take a *Providers (nil means no
// telemetry, at no cost) and instrument themselves through its wrappers and
// hooks, so business code stays free of it. Each process makes its own
// Prometheus registry, so tests in one binary never see each other's
// metrics. The package must not know schemas, views or the store's layout.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// scope is the instrumentation scope of the spans this package starts.
const scope = "github.com/freshet-ml/freshet/pipeline/telemetry"

// Providers is one process's telemetry: where its spans and metrics go. A
// nil *Providers is valid and means none: every method then returns no-op
// providers or leaves what it is given unchanged.
type Providers struct {
	service string
	tp      trace.TracerProvider
	mp      metric.MeterProvider
	reg     *prometheus.Registry
	tracer  trace.Tracer
	// httpDuration is http.server.request.duration, by method, route and
	// status only; httpAttrs caches its attribute options by those.
	httpDuration metric.Float64Histogram
	httpAttrs    sync.Map // httpKey → metric.MeasurementOption
	// traces says where spans go, for the start-up line; exporting is
	// whether they go anywhere.
	traces    string
	exporting bool
}

// Option changes what Setup builds.
type Option func(*options)

type options struct {
	exporter sdktrace.SpanExporter
	sampler  sdktrace.Sampler
	log      *slog.Logger
}

// WithSpanExporter exports every span synchronously to e as it ends,
// instead of what the environment asks: for tests (an in-memory exporter)
// and debugging, not for production.
func WithSpanExporter(e sdktrace.SpanExporter) Option {
	return func(o *options) { o.exporter = e }
}

// WithSampler samples spans with s instead of what OTEL_TRACES_SAMPLER
// asks.
func WithSampler(s sdktrace.Sampler) Option {
	return func(o *options) { o.sampler = s }
}

// WithLogger makes OpenTelemetry report its own errors (an unreachable
// collector, say) to log. It sets the process-wide error handler: for the
// commands, not for tests.
func WithLogger(log *slog.Logger) Option {
	return func(o *options) { o.log = log }
}

// Setup builds the telemetry of a process named service:
//
//   - traces: an SDK tracer provider. Spans are exported with OTLP over
//     HTTP (protobuf) only when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_SDK_DISABLED is
//     not true); the exporter reads the other standard OTEL_EXPORTER_OTLP_*
//     variables itself. The sampler is the SDK's, from OTEL_TRACES_SAMPLER
//     and OTEL_TRACES_SAMPLER_ARG (default: parentbased_always_on). With no
//     exporter, spans still carry trace ids (into logs and Kafka headers)
//     but are recorded only where an incoming trace context asks for it
//     (parentbased_always_off), so they cost next to nothing.
//   - metrics: an SDK meter provider read by a Prometheus exporter on a
//     registry of its own, served by Handler, with the Go runtime metrics
//     and the process collector (CPU, memory, file descriptors).
//   - the resource: service.name is service unless OTEL_SERVICE_NAME says
//     otherwise, plus OTEL_RESOURCE_ATTRIBUTES, the host and the SDK.
//   - the global propagator: W3C trace context and baggage.
//
// The returned function flushes and stops both providers, within 3 seconds
// whatever its context (a shutdown's is usually cancelled already).
func Setup(ctx context.Context, service string, opts ...Option) (*Providers, func(context.Context) error, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			o.log.Warn("opentelemetry", "error", err)
		}))
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithHost(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && res == nil { // a partial resource: the SDK has logged why
		return nil, nil, fmt.Errorf("telemetry resource: %w", err)
	}

	tp, traces, err := tracerProvider(ctx, res, &o)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok { // stop the OTLP batcher of a setup that failed after it
			_ = tp.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exp))
	if err := runtime.Start(runtime.WithMeterProvider(mp)); err != nil {
		return nil, nil, fmt.Errorf("telemetry runtime metrics: %w", err)
	}
	p := &Providers{service: service, tp: tp, mp: mp, reg: reg, tracer: tp.Tracer(scope), traces: traces, exporting: traces != "off"}
	p.httpDuration, err = mp.Meter(scope).Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests, by method, route pattern and status code."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry http metrics: %w", err)
	}
	ok = true
	shutdown := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx))
	}
	return p, shutdown, nil
}

// tracerProvider builds the SDK tracer provider and says where its spans go.
func tracerProvider(ctx context.Context, res *resource.Resource, o *options) (*sdktrace.TracerProvider, string, error) {
	tpo := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	traces := "off"
	switch {
	case o.exporter != nil:
		tpo = append(tpo, sdktrace.WithSyncer(o.exporter))
		traces = fmt.Sprintf("%T", o.exporter)
	case otlpRequested():
		if p := protocol(); p != "" && p != "http/protobuf" {
			return nil, "", fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: freshet exports OTLP over http/protobuf (a collector's port 4318)", p)
		}
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("telemetry OTLP trace exporter: %w", err)
		}
		tpo = append(tpo, sdktrace.WithBatcher(exp))
		traces = "otlp " + config.Mask(otlpEndpoint())
	default:
		// Nothing exported: record no span of our own whatever
		// OTEL_TRACES_SAMPLER says, but keep a sampled caller's decision
		// for the services downstream (the Kafka headers carry it).
		tpo = append(tpo, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	if o.sampler != nil {
		tpo = append(tpo, sdktrace.WithSampler(o.sampler))
	}
	return sdktrace.NewTracerProvider(tpo...), traces, nil
}

// otlpRequested reports whether the environment asks for OTLP traces.
func otlpRequested() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if v := os.Getenv("OTEL_TRACES_EXPORTER"); v != "" && !strings.Contains(v, "otlp") {
		return false // "none", or an exporter freshet does not have
	}
	return otlpEndpoint() != ""
}

func otlpEndpoint() string {
	if e := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); e != "" {
		return e
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}

func protocol() string {
	if p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); p != "" {
		return p
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
}

// LogAttrs are the effective telemetry settings as key/value pairs for the
// start-up line: where traces go (the endpoint's password masked; headers
// are never shown) and the service name spans and metrics carry.
func (p *Providers) LogAttrs() []any {
	if p == nil {
		return []any{"traces", "off", "metrics", "off"}
	}
	name := p.service
	if v := os.Getenv("OTEL_SERVICE_NAME"); v != "" {
		name = v
	}
	sampler := os.Getenv("OTEL_TRACES_SAMPLER")
	if sampler == "" {
		sampler = "default"
	}
	return []any{"traces", p.traces, "traces_sampler", sampler, "service_name", name, "metrics", "GET /metrics"}
}

// TracerProvider is where spans go.
func (p *Providers) TracerProvider() trace.TracerProvider {
	if p == nil {
		return tracenoop.NewTracerProvider()
	}
	return p.tp
}

// MeterProvider is where metrics go.
func (p *Providers) MeterProvider() metric.MeterProvider {
	if p == nil {
		return metricnoop.NewMeterProvider()
	}
	return p.mp
}

// Meter returns the meter of an instrumentation scope (a package path).
func (p *Providers) Meter(scope string) metric.Meter { return p.MeterProvider().Meter(scope) }

// Handler serves the metrics in the Prometheus text format, or in
// OpenMetrics (with exemplars carrying trace ids) to a scraper asking for
// it. Without telemetry it answers 404.
func (p *Providers) Handler() http.Handler {
	if p == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Mount adds GET /metrics to mux; without telemetry it adds nothing.
func (p *Providers) Mount(mux *http.ServeMux) {
	if p != nil {
		mux.Handle("GET /metrics", p.Handler())
	}
}

// InstrumentRedis adds tracing hooks to a go-redis client (redisotel): a
// client span per command or pipeline, a child of the recording span in the
// command's context. Commands are named but their arguments (keys with
// entity ids, tile values) are not recorded. A command or dial outside a
// recording span (not sampled, or a readiness ping outside any span) starts
// no span and costs next to nothing:
// redisotel would otherwise format every command of a pipeline into a
// string before it knows whether the span is recorded, a large cost on
// featurize's pipelines of thousands of commands. Without an exporter
// nothing is added at all: no span would ever be recorded. Call it before
// the client's first command (a cluster's nodes are hooked as they connect),
// as store.Config.Open does with its hooks, whose type it has. Without
// telemetry it does nothing.
func (p *Providers) InstrumentRedis(c redis.UniversalClient) error {
	if p == nil || !p.exporting {
		return nil
	}
	u := &unrecorded{}
	switch c := c.(type) {
	case *redis.Client:
		c.AddHook(u)
	case *redis.ClusterClient:
		// redisotel hooks every node's client; this hook must wrap its.
		c.OnNewNode(func(n *redis.Client) { n.AddHook(u) })
	default:
		return fmt.Errorf("telemetry: redis client %T not supported", c)
	}
	return redisotel.InstrumentTracing(c,
		redisotel.WithTracerProvider(childProvider{tp: p.tp}), // dials too
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
		redisotel.WithCommandFilter(func(cmd redis.Cmder) bool {
			return u.skip(cmd) || redisotel.DefaultCommandFilter(cmd)
		}),
		redisotel.WithCommandsFilter(func(cmds []redis.Cmder) bool {
			if len(cmds) > 0 && u.skip(cmds[0]) {
				return true
			}
			for _, cmd := range cmds {
				if redisotel.DefaultCommandFilter(cmd) { // AUTH: never traced
					return true
				}
			}
			return false
		}),
	)
}

// unrecorded is a go-redis hook, outside redisotel's, that marks the
// commands (a pipeline by its first) issued outside a recording span, so
// that redisotel's filters, which see commands but not contexts, pass them
// by.
type unrecorded struct{ marked sync.Map }

var _ redis.Hook = (*unrecorded)(nil)

func (u *unrecorded) skip(cmd redis.Cmder) bool {
	_, ok := u.marked.Load(cmd)
	return ok
}

func (u *unrecorded) DialHook(next redis.DialHook) redis.DialHook { return next }

func (u *unrecorded) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if trace.SpanFromContext(ctx).IsRecording() {
			return next(ctx, cmd)
		}
		u.marked.Store(cmd, struct{}{})
		defer u.marked.Delete(cmd)
		return next(ctx, cmd)
	}
}

func (u *unrecorded) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || trace.SpanFromContext(ctx).IsRecording() {
			return next(ctx, cmds)
		}
		u.marked.Store(cmds[0], struct{}{})
		defer u.marked.Delete(cmds[0])
		return next(ctx, cmds)
	}
}

// childProvider's tracers start spans only under a recording span: a
// connection redisotel dials outside one starts no trace of its own.
type childProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (c childProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{t: c.tp.Tracer(name, opts...)}
}

type childTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (c childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return c.t.Start(ctx, name, opts...)
}

// Instrument returns a metric instrument made by a Meter, reporting the
// error of making it through OpenTelemetry's error handler (the service's
// log): the SDK returns a working instrument even then, so the service
// runs on with the metric it could make.
//
//	o.accepted = telemetry.Instrument(m.Int64Counter("freshet.ingest.events.accepted", ...))
func Instrument[T any](instrument T, err error) T {
	if err != nil {
		otel.Handle(fmt.Errorf("metric instrument: %w", err))
	}
	return instrument
}
