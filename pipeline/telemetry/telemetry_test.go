package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/ingest"
	"github.com/freshet-ml/freshet/pipeline/serve"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// TestOneTraceAcrossKafka sends one event through ingest's API, Kafka
// (testenv.Kafka), featurize and the store (testenv.Redis), then looks it up
// through serve, all instrumented with one in-memory span exporter. The
// event's HTTP request, its Kafka write, the micro-batch that consumed it
// and that batch's Redis commands must form one trace across the Kafka hop;
// the lookup is a trace of its own whose Redis read is a child of its HTTP
// span. The metrics every service serves must count the event.
func TestOneTraceAcrossKafka(t *testing.T) {
	p := newTracedPipeline(t)
	ingestURL := p.ingestOne(t)
	group := p.featurize(t)
	serveURL := p.lookUp(t)

	spans := p.exp.GetSpans()
	tid := requireKafkaTrace(t, spans, p.topic, group)
	lookup := requireLookupTrace(t, spans, tid)

	// Metrics: each service's listener serves the process's registry.
	requireMetrics(t, get(t, ingestURL+"/metrics", nil), p.topic)
	// Exemplars carry the trace id, in OpenMetrics.
	om := get(t, serveURL+"/metrics", map[string]string{"Accept": "application/openmetrics-text; version=1.0.0"})
	require.Contains(t, om, `trace_id="`+lookup.SpanContext.TraceID().String()+`"`)
}

// tracedPipeline is ingest, featurize and serve, configured as their
// commands' defaults configure them, on the test's Kafka (a topic prefix of
// their own) and Redis, all instrumented with one telemetry whose spans go
// to exp.
type tracedPipeline struct {
	tel   *telemetry.Providers
	exp   *tracetest.InMemoryExporter
	log   *slog.Logger
	reg   *schemas.Registry
	st    *store.Redis
	kc    broker.Config
	topic string // of the event type transaction, created
}

