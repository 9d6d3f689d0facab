package ingest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// testPartitions is the partition count of the test topics.
const testPartitions = 3

// kafkaConfig returns settings for brokers with a topic prefix of its own.
func kafkaConfig(brokers []string) broker.Config {
	return broker.Config{
		Brokers:      brokers,
		TopicPrefix:  testenv.Unique("freshet-ingest-test."),
		Partitions:   testPartitions,
		Replication:  1,
		BatchTimeout: 2 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
	}
}

// newPublisher returns a Publisher on cfg whose writer is closed at cleanup.
func newPublisher(tb testing.TB, cfg broker.Config) *Publisher {
	tb.Helper()
	w := cfg.NewWriter()
	tb.Cleanup(func() { _ = w.Close() })
	return NewPublisher(cfg, w)
}

// ensureTopics creates the topics of every event type of reg.
func ensureTopics(tb testing.TB, cfg broker.Config, reg *schemas.Registry) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var topics []string
	for _, name := range reg.EventNames() {
		topics = append(topics, cfg.Topic(name))
	}
	require.NoError(tb, cfg.EnsureTopics(ctx, topics))
}

// endOffsets returns the end offset of every partition of topic.
func endOffsets(tb testing.TB, cfg broker.Config, topic string) []int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var reqs []kafka.OffsetRequest
	for p := range testPartitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	c := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	require.NoError(tb, err)
	out := make([]int64, testPartitions)
	require.Len(tb, res.Topics[topic], testPartitions)
	for _, po := range res.Topics[topic] {
		require.NoError(tb, po.Error)
		out[po.Partition] = po.LastOffset
	}
	return out
}

// readTopic returns every message of topic, by partition, in offset order.
func readTopic(tb testing.TB, cfg broker.Config, topic string) [][]kafka.Message {
	tb.Helper()
	ends := endOffsets(tb, cfg, topic)
	out := make([][]kafka.Message, testPartitions)
	for p, end := range ends {
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   cfg.Brokers,
			Topic:     topic,
			Partition: p,
			MinBytes:  1,
			MaxBytes:  16 << 20,
			MaxWait:   100 * time.Millisecond,
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for int64(len(out[p])) < end {
			m, err := r.ReadMessage(ctx)
			require.NoError(tb, err, "read %s partition %d at %d of %d", topic, p, len(out[p]), end)
			out[p] = append(out[p], m)
		}
		cancel()
		require.NoError(tb, r.Close())
	}
	return out
}

// partitionOf is the partition murmur2 gives key, as the Java client does.
func partitionOf(key []byte) int {
	ps := make([]int, testPartitions)
	for i := range ps {
		ps[i] = i
	}
	return kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: key}, ps...)
}

// closedAddr returns a loopback address nothing listens on any more.
func closedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	addr := l.Addr().String()
	require.NoError(tb, l.Close())
	return addr
}
