package main

import (
	"context"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// cleanup removes this run's keys and topics from servers it reused (the
// ones it started are stopped and their data removed by Env.Close).
func (b *bench) cleanup(ctx context.Context) {
	if b.env.RedisStarted && b.env.KafkaStarted {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if !b.env.RedisStarted {
		n := 0
		iter := b.env.Redis.Scan(ctx, 0, b.id+":*", 10_000).Iterator()
		var keys []string
		flush := func() {
			if len(keys) > 0 {
				_ = b.env.Redis.Unlink(ctx, keys...).Err()
				n += len(keys)
				keys = keys[:0]
			}
		}
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				flush()
			}
		}
		flush()
		b.log.Info("removed this run's keys from the reused Redis", "keys", n)
	}
	if !b.env.KafkaStarted {
		c := &kafka.Client{Addr: kafka.TCP(b.env.Brokers...), Timeout: 30 * time.Second, Transport: b.env.Kafka.Transport()}
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			b.log.Warn("list topics to remove", "error", err)
			return
		}
		var topics []string
		for _, t := range md.Topics {
			if strings.HasPrefix(t.Name, b.id+".") {
				topics = append(topics, t.Name)
			}
		}
		if len(topics) > 0 {
			if _, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics}); err != nil {
				b.log.Warn("remove this run's topics", "error", err)
			} else {
				b.log.Info("removed this run's topics from the reused Kafka", "topics", len(topics))
			}
		}
	}
}
