package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// setup returns providers exporting to an in-memory exporter, sampling all.
func setup(t *testing.T) (*telemetry.Providers, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p, shutdown, err := telemetry.Setup(context.Background(), "test", telemetry.WithSpanExporter(exp), telemetry.WithSampler(sdktrace.AlwaysSample()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	return p, exp
}

func TestHeaderCarrier(t *testing.T) {
	h := []kafka.Header{{Key: "a", Value: []byte("1")}}
	c := telemetry.HeaderCarrier{Headers: &h}
	c.Set("traceparent", "x")
	c.Set("a", "2")
	require.Equal(t, "2", c.Get("a"))
	require.Equal(t, "x", c.Get("traceparent"))
	require.Equal(t, "", c.Get("missing"))
	require.Equal(t, []string{"a", "traceparent"}, c.Keys())
}

// written returns the headers a Kafka write in a new trace gives its
// messages, with baggage, and the write's span context.
func written(t *testing.T, p *telemetry.Providers) ([]kafka.Header, trace.SpanContext) {
	t.Helper()
	m, err := baggage.NewMember("tenant", "acme")
	require.NoError(t, err)
	b, err := baggage.New(m)
	require.NoError(t, err)
	ctx := baggage.ContextWithBaggage(context.Background(), b)
	_, span, headers := p.StartSend(ctx, "topic-a", 2, time.UnixMilli(1_700_000_000_123))
	span.End()
	return headers, span.SpanContext()
}

func TestStartSendHeaders(t *testing.T) {
	p, exp := setup(t)
	headers, sc := written(t, p)
	c := telemetry.HeaderCarrier{Headers: &headers}
	require.Contains(t, c.Get("traceparent"), sc.TraceID().String())
	require.Equal(t, "tenant=acme", c.Get("baggage"))
	at, ok := telemetry.IngestTime(headers)
	require.True(t, ok)
	require.Equal(t, int64(1_700_000_000_123), at.UnixMilli())
	for _, bad := range []string{"", "12x", "-5", "1234567890123456789"} {
		_, ok := telemetry.IngestTime([]kafka.Header{{Key: telemetry.IngestTimeHeader, Value: []byte(bad)}})
		require.False(t, ok, bad)
	}
	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	require.Equal(t, "send topic-a", spans[0].Name)
	require.Equal(t, trace.SpanKindProducer, spans[0].SpanKind)
}

func TestStartProcess(t *testing.T) {
	p, exp := setup(t)
	h1, sc1 := written(t, p)
	h2, sc2 := written(t, p)
	require.NotEqual(t, sc1.TraceID(), sc2.TraceID())
	msg := func(part int, off int64, h []kafka.Header) kafka.Message {
		return kafka.Message{Topic: "topic-a", Partition: part, Offset: off, Headers: h}
	}

	t.Run("one trace: continued", func(t *testing.T) {
		exp.Reset()
		ctx, span := p.StartProcess(context.Background(), "g", []kafka.Message{msg(0, 1, nil), msg(0, 2, h1), msg(1, 7, h1)})
		span.End()
		require.Equal(t, "acme", baggage.FromContext(ctx).Member("tenant").Value(), "the producer's baggage comes along")
		s := exp.GetSpans()[0]
		require.Equal(t, sc1.TraceID(), s.SpanContext.TraceID())
		require.Equal(t, sc1.SpanID(), s.Parent.SpanID())
		require.Empty(t, s.Links)
		require.Equal(t, "process topic-a", s.Name)
		requireAttrs(t, s.Attributes, map[string]any{"messaging.batch.message_count": int64(3), "messaging.consumer.group.name": "g"})
		require.NotContains(t, keys(s.Attributes), "messaging.destination.partition.id", "two partitions")
	})
	t.Run("mixed traces: linked", func(t *testing.T) {
		exp.Reset()
		_, span := p.StartProcess(context.Background(), "g", []kafka.Message{msg(0, 1, h1), msg(0, 2, h2), msg(0, 3, h1), msg(0, 4, h2)})
		span.End()
		s := exp.GetSpans()[0]
		require.False(t, s.Parent.IsValid(), "a trace of its own")
		require.NotEqual(t, sc1.TraceID(), s.SpanContext.TraceID())
		require.NotEqual(t, sc2.TraceID(), s.SpanContext.TraceID())
		require.Len(t, s.Links, 2)
		require.Equal(t, sc1.SpanID(), s.Links[0].SpanContext.SpanID())
		require.Equal(t, sc2.SpanID(), s.Links[1].SpanContext.SpanID())
		requireAttrs(t, s.Attributes, map[string]any{"messaging.destination.partition.id": "0"})
	})
	t.Run("no trace context: a new trace", func(t *testing.T) {
		exp.Reset()
		_, span := p.StartProcess(context.Background(), "g", []kafka.Message{msg(3, 9, nil)})
		span.End()
		s := exp.GetSpans()[0]
		require.False(t, s.Parent.IsValid())
		requireAttrs(t, s.Attributes, map[string]any{"messaging.kafka.offset": int64(9), "messaging.destination.partition.id": "3"})
	})
}

// TestNilProviders: no telemetry costs nothing and changes nothing.
func TestNilProviders(t *testing.T) {
	var p *telemetry.Providers
	ctx := context.Background()
	ctx2, span, headers := p.StartSend(ctx, "t", 1, time.Now())
	require.Equal(t, ctx, ctx2)
	require.False(t, span.SpanContext().IsValid())
	require.Nil(t, headers)
	_, span = p.StartProcess(ctx, "g", []kafka.Message{{Topic: "t"}})
	require.False(t, span.IsRecording())
	h := http.NotFoundHandler()
	require.NotNil(t, p.Middleware(h))
	require.NoError(t, p.InstrumentRedis(nil))
	mux := http.NewServeMux()
	p.Mount(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
}

func TestSetupFromEnvironment(t *testing.T) {
	ctx := context.Background()
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(v, "")
	}

	t.Run("no endpoint: trace ids, nothing recorded", func(t *testing.T) {
		t.Setenv("OTEL_SERVICE_NAME", "renamed")
		t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
		p, shutdown, err := telemetry.Setup(ctx, "ingest")
		require.NoError(t, err)
		defer shutdown(ctx)
		attrs := p.LogAttrs()
		require.Equal(t, []any{"traces", "off", "traces_sampler", "default", "service_name", "renamed", "metrics", "GET /metrics"}, attrs)
		_, span := p.TracerProvider().Tracer("t").Start(ctx, "x")
		require.True(t, span.SpanContext().IsValid(), "ids for logs and Kafka headers")
		require.False(t, span.IsRecording())
		span.End()
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Regexp(t, `target_info\{.*deployment_environment_name="test".*service_name="renamed"`, rec.Body.String())
	})
	t.Run("endpoint: OTLP over HTTP, sampled", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:secret@127.0.0.1:1")
		p, shutdown, err := telemetry.Setup(ctx, "ingest")
		require.NoError(t, err)
		require.Equal(t, "otlp http://user:xxxxx@127.0.0.1:1", p.LogAttrs()[1])
		_, span := p.TracerProvider().Tracer("t").Start(ctx, "x")
		require.True(t, span.IsRecording())
		// Nothing was ended: shutdown has nothing to send.
		require.NoError(t, shutdown(ctx))
	})
	t.Run("traces exporter none", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		t.Setenv("OTEL_TRACES_EXPORTER", "none")
		p, shutdown, err := telemetry.Setup(ctx, "ingest")
		require.NoError(t, err)
		defer shutdown(ctx)
		require.Equal(t, "off", p.LogAttrs()[1])
	})
	t.Run("grpc is refused with a clear message", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
		_, _, err := telemetry.Setup(ctx, "ingest")
		require.ErrorContains(t, err, "http/protobuf")
	})
	t.Run("the SDK reads the sampler", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
		p, shutdown, err := telemetry.Setup(ctx, "ingest")
		require.NoError(t, err)
		defer shutdown(ctx)
		_, span := p.TracerProvider().Tracer("t").Start(ctx, "x")
		require.False(t, span.IsRecording())
	})
}

