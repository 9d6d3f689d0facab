package featurize

import (
	"context"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// Observer is told what becomes of each micro-batch: the hooks through which
// featurize is observed, so that the loop itself holds no telemetry.
// NewObserver makes the OpenTelemetry one. The consume loop calls them from
// its one goroutine: BatchStart, then BatchEnd, for every batch.
type Observer interface {
	// BatchStart is called with a fetched micro-batch before anything is
	// done with it. The context it returns (holding a span, say) is the one
	// the batch is prepared, planned and applied with, and the one given to
	// BatchEnd.
	BatchStart(ctx context.Context, msgs []kafka.Message) context.Context
	// BatchEnd is called once the batch is in the store (err is nil; b's
	// Outcomes and EachApplied are complete) or was given up at shutdown
	// (err is not nil; b is nil when the batch was never planned). The
	// batch's offsets are committed after CommitDelay.
	BatchEnd(ctx context.Context, msgs []kafka.Message, b *Batch, err error)
}

// noObserver observes nothing.
type noObserver struct{}

func (noObserver) BatchStart(ctx context.Context, _ []kafka.Message) context.Context { return ctx }
func (noObserver) BatchEnd(context.Context, []kafka.Message, *Batch, error)          {}

var _ Observer = noObserver{}

// Outcomes of an event×view update, the outcome label of
// freshet_featurize_events_total.
var outcomeNames = [...]string{"applied", "duplicate", "late", "no_entity", "undecodable"}

// otelObserver is featurize's OpenTelemetry observer.
type otelObserver struct {
	tel   *telemetry.Providers
	group string

	messages metric.Int64Counter
	updates  metric.Int64Counter
	size     metric.Int64Histogram
	duration metric.Float64Histogram
	lag      metric.Int64Gauge
	// Per event: the Prometheus client's cheap histograms.
	freshness *telemetry.HotHistogram
	delay     *telemetry.HotHistogram

	// Series and attribute options made once: per view (and outcome), per
	// topic.
	views  []viewAttrs
	topics map[string]topicAttrs
}

type viewAttrs struct {
	outcomes  [len(outcomeNames)]metric.MeasurementOption
	freshness telemetry.HotSeries
}

type topicAttrs struct {
	opt   metric.MeasurementOption
	delay telemetry.HotSeries
}

var _ Observer = (*otelObserver)(nil)

// startKey holds a batch's start time in its context.
type startKey struct{}

// NewObserver returns the OpenTelemetry observer of proc's consume loop in
// the consumer group: each micro-batch is a consumer span (see
// telemetry.StartProcess) and feeds these metrics:
//
//	freshet_featurize_messages_total{topic}                 messages in the store, by topic
//	freshet_featurize_events_total{view,outcome}            event×view updates: applied, duplicate, late, no_entity, undecodable
//	freshet_featurize_batch_messages                        messages per micro-batch
//	freshet_featurize_batch_duration_seconds                plan and apply time of a micro-batch
//	freshet_featurize_consumer_lag_messages{topic,partition} messages behind the partition's end, after a batch
//	freshet_featurize_freshness_seconds{view}               store commit time minus event time, per applied update
//	freshet_featurize_end_to_end_delay_seconds{topic}       store commit time minus ingest acceptance time, per message
func NewObserver(p *telemetry.Providers, group string, proc *Processor) Observer {
	if p == nil {
		return noObserver{}
	}
	m := p.Meter("github.com/freshet-ml/freshet/pipeline/featurize")
	o := &otelObserver{tel: p, group: group, topics: map[string]topicAttrs{}}
	o.messages, _ = m.Int64Counter("freshet.featurize.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages consumed whose micro-batch is in the store (as GET /v1/stats messages)."))
	o.updates, _ = m.Int64Counter("freshet.featurize.events", metric.WithUnit("{event}"),
		metric.WithDescription("Event×view updates by outcome: applied, duplicate (applied before), late, no_entity (no entity field), undecodable."))
	o.size, _ = m.Int64Histogram("freshet.featurize.batch.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages per micro-batch."),
		metric.WithExplicitBucketBoundaries(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000))
	o.duration, _ = m.Float64Histogram("freshet.featurize.batch.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to plan and apply a micro-batch to the store, retries included."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	o.lag, _ = m.Int64Gauge("freshet.featurize.consumer.lag.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages of the partition after the last one of a micro-batch, as of its fetch (high watermark - offset - 1)."))
	o.freshness = p.HotHistogram("freshet_featurize_freshness_seconds",
		"Time the update was in the store minus its event time, per applied event×view update.", "view",
		[]float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400})
	o.delay = p.HotHistogram("freshet_featurize_end_to_end_delay_seconds",
		"Time a message's micro-batch was in the store minus the time ingest accepted the message (its freshet-ingest-time header).", "topic",
		[]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300})
	for _, name := range proc.Views() {
		v := attribute.String("view", name)
		va := viewAttrs{freshness: o.freshness.Series(name)}
		for i, oc := range outcomeNames {
			va.outcomes[i] = metric.WithAttributeSet(attribute.NewSet(v, attribute.String("outcome", oc)))
		}
		o.views = append(o.views, va)
	}
	for _, t := range proc.Topics() {
		o.topics[t] = o.newTopic(t)
	}
	return o
}

