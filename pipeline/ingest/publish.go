package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// Publisher writes decoded events to their event type's topic.
type Publisher struct {
	cfg broker.Config
	w   *kafka.Writer // for its settings
	// out writes: w itself, or w wrapped by observation (observe.go)
	// with telemetry.
	out messageWriter
}

// messageWriter writes messages to Kafka: a *kafka.Writer, or a decorator
// of one. WriteMessages returns nil only once Kafka has acknowledged every
// message; it may set the messages' headers, never their keys or values.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

var _ messageWriter = (*kafka.Writer)(nil)

// NewPublisher returns a Publisher writing with w, which should come from
// cfg.NewWriter: Publish relies on its synchronous, acks=all, murmur2
// settings. The caller keeps ownership of w and closes it.
func NewPublisher(cfg broker.Config, w *kafka.Writer, opts ...Option) *Publisher {
	return &Publisher{cfg: cfg, w: w, out: observeWrites(w, buildOptions(opts).tel)}
}

// Publish writes one message per event, in order: to the topic
// cfg.Topic(ev.Type.Name), keyed by ev.Key(), valued by the normalized JSON of
// ev, timestamped with the event time. It returns nil only once Kafka has
// acknowledged every message. On error none of evs may be reported as
// accepted, although some may have been written: callers retry, and
// consumers are idempotent.
//
// Events of one key go to one partition in the order given; concurrent
// Publish calls do not order against each other.
func (p *Publisher) Publish(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	var e encoder
	msgs := make([]kafka.Message, len(evs))
	for i := range evs {
		msgs[i] = e.message(&p.cfg, &evs[i])
	}
	return p.publish(ctx, msgs)
}

// publish writes msgs and waits for their acknowledgement. The messages'
// bytes must not be modified afterwards, even on error: after a cancelled
// ctx the writer may still be sending them. With telemetry the write is a
// producer span whose trace context the messages carry in their headers.
func (p *Publisher) publish(ctx context.Context, msgs []kafka.Message) error {
	if err := p.out.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d events: %w", len(msgs), firstError(err))
	}
	return nil
}

// maxMessage is the size above which the writer refuses a message.
func (p *Publisher) maxMessage() int64 {
	if p.w.BatchBytes > 0 {
		return p.w.BatchBytes
	}
	return 1 << 20 // kafka-go's default
}

// firstError reduces kafka.WriteErrors, which holds one (mostly repeated)
// error per message, to its first error, so messages stay readable.
func firstError(err error) error {
	if we, ok := err.(kafka.WriteErrors); ok {
		for _, e := range we {
			if e != nil {
				return e
			}
		}
	}
	return err
}

// encoder turns events into messages, appending all keys and values to one
// shared buffer so that a batch costs a few allocations rather than two per
// event. A buffer is never reused once its messages are handed to the
// writer.
type encoder struct {
	buf []byte
	// The topic of the last event type seen, to build each name once.
	typ   *schemas.Event
	topic string
}

// reset starts a new buffer, sized after the current one, once the
// messages of the current one have been handed over.
func (e *encoder) reset() {
	e.buf = make([]byte, 0, max(len(e.buf)+len(e.buf)/8, 64<<10))
}

func (e *encoder) message(cfg *broker.Config, ev *events.Event) kafka.Message {
	if e.buf == nil {
		e.buf = make([]byte, 0, 64<<10)
	}
	if ev.Type != e.typ {
		e.typ, e.topic = ev.Type, cfg.Topic(ev.Type.Name)
	}
	start := len(e.buf)
	e.buf = append(e.buf, ev.Key()...)
	mid := len(e.buf)
	e.buf = ev.AppendJSON(e.buf)
	end := len(e.buf)
	// When append grew buf, the earlier messages keep the old array, which
	// is never written again: slices handed out stay valid.
	return kafka.Message{
		Topic: e.topic,
		// Never nil, even for an empty key: the murmur2 balancer sends a
		// nil key to a random partition.
		Key:   e.buf[start:mid:mid],
		Value: e.buf[mid:end:end],
		Time:  time.UnixMilli(ev.Time),
	}
}