// TestMiddlewareRoutes: spans and the duration metric name the route
// pattern, never the raw path; probes and scrapes are neither.
func TestMiddlewareRoutes(t *testing.T) {
	p, exp := setup(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	p.Mount(mux)
	h := p.Middleware(mux)
	for _, path := range []string{"/items/secret-entity-1", "/items/secret-entity-2", "/healthz", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	req := httptest.NewRequest("BREW", "/items/x", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	require.Equal(t, []string{"GET /items/{id}", "GET /items/{id}", "GET", "HTTP"}, names)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	require.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="418",http_route="/items/{id}"} 2`)
	require.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404"} 1`)
	require.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="405"} 1`)
	require.NotContains(t, body, "secret-entity")
	require.NotContains(t, body, "healthz")
}

// TestRedisSpans: Redis commands and pipelines are children of a recording
// span, and nothing at all outside one, standalone and on a cluster.
func TestRedisSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	// Parent-based, always on for roots: a Redis span started outside any
	// span would be recorded, so none may be started.
	p, shutdown, err := telemetry.Setup(context.Background(), "test", telemetry.WithSpanExporter(exp), telemetry.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	_, standalone := testenv.Redis(t, p.InstrumentRedis)
	clients := map[string]redis.UniversalClient{"standalone": standalone}
	if _, ok := testenv.RedisCluster(t); ok { // the cluster answers
		// A fresh client: hooks reach a cluster's nodes as they connect.
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(os.Getenv("FRESHET_TEST_REDIS_CLUSTER"), ",")})
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, p.InstrumentRedis(c))
		clients["cluster"] = c
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			exp.Reset()
			ctx := context.Background()
			key := testenv.Unique("telemetry-redis:")
			pipeline := func(ctx context.Context) {
				pipe := c.Pipeline()
				pipe.HSet(ctx, key+"a", "f", "1")
				pipe.HGetAll(ctx, key+"a")
				_, err := pipe.Exec(ctx)
				require.NoError(t, err, "pipeline")
			}
			require.NoError(t, c.Ping(ctx).Err())
			pipeline(ctx)
			unsampled := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true}))
			pipeline(unsampled)
			require.ErrorIs(t, c.Get(unsampled, key+"none").Err(), redis.Nil)
			require.Empty(t, exp.GetSpans(), "no span outside a recording one")

			pctx, parent := p.TracerProvider().Tracer("t").Start(ctx, "parent")
			pipeline(pctx)
			require.Equal(t, "1", c.HGet(pctx, key+"a", "f").Val())
			parent.End()
			// Every span descends from the parent (a new connection's
			// HELLO is under its redis.dial); commands are its children.
			spans := exp.GetSpans()
			ids := map[trace.SpanID]bool{}
			for _, s := range spans {
				ids[s.SpanContext.SpanID()] = true
			}
			var kids []string
			for _, s := range spans {
				if s.Name == "parent" {
					continue
				}
				require.Equal(t, parent.SpanContext().TraceID(), s.SpanContext.TraceID(), s.Name)
				require.True(t, ids[s.Parent.SpanID()], "%s descends from the parent", s.Name)
				if s.Parent.SpanID() == parent.SpanContext().SpanID() {
					kids = append(kids, s.Name)
				}
			}
			require.Contains(t, kids, "redis.pipeline hset hgetall")
			require.Contains(t, kids, "hget")
		})
	}
}

// BenchmarkStartProcess is the consumer span of a 5,000-message batch: each
// message its own trace (one HTTP request each), or one trace for all, with
// and without an exporter.
func BenchmarkStartProcess(b *testing.B) {
	for _, c := range []struct {
		name      string
		exporting bool
		distinct  bool
	}{{"off/distinct", false, true}, {"on/distinct", true, true}, {"on/one-trace", true, false}} {
		b.Run(c.name, func(b *testing.B) {
			b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
			b.Setenv("OTEL_TRACES_SAMPLER", "")
			var opts []telemetry.Option
			if c.exporting {
				opts = append(opts, telemetry.WithSpanExporter(tracetest.NewNoopExporter()), telemetry.WithSampler(sdktrace.AlwaysSample()))
			}
			p, shutdown, err := telemetry.Setup(context.Background(), "bench", opts...)
			require.NoError(b, err)
			b.Cleanup(func() { _ = shutdown(context.Background()) })
			const n = 5000
			msgs := make([]kafka.Message, n)
			var headers []kafka.Header
			for i := range msgs {
				if c.distinct || headers == nil {
					_, span, h := p.StartSend(context.Background(), "t", 1, time.Now())
					span.End()
					headers = h
				}
				msgs[i] = kafka.Message{Topic: "t", Partition: i % 6, Offset: int64(i), Headers: headers}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_, span := p.StartProcess(context.Background(), "g", msgs)
				span.End()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/msg")
		})
	}
}
