package telemetry

import (
	"context"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// IngestTimeHeader is the Kafka header in which ingest puts the time it
// accepted an event, in decimal epoch milliseconds: featurize measures the
// end-to-end delay from it.
const IngestTimeHeader = "freshet-ingest-time"

// maxLinks bounds the links of a micro-batch span to the traces it mixes
// (the SDK's own default limit).
const maxLinks = 128

// HeaderCarrier is a propagation.TextMapCarrier over a Kafka message's
// headers: the global propagator injects traceparent, tracestate and
// baggage into them and extracts them back.
type HeaderCarrier struct{ Headers *[]kafka.Header }

var _ propagation.TextMapCarrier = HeaderCarrier{}

// Get returns the value of the first header named key, or "".
func (c HeaderCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the value of the header named key, or adds it.
func (c HeaderCarrier) Set(key, value string) {
	for i, h := range *c.Headers {
		if h.Key == key {
			(*c.Headers)[i].Value = []byte(value)
			return
		}
	}
	*c.Headers = append(*c.Headers, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, len(*c.Headers))
	for i, h := range *c.Headers {
		keys[i] = h.Key
	}
	return keys
}

// StartSend starts the producer span of one Kafka write of n messages to
// topic, a child of the span in ctx, and returns the headers every message
// of the write should carry: the span's trace context (and ctx's baggage)
// through the global propagator, and IngestTimeHeader set to now. The
// messages may share the one slice; it must not be modified. Without
// telemetry it returns ctx, a no-op span and no headers.
func (p *Providers) StartSend(ctx context.Context, topic string, n int, now time.Time) (context.Context, trace.Span, []kafka.Header) {
	if p == nil {
		return ctx, trace.SpanFromContext(context.Background()), nil
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName(topic),
	}
	if n > 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(n))
	}
	ctx, span := p.tracer.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	headers := make([]kafka.Header, 0, 4)
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier{&headers})
	headers = append(headers, kafka.Header{Key: IngestTimeHeader, Value: strconv.AppendInt(nil, now.UnixMilli(), 10)})
	return ctx, span, headers
}

// IngestTime returns the time ingest accepted a message, from its
// IngestTimeHeader.
func IngestTime(headers []kafka.Header) (time.Time, bool) {
	for _, h := range headers {
		if h.Key == IngestTimeHeader {
			// Parsed by hand: featurize reads one per message, and
			// strconv's error path would make each cost an allocation.
			if len(h.Value) == 0 || len(h.Value) > 18 {
				return time.Time{}, false
			}
			var ms int64
			for _, c := range h.Value {
				if c < '0' || c > '9' {
					return time.Time{}, false
				}
				ms = ms*10 + int64(c-'0')
			}
			return time.UnixMilli(ms), true
		}
	}
	return time.Time{}, false
}

// StartProcess starts the consumer span of a micro-batch of msgs read by
// the consumer group. When every message that carries a trace context
// carries the same trace, the span continues it (a child of the earliest
// producer span, with its baggage); when the batch mixes traces, the span
// starts a trace of its own and links to each producer span (at most 128).
// Attributes follow the messaging conventions; the destination, partition
// and offset are set when the batch has only one of them. Without telemetry
// it returns ctx and a no-op span.
func (p *Providers) StartProcess(ctx context.Context, group string, msgs []kafka.Message) (context.Context, trace.Span) {
	if p == nil || len(msgs) == 0 {
		return ctx, trace.SpanFromContext(context.Background())
	}
	prop := otel.GetTextMapPropagator()
	var (
		first    = -1   // the first message with a valid trace context
		firstTP  []byte // its traceparent
		parent   trace.SpanContext
		mixed    bool
		links    []trace.Link
		seen     map[string]bool // other traceparents, once looked at
		topic    = msgs[0].Topic
		part     = msgs[0].Partition
		oneTopic = true
		onePart  = true
	)
	for i := range msgs {
		m := &msgs[i]
		if m.Topic != topic {
			oneTopic, onePart = false, false
		} else if m.Partition != part {
			onePart = false
		}
		// Once the batch is mixed, more links are worth parsing only while
		// there is room and someone will see them.
		if mixed && (len(links) >= maxLinks || !p.exporting) {
			continue
		}
		tp := traceparent(m.Headers)
		if tp == nil || (!mixed && first >= 0 && sameTrace(tp, firstTP)) {
			continue // the messages of a trace share its trace id: no parsing
		}
		if string(tp) == string(firstTP) || seen[string(tp)] {
			continue
		}
		if first >= 0 {
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[string(tp)] = true
		}
		sc := trace.SpanContextFromContext(prop.Extract(context.Background(), HeaderCarrier{&m.Headers}))
		switch {
		case !sc.IsValid():
		case first < 0:
			first, firstTP, parent = i, tp, sc
		case sc.TraceID() == parent.TraceID() && !mixed:
			// another write of the same trace: still one trace
		default:
			if !mixed {
				mixed = true
				links = append(links, trace.Link{SpanContext: parent})
			}
			if len(links) < maxLinks {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}

	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingConsumerGroupName(group),
	}
	name := "process"
	if oneTopic {
		attrs = append(attrs, semconv.MessagingDestinationName(topic))
		name += " " + topic
	}
	if onePart {
		attrs = append(attrs, semconv.MessagingDestinationPartitionID(strconv.Itoa(part)))
	}
	if len(msgs) == 1 {
		attrs = append(attrs, semconv.MessagingKafkaOffset(int(msgs[0].Offset)))
	} else {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(len(msgs)))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	switch {
	case mixed:
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(links...))
	case first >= 0:
		ctx = prop.Extract(ctx, HeaderCarrier{&msgs[first].Headers})
	}
	return p.tracer.Start(ctx, name, opts...)
}

// sameTrace reports whether two W3C traceparent values ("00-<trace id>-
// <span id>-<flags>") name the same trace, without parsing them.
func sameTrace(a, b []byte) bool {
	const from, to = 3, 35 // the trace id's 32 hex digits
	return len(a) >= to && len(b) >= to && string(a[from:to]) == string(b[from:to])
}

// traceparent returns the value of a message's traceparent header, or nil.
func traceparent(headers []kafka.Header) []byte {
	for _, h := range headers {
		if h.Key == "traceparent" {
			return h.Value
		}
	}
	return nil
}

// End ends span, marking it failed when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
