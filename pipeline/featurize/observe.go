package featurize

// observe.go owns how the consume loop is observed: the Observer hooks it
// calls around every micro-batch, and the OpenTelemetry observer (a span per
// batch, outcome counters, freshness, end-to-end delay and consumer lag).

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// Observer is told what becomes of each micro-batch: the hooks through which
// featurize is observed, so that the loop itself holds no telemetry.
// A Consumer reports to the one given to it (WithObserver); NewObserver
// makes the OpenTelemetry one. The consume loop calls them from its one
// goroutine: BatchStart, then BatchEnd, for every batch.
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

// BatchStart implements Observer: it returns ctx.
func (noObserver) BatchStart(ctx context.Context, _ []kafka.Message) context.Context { return ctx }

// BatchEnd implements Observer: it does nothing.
func (noObserver) BatchEnd(context.Context, []kafka.Message, *Batch, error) {}

var _ Observer = noObserver{}

// Outcomes of an event×view update, the outcome label of
// freshet_featurize_events_total.
var outcomeNames = [...]string{"applied", "duplicate", "late", "no_entity", "undecodable", "rejected_time"}

// otelObserver is featurize's OpenTelemetry observer.
type otelObserver struct {
	tel   *telemetry.Providers
	group string

	messages metric.Int64Counter
	updates  metric.Int64Counter
	size     metric.Int64Histogram
	duration metric.Float64Histogram
	lags     *lagBook
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
//	freshet_featurize_events_total{view,outcome}            event×view updates: applied, duplicate, late, no_entity, undecodable, rejected_time
//	freshet_featurize_batch_messages                        messages per micro-batch
//	freshet_featurize_batch_duration_seconds                plan and apply time of a micro-batch
//	freshet_featurize_consumer_lag_messages{topic,partition} messages behind the partition's end, as of the last fetch
//	freshet_featurize_last_batch_timestamp_seconds          when the last micro-batch was in the store (a stall shows as time() minus it)
//	freshet_featurize_freshness_seconds{view}               store commit time minus event time, per applied update
//	freshet_featurize_end_to_end_delay_seconds{topic}       store commit time minus ingest acceptance time, per message
func NewObserver(p *telemetry.Providers, group string, proc *Processor) Observer {
	if p == nil {
		return noObserver{}
	}
	m := p.Meter("github.com/freshet-ml/freshet/pipeline/featurize")
	o := &otelObserver{tel: p, group: group, topics: map[string]topicAttrs{}, lags: &lagBook{parts: map[partition]lagEntry{}}}
	o.messages = telemetry.Instrument(m.Int64Counter("freshet.featurize.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages consumed whose micro-batch is in the store (as GET /v1/stats messages).")))
	o.updates = telemetry.Instrument(m.Int64Counter("freshet.featurize.events", metric.WithUnit("{event}"),
		metric.WithDescription("Event×view updates by outcome: applied, duplicate (applied before), late, no_entity (no entity field), undecodable, rejected_time (an implausible event time).")))
	o.size = telemetry.Instrument(m.Int64Histogram("freshet.featurize.batch.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages per micro-batch."),
		metric.WithExplicitBucketBoundaries(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)))
	o.duration = telemetry.Instrument(m.Float64Histogram("freshet.featurize.batch.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to plan and apply a micro-batch to the store, retries included."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)))
	telemetry.Instrument(m.Int64ObservableGauge("freshet.featurize.consumer.lag.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages of the partition after the last one fetched (high watermark - offset - 1), for the partitions fetched in the last "+lagStale.String()+"."),
		metric.WithInt64Callback(o.lags.observe)))
	telemetry.Instrument(m.Float64ObservableGauge("freshet.featurize.last.batch.timestamp", metric.WithUnit("s"),
		metric.WithDescription("Unix time at which the last micro-batch was in the store; 0 before the first."),
		metric.WithFloat64Callback(o.lags.observeLastBatch)))
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
	o.lags.fetched(msgs)
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
		for i, n := range [...]int64{c.Applied, c.Duplicates, c.Late, c.NoEntity, c.Undecodable, c.RejectedTime} {
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

	// Per topic: messages and their end-to-end delay.
	for i := 0; i < len(msgs); {
		topic, ta := msgs[i].Topic, o.topic(msgs[i].Topic)
		j := i
		for ; j < len(msgs) && msgs[j].Topic == topic; j++ {
			if at, ok := telemetry.IngestTime(msgs[j].Headers); ok {
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
	o.lags.batchDone(now)
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

// lagStale is how long a partition's lag is reported after its last fetch:
// longer than a session timeout, so that a partition that moved to another
// member in a rebalance stops being reported here, where its last value
// would stay forever.
const lagStale = time.Minute

// lagBook keeps the consumer lag of each partition as of its last fetch,
// for the observable gauge read at scrape time.
type lagBook struct {
	mu        sync.Mutex
	parts     map[partition]lagEntry
	lastBatch time.Time
	now       func() time.Time // nil: time.Now
}

type lagEntry struct {
	lag int64
	at  time.Time
}

func (b *lagBook) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// fetched records the lag after each partition's last message of a batch.
func (b *lagBook) fetched(msgs []kafka.Message) {
	now := b.clock()
	// A batch holds a few partitions: the last message of each, found from
	// the end in a small slice, is all that is recorded.
	var last []*kafka.Message
	for i := len(msgs) - 1; i >= 0; i-- {
		m := &msgs[i]
		if m.HighWaterMark > 0 && !slices.ContainsFunc(last, func(l *kafka.Message) bool {
			return l.Partition == m.Partition && l.Topic == m.Topic
		}) {
			last = append(last, m)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range last {
		b.parts[partition{m.Topic, m.Partition}] = lagEntry{max(0, m.HighWaterMark-m.Offset-1), now}
	}
}

func (b *lagBook) batchDone(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastBatch = at
}

// observe reports the partitions fetched within lagStale and forgets the
// others.
func (b *lagBook) observe(_ context.Context, o metric.Int64Observer) error {
	now := b.clock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for pk, e := range b.parts {
		if now.Sub(e.at) > lagStale {
			delete(b.parts, pk)
			continue
		}
		o.Observe(e.lag, metric.WithAttributes(attribute.String("topic", pk.topic), attribute.String("partition", strconv.Itoa(pk.id))))
	}
	return nil
}

func (b *lagBook) observeLastBatch(_ context.Context, o metric.Float64Observer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.lastBatch.IsZero() {
		o.Observe(float64(b.lastBatch.UnixNano()) / 1e9)
	} else {
		o.Observe(0)
	}
	return nil
}
