package ingest

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// Option changes how NewServer and NewPublisher build theirs.
type Option func(*options)

type options struct {
	tel    *telemetry.Providers
	tokens *auth.Guard
}

// WithTokens makes the server's API require bearer tokens from g (nil:
// none): the ingest scope to send events, metrics for GET /metrics;
// /healthz and /readyz stay open. The publisher ignores it.
func WithTokens(g *auth.Guard) Option {
	return func(o *options) { o.tokens = g }
}

// WithTelemetry instruments the server and the publisher with p: the HTTP
// middleware and GET /metrics on the API, a producer span per Kafka write
// whose trace context (and the acceptance time) travels in the messages'
// headers, and the metrics below. Without it (or with nil) there is none.
func WithTelemetry(p *telemetry.Providers) Option {
	return func(o *options) { o.tel = p }
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Reasons an event is rejected, the reason label of
// freshet_ingest_events_rejected_total.
const (
	// reasonInvalid: the event failed validation.
	reasonInvalid = "invalid"
	// reasonBatchInvalid: the event was valid, but another of its request
	// was not, and a request is all or nothing.
	reasonBatchInvalid = "batch_invalid"
	// reasonTooLarge: an event of the request exceeds the message limit.
	reasonTooLarge = "too_large"
	// reasonKafka: Kafka did not acknowledge the request's events.
	reasonKafka = "kafka_unavailable"
	// reasonRate: the request's token was over its rate (429).
	reasonRate = "rate_limited"
)

// apiMetrics is the HTTP API's counters; a nil *apiMetrics records
// nothing.
//
//	freshet_ingest_events_accepted_total{event}          events Kafka acknowledged (HTTP API)
//	freshet_ingest_events_rejected_total{event,reason}   events refused (HTTP API)
type apiMetrics struct {
	accepted metric.Int64Counter
	rejected metric.Int64Counter
}

func newAPIMetrics(tel *telemetry.Providers) *apiMetrics {
	if tel == nil {
		return nil
	}
	m := tel.Meter(meterName)
	return &apiMetrics{
		accepted: telemetry.Instrument(m.Int64Counter("freshet.ingest.events.accepted", metric.WithUnit("{event}"),
			metric.WithDescription("Events accepted by the HTTP API: Kafka acknowledged them from every in-sync replica."))),
		rejected: telemetry.Instrument(m.Int64Counter("freshet.ingest.events.rejected", metric.WithUnit("{event}"),
			metric.WithDescription("Events refused by the HTTP API, by reason: invalid, batch_invalid (valid, in a request with an invalid one), too_large, kafka_unavailable."))),
	}
}

func (o *apiMetrics) accept(ctx context.Context, event string, n int) {
	if o == nil || n == 0 {
		return
	}
	o.accepted.Add(ctx, int64(n), metric.WithAttributes(attribute.String("event", event)))
}

func (o *apiMetrics) reject(ctx context.Context, event, reason string, n int) {
	if o == nil || n == 0 {
		return
	}
	o.rejected.Add(ctx, int64(n), metric.WithAttributes(attribute.String("event", event), attribute.String("reason", reason)))
}

// meterName is the instrumentation scope of ingest's metrics.
const meterName = "github.com/freshet-ml/freshet/pipeline/ingest"

// observedWriter observes the Kafka writes of another messageWriter: each
// write is a producer span, whose trace context (and the acceptance time)
// every message carries in its headers, and is measured:
//
//	freshet_ingest_kafka_write_duration_seconds{topic,outcome}  one write, until acks=all
//	freshet_ingest_kafka_write_events{topic}             events per write
//	freshet_ingest_kafka_write_bytes{topic}              key and value bytes per write
//
// It writes nothing itself: next does.
type observedWriter struct {
	next     messageWriter
	tel      *telemetry.Providers
	duration metric.Float64Histogram
	events   metric.Int64Histogram
	bytes    metric.Int64Histogram
}

var _ messageWriter = (*observedWriter)(nil)

// observeWrites returns next observed with tel, or next itself when tel is
// nil.
func observeWrites(next messageWriter, tel *telemetry.Providers) messageWriter {
	if tel == nil {
		return next
	}
	m := tel.Meter(meterName)
	return &observedWriter{
		next: next,
		tel:  tel,
		duration: telemetry.Instrument(m.Float64Histogram("freshet.ingest.kafka.write.duration", metric.WithUnit("s"),
			metric.WithDescription("Time of one Kafka write, until every in-sync replica acknowledged it."),
			metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))),
		events: telemetry.Instrument(m.Int64Histogram("freshet.ingest.kafka.write.events", metric.WithUnit("{event}"),
			metric.WithDescription("Events per Kafka write (an HTTP request, or a replay batch)."),
			metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000))),
		bytes: telemetry.Instrument(m.Int64Histogram("freshet.ingest.kafka.write", metric.WithUnit("By"),
			metric.WithDescription("Key and value bytes per Kafka write."),
			metric.WithExplicitBucketBoundaries(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216))),
	}
}

// WriteMessages has next write msgs inside a producer span, setting every
// message's headers to the span's trace context and the acceptance time,
// and records the write's metrics. msgs are all of one topic.
func (o *observedWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return o.next.WriteMessages(ctx)
	}
	start := time.Now()
	topic := msgs[0].Topic
	ctx, span, headers := o.tel.StartSend(ctx, topic, len(msgs), start)
	size := 0
	for i := range msgs {
		msgs[i].Headers = headers
		size += len(msgs[i].Key) + len(msgs[i].Value)
	}
	err := o.next.WriteMessages(ctx, msgs...)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	t := attribute.String("topic", topic)
	o.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(t, attribute.String("outcome", outcome)))
	o.events.Record(ctx, int64(len(msgs)), metric.WithAttributes(t))
	o.bytes.Record(ctx, int64(size), metric.WithAttributes(t))
	telemetry.End(span, firstError(err))
	return err
}