func newTracedPipeline(t *testing.T) *tracedPipeline {
	ctx := context.Background()
	p := &tracedPipeline{exp: tracetest.NewInMemoryExporter(), log: slog.New(slog.DiscardHandler), reg: testenv.Registry(t)}
	tel, shutdown, err := telemetry.Setup(ctx, "freshet-test", telemetry.WithSpanExporter(p.exp), telemetry.WithSampler(sdktrace.AlwaysSample()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	p.tel = tel
	_, rc := testenv.Redis(t, tel.InstrumentRedis)
	p.st = store.NewRedis(rc, testenv.Unique("telemetry-test:"))
	ic, _ := cli.NewIngest()
	p.kc = ic.Ingest.Kafka
	p.kc.Brokers = testenv.Kafka(t)
	p.kc.TopicPrefix = testenv.Unique("telemetry-test.")
	p.kc.Partitions = 2
	p.topic = p.kc.Topic("transaction")
	require.NoError(t, p.kc.EnsureTopics(ctx, []string{p.topic}))
	return p
}

// ingestOne sends one event over ingest's HTTP API and returns the API's
// URL.
func (p *tracedPipeline) ingestOne(t *testing.T) string {
	w := p.kc.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	ic, _ := cli.NewIngest()
	icfg := ic.Ingest
	icfg.Kafka = p.kc
	isrv := ingest.NewServer(p.reg, ingest.NewPublisher(p.kc, w, ingest.WithTelemetry(p.tel)), icfg, p.log, ingest.WithTelemetry(p.tel))
	ih := httptest.NewServer(isrv.Handler())
	t.Cleanup(ih.Close)
	res, err := http.Post(ih.URL+"/v1/events/transaction", "application/json", strings.NewReader(
		`{"txn_id":"t1","user_id":"u_trace","merchant_id":"m_1","amount":41.5,"items":2,"ts":`+
			strconv.FormatInt(time.Now().UnixMilli(), 10)+`}`))
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusAccepted, res.StatusCode)
	return ih.URL
}

// featurize consumes the event into the store, in a consumer group of its
// own, whose id it returns.
func (p *tracedPipeline) featurize(t *testing.T) string {
	fc, _ := cli.NewFeaturize()
	fcfg := fc.Featurize
	fcfg.Kafka = p.kc
	fcfg.GroupID = testenv.Unique("telemetry-group-")
	fcfg.CommitDelay = 0
	svc, err := featurize.NewService(fcfg, p.reg, p.st, p.log, featurize.WithTelemetry(p.tel))
	require.NoError(t, err)
	reader := featurize.NewReader(fcfg, svc.Proc.Topics())
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Consumer(reader).Run(cctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for svc.Proc.Stats.Messages.Load() < 1 {
		require.True(t, time.Now().Before(deadline), "featurize consumed nothing in 60s")
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, reader.Close())
	return fcfg.GroupID
}

// lookUp looks the event's entity up through serve, which must find it,
// and returns serve's URL.
func (p *tracedPipeline) lookUp(t *testing.T) string {
	sc, _ := cli.NewServe()
	ssrv, err := serve.New(p.reg, p.st, sc.Serve, p.log, serve.WithTelemetry(p.tel))
	require.NoError(t, err)
	sh := httptest.NewServer(ssrv.Handler())
	t.Cleanup(sh.Close)
	body := get(t, sh.URL+"/v1/features/user_spend/u_trace", nil)
	require.Contains(t, body, `"status":"PRESENT"`)
	return sh.URL
}

// onlySpan returns the one span of spans with the name and kind.
func onlySpan(t *testing.T, spans tracetest.SpanStubs, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name && s.SpanKind == kind {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q of kind %s among %v", name, kind, names(spans))
	return found[0]
}

// requireKafkaTrace requires the event's HTTP request, its Kafka write to
// topic, the micro-batch of the consumer group that consumed it and the
// batch's Redis commands to be one trace, and returns its id.
func requireKafkaTrace(t *testing.T, spans tracetest.SpanStubs, topic, group string) trace.TraceID {
	t.Helper()
	post := onlySpan(t, spans, "POST /v1/events/{event}", trace.SpanKindServer)
	send := onlySpan(t, spans, "send "+topic, trace.SpanKindProducer)
	process := onlySpan(t, spans, "process "+topic, trace.SpanKindConsumer)
	tid := post.SpanContext.TraceID()
	require.Equal(t, tid, send.SpanContext.TraceID(), "the Kafka write is in the request's trace")
	require.Equal(t, post.SpanContext.SpanID(), send.Parent.SpanID())
	require.Equal(t, tid, process.SpanContext.TraceID(), "the micro-batch continues the trace across Kafka")
	require.Equal(t, send.SpanContext.SpanID(), process.Parent.SpanID())
	require.True(t, process.Parent.IsRemote())
	requireAttrs(t, send.Attributes, map[string]any{
		"messaging.system": "kafka", "messaging.operation.type": "send", "messaging.destination.name": topic,
	})
	requireAttrs(t, process.Attributes, map[string]any{
		"messaging.system": "kafka", "messaging.operation.type": "process", "messaging.destination.name": topic,
		"messaging.consumer.group.name": group, "messaging.kafka.offset": int64(0),
	})
	require.Contains(t, keys(process.Attributes), "messaging.destination.partition.id")

	// The batch's Redis commands: children of the consumer span (reading
	// the watermarks, reading and writing the entities, saving marks).
	var redisKids []string
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindClient && s.Parent.SpanID() == process.SpanContext.SpanID() {
			require.Equal(t, tid, s.SpanContext.TraceID())
			redisKids = append(redisKids, s.Name)
		}
	}
	require.Contains(t, strings.Join(redisKids, ","), "redis.pipeline hmget", "Redis spans under the batch: %v", redisKids)
	require.Contains(t, strings.Join(redisKids, ","), "evalsha")
	return tid
}

// requireLookupTrace requires the lookup to be a trace of its own, not
// tid, whose one child is its Redis read, and returns its HTTP span.
func requireLookupTrace(t *testing.T, spans tracetest.SpanStubs, tid trace.TraceID) tracetest.SpanStub {
	t.Helper()
	lookup := onlySpan(t, spans, "GET /v1/features/{view}/{entity}", trace.SpanKindServer)
	require.NotEqual(t, tid, lookup.SpanContext.TraceID())
	requireAttrs(t, lookup.Attributes, map[string]any{"http.route": "/v1/features/{view}/{entity}"})
	var read []string
	for _, s := range spans {
		if s.Parent.SpanID() == lookup.SpanContext.SpanID() {
			read = append(read, s.Name)
		}
	}
	require.Equal(t, []string{"redis.pipeline hgetall"}, read)
	return lookup
}

// requireMetrics requires the metrics text of the process to count the one
// event of topic in every service, and no entity id in a label.
func requireMetrics(t *testing.T, metrics, topic string) {
	t.Helper()
	for _, line := range []string{
		`freshet_ingest_events_accepted_total{event="transaction"} 1`,
		`freshet_ingest_kafka_write_events_count{topic="` + topic + `"} 1`,
		`freshet_featurize_messages_total{topic="` + topic + `"} 1`,
		`freshet_featurize_events_total{outcome="applied",view="user_spend"} 1`,
		`freshet_featurize_events_total{outcome="applied",view="merchant_activity"} 1`,
		`freshet_featurize_freshness_seconds_count{view="user_spend"} 1`,
		`freshet_featurize_end_to_end_delay_seconds_count{topic="` + topic + `"} 1`,
		`freshet_featurize_batch_messages_count 1`,
		`freshet_serve_lookups_total{status="PRESENT",view="user_spend"} 1`,
		`freshet_serve_request_entities_count{view="user_spend"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/v1/features/{view}/{entity}"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="202",http_route="/v1/events/{event}"} 1`,
	} {
		require.Contains(t, metrics, line)
	}
	require.Regexp(t, `(?m)^freshet_featurize_consumer_lag_messages\{partition="\d",topic="`+topic+`"\} 0$`, metrics)
	require.Regexp(t, `(?m)^go_goroutine_count(\{\})? \d+`, metrics)
	require.Regexp(t, `(?m)^process_resident_memory_bytes `, metrics)
	require.NotContains(t, metrics, "u_trace", "no entity id in a label")
}

func get(t *testing.T, url string, header map[string]string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	return string(b)
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.SpanKind.String()+":"+s.Name)
	}
	return out
}

func keys(attrs []attribute.KeyValue) []string {
	var out []string
	for _, a := range attrs {
		out = append(out, string(a.Key))
	}
	return out
}

func requireAttrs(t *testing.T, attrs []attribute.KeyValue, want map[string]any) {
	t.Helper()
	got := map[string]any{}
	for _, a := range attrs {
		got[string(a.Key)] = a.Value.AsInterface()
	}
	for k, v := range want {
		require.Equal(t, v, got[k], "attribute %s in %v", k, got)
	}
}
