package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// Span is what a partition retains: offsets First (the earliest) to Last
// (the next to be written; Last == First when it is empty).
type Span struct {
	Partition   int
	First, Last int64
	// FirstTime is the timestamp of the message at First; zero when the
	// partition is empty or it was not asked for.
	FirstTime time.Time
}

// Messages is how many messages the partition retains.
func (s Span) Messages() int64 { return s.Last - s.First }

// Spans returns what every partition of the topics retains, by topic,
// partitions in order; a topic Kafka does not have is absent. With
// firstTimes it reads each partition's earliest message for its timestamp
// (for freshet's topics, the event time: ingest writes it there).
func (c *Config) Spans(ctx context.Context, topics []string, firstTimes bool) (map[string][]Span, error) {
	client := c.Client()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata from %v: %w", c.Brokers, err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue // not there
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	out := map[string][]Span{}
	if len(req.Topics) == 0 {
		return out, nil
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka offsets from %v: %w", c.Brokers, err)
	}
	for topic, parts := range res.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("kafka offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			s := Span{Partition: p.Partition, First: p.FirstOffset, Last: p.LastOffset}
			if firstTimes && s.Messages() > 0 {
				if s.FirstTime, err = firstTime(ctx, client, topic, s); err != nil {
					return nil, err
				}
			}
			out[topic] = append(out[topic], s)
		}
		slices.SortFunc(out[topic], func(a, b Span) int { return a.Partition - b.Partition })
	}
	return out, nil
}

// firstTime reads the timestamp of the message at s.First.
func firstTime(ctx context.Context, client *kafka.Client, topic string, s Span) (time.Time, error) {
	res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: s.Partition, Offset: s.First,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read the earliest message of %s/%d: %w", topic, s.Partition, err)
	}
	for {
		r, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return time.Time{}, fmt.Errorf("read the earliest message of %s/%d: no message at offset %d", topic, s.Partition, s.First)
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("read the earliest message of %s/%d: %w", topic, s.Partition, err)
		}
		if r.Offset >= s.First { // a batch can start before the offset asked for
			return r.Time.UTC(), nil
		}
	}
}
