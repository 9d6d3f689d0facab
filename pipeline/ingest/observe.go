package ingest

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// Option changes how NewServer and NewPublisher build theirs.
type Option func(*options)

type options struct{ tel *telemetry.Providers }

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
)

// observer is ingest's metrics; a nil *observer records nothing.
//
//	freshet_ingest_events_accepted_total{event}          events Kafka acknowledged (HTTP API)
//	freshet_ingest_events_rejected_total{event,reason}   events refused (HTTP API)
//	freshet_ingest_kafka_write_duration_seconds{topic,outcome}  one write, until acks=all
//	freshet_ingest_kafka_write_events{topic}             events per write
//	freshet_ingest_kafka_write_bytes{topic}              key and value bytes per write
type observer struct {
	tel         *telemetry.Providers
	accepted    metric.Int64Counter
	rejected    metric.Int64Counter
	writeTime   metric.Float64Histogram
	writeEvents metric.Int64Histogram
	writeBytes  metric.Int64Histogram
}

func newObserver(tel *telemetry.Providers) *observer {
	if tel == nil {
		return nil
	}
	m := tel.Meter("github.com/freshet-ml/freshet/pipeline/ingest")
	o := &observer{tel: tel}
	o.accepted = telemetry.Instrument(m.Int64Counter("freshet.ingest.events.accepted", metric.WithUnit("{event}"),
		metric.WithDescription("Events accepted by the HTTP API: Kafka acknowledged them from every in-sync replica.")))
	o.rejected = telemetry.Instrument(m.Int64Counter("freshet.ingest.events.rejected", metric.WithUnit("{event}"),
		metric.WithDescription("Events refused by the HTTP API, by reason: invalid, batch_invalid (valid, in a request with an invalid one), too_large, kafka_unavailable.")))
	o.writeTime = telemetry.Instrument(m.Float64Histogram("freshet.ingest.kafka.write.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of one Kafka write, until every in-sync replica acknowledged it."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)))
	o.writeEvents = telemetry.Instrument(m.Int64Histogram("freshet.ingest.kafka.write.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events per Kafka write (an HTTP request, or a replay batch)."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)))
	o.writeBytes = telemetry.Instrument(m.Int64Histogram("freshet.ingest.kafka.write", metric.WithUnit("By"),
		metric.WithDescription("Key and value bytes per Kafka write."),
		metric.WithExplicitBucketBoundaries(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)))
	return o
}

func (o *observer) accept(ctx context.Context, event string, n int) {
	if o == nil || n == 0 {
		return
	}
	o.accepted.Add(ctx, int64(n), metric.WithAttributes(attribute.String("event", event)))
}

func (o *observer) reject(ctx context.Context, event, reason string, n int) {
	if o == nil || n == 0 {
		return
	}
	o.rejected.Add(ctx, int64(n), metric.WithAttributes(attribute.String("event", event), attribute.String("reason", reason)))
}

// write writes msgs with w inside a producer span, every message carrying
// the span's trace context and the acceptance time in its headers, and
// records the write's metrics.
func (o *observer) write(ctx context.Context, w *kafka.Writer, msgs []kafka.Message) error {
	if o == nil {
		return w.WriteMessages(ctx, msgs...)
	}
	start := time.Now()
	topic := msgs[0].Topic
	ctx, span, headers := o.tel.StartSend(ctx, topic, len(msgs), start)
	size := 0
	for i := range msgs {
		msgs[i].Headers = headers
		size += len(msgs[i].Key) + len(msgs[i].Value)
	}
	err := w.WriteMessages(ctx, msgs...)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	t := attribute.String("topic", topic)
	o.writeTime.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(t, attribute.String("outcome", outcome)))
	o.writeEvents.Record(ctx, int64(len(msgs)), metric.WithAttributes(t))
	o.writeBytes.Record(ctx, int64(size), metric.WithAttributes(t))
	telemetry.End(span, firstError(err))
	return err
}