func (o *otelObserver) newTopic(t string) topicAttrs {
	return topicAttrs{metric.WithAttributeSet(attribute.NewSet(attribute.String("topic", t))), o.delay.Series(t)}
}

// BatchStart implements Observer: it starts the batch's consumer span.
func (o *otelObserver) BatchStart(ctx context.Context, msgs []kafka.Message) context.Context {
	ctx, _ = o.tel.StartProcess(ctx, o.group, msgs)
	return context.WithValue(ctx, startKey{}, time.Now())
}

// BatchEnd implements Observer: it records the batch's metrics and ends its
// span.
func (o *otelObserver) BatchEnd(ctx context.Context, msgs []kafka.Message, b *Batch, err error) {
	span := trace.SpanFromContext(ctx)
	if err != nil || b == nil {
		telemetry.End(span, err)
		return
	}
	now := time.Now()
	if start, ok := ctx.Value(startKey{}).(time.Time); ok {
		o.duration.Record(ctx, now.Sub(start).Seconds())
	}
	o.size.Record(ctx, int64(len(msgs)))
	var applied, late int64
	for vi, c := range b.Outcomes() {
		for i, n := range [...]int64{c.Applied, c.Duplicates, c.Late, c.NoEntity, c.Undecodable} {
			if n > 0 {
				o.updates.Add(ctx, n, o.views[vi].outcomes[i])
			}
		}
		applied, late = applied+c.Applied, late+c.Late
	}
	nowMs := now.UnixMilli()
	exemplar := make([]bool, len(o.views))
	b.EachApplied(func(vi int, t int64) {
		if !exemplar[vi] {
			exemplar[vi] = true
			o.views[vi].freshness.ObserveInSpan(ctx, float64(nowMs-t)/1000)
			return
		}
		o.views[vi].freshness.Observe(float64(nowMs-t) / 1000)
	})

	// Per topic: messages and their end-to-end delay; per partition: the
	// lag after its last message (a batch holds a few partitions: a slice
	// searched in order beats a map).
	var last []*kafka.Message
	for i := 0; i < len(msgs); {
		topic, ta := msgs[i].Topic, o.topic(msgs[i].Topic)
		j := i
		for ; j < len(msgs) && msgs[j].Topic == topic; j++ {
			m := &msgs[j]
			k := 0
			for k < len(last) && (last[k].Partition != m.Partition || last[k].Topic != m.Topic) {
				k++
			}
			if k == len(last) {
				last = append(last, m)
			} else {
				last[k] = m
			}
			if at, ok := telemetry.IngestTime(m.Headers); ok {
				if j == i {
					ta.delay.ObserveInSpan(ctx, now.Sub(at).Seconds())
				} else {
					ta.delay.Observe(now.Sub(at).Seconds())
				}
			}
		}
		o.messages.Add(ctx, int64(j-i), ta.opt)
		i = j
	}
	for _, m := range last {
		if m.HighWaterMark > 0 {
			o.lag.Record(ctx, max(0, m.HighWaterMark-m.Offset-1), metric.WithAttributes(
				attribute.String("topic", m.Topic), attribute.String("partition", strconv.Itoa(m.Partition))))
		}
	}
	span.SetAttributes(attribute.Int64("freshet.updates.applied", applied), attribute.Int64("freshet.updates.late", late))
	span.End()
}

// topic returns the series and attribute option of a topic.
func (o *otelObserver) topic(t string) topicAttrs {
	if ta, ok := o.topics[t]; ok {
		return ta
	}
	return o.newTopic(t) // not one of proc's topics: never from the loop
}
