package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tel, shutdown, err := telemetry.Setup(ctx, "freshet-test", telemetry.WithSpanExporter(exp), telemetry.WithSampler(sdktrace.AlwaysSample()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	log := slog.New(slog.DiscardHandler)

	reg, err := schemas.Load(filepath.Join(testenv.RepoRoot(t), "schemas", "example"))
	require.NoError(t, err)
	_, rc := testenv.Redis(t, tel.InstrumentRedis)
	st := store.NewRedis(rc, testenv.Unique("telemetry-test:"))
	ic, _ := cli.NewIngest()
	fc, _ := cli.NewFeaturize()
	sc, _ := cli.NewServe()
	kc := ic.Ingest.Kafka
	kc.Brokers = testenv.Kafka(t)
	kc.TopicPrefix = testenv.Unique("telemetry-test.")
	kc.Partitions = 2
	topic := kc.Topic("transaction")
	require.NoError(t, kc.EnsureTopics(ctx, []string{topic}))

	// ingest: one event over HTTP.
	w := kc.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	icfg := ic.Ingest
	icfg.Kafka = kc
	isrv := ingest.NewServer(reg, ingest.NewPublisher(kc, w, ingest.WithTelemetry(tel)), icfg, log, ingest.WithTelemetry(tel))
	ih := httptest.NewServer(isrv.Handler())
	t.Cleanup(ih.Close)
	res, err := http.Post(ih.URL+"/v1/events/transaction", "application/json", strings.NewReader(
		`{"txn_id":"t1","user_id":"u_trace","merchant_id":"m_1","amount":41.5,"items":2,"ts":`+
			strconv.FormatInt(time.Now().UnixMilli(), 10)+`}`))
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusAccepted, res.StatusCode)

	// featurize: consume it into the store.
	fcfg := fc.Featurize
	fcfg.Kafka = kc
	fcfg.GroupID = testenv.Unique("telemetry-group-")
	fcfg.CommitDelay = 0
	svc, err := featurize.NewService(fcfg, reg, st, log, featurize.WithTelemetry(tel))
	require.NoError(t, err)
	reader := featurize.NewReader(fcfg, svc.Proc.Topics())
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- featurize.NewConsumer(fcfg, reader, svc.Proc, log).Run(cctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for svc.Proc.Stats.Messages.Load() < 1 {
		require.True(t, time.Now().Before(deadline), "featurize consumed nothing in 60s")
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, reader.Close())

	// serve: look the entity up.
	ssrv, err := serve.New(reg, st, sc.Serve, log, serve.WithTelemetry(tel))
	require.NoError(t, err)
	sh := httptest.NewServer(ssrv.Handler())
	t.Cleanup(sh.Close)
	body := get(t, sh.URL+"/v1/features/user_spend/u_trace", nil)
	require.Contains(t, body, `"status":"PRESENT"`)

	spans := exp.GetSpans()
	byName := func(name string, kind trace.SpanKind) tracetest.SpanStub {
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
	post := byName("POST /v1/events/{event}", trace.SpanKindServer)
	send := byName("send "+topic, trace.SpanKindProducer)
	process := byName("process "+topic, trace.SpanKindConsumer)
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
		"messaging.consumer.group.name": fcfg.GroupID, "messaging.kafka.offset": int64(0),
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

	lookup := byName("GET /v1/features/{view}/{entity}", trace.SpanKindServer)
	require.NotEqual(t, tid, lookup.SpanContext.TraceID())
	requireAttrs(t, lookup.Attributes, map[string]any{"http.route": "/v1/features/{view}/{entity}"})
	var read []string
	for _, s := range spans {
		if s.Parent.SpanID() == lookup.SpanContext.SpanID() {
			read = append(read, s.Name)
		}
	}
	require.Equal(t, []string{"redis.pipeline hgetall"}, read)

	// Metrics: each service's listener serves the process's registry.
	metrics := get(t, ih.URL+"/metrics", nil)
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
	// Exemplars carry the trace id, in OpenMetrics.
	om := get(t, sh.URL+"/metrics", map[string]string{"Accept": "application/openmetrics-text; version=1.0.0"})
	require.Contains(t, om, `trace_id="`+lookup.SpanContext.TraceID().String()+`"`)
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
