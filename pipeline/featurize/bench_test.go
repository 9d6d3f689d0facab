package featurize

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// exampleMessages makes n normalized transaction messages over the given
// numbers of users and merchants, spaced apart in event time.
func exampleMessages(tb testing.TB, reg *schemas.Registry, topic string, n, users, merchants int, spacing int64) []kafka.Message {
	ev := reg.Events["transaction"]
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([]kafka.Message, n)
	next := make([]int64, 6)
	for i := range msgs {
		raw := fmt.Sprintf(`{"txn_id":"t%d","user_id":"u%d","merchant_id":"m%d","amount":%d.25,"items":%d,"card_present":true,"ts":%d}`,
			i, rng.IntN(users), rng.IntN(merchants), rng.IntN(500), 1+rng.IntN(5), int64(1_717_000_000_000)+int64(i)*spacing)
		e, err := events.Decode(ev, []byte(raw))
		require.NoError(tb, err)
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(e.Key()), Value: e.AppendJSON(nil)}
		// Partitioned by key as ingest's producer does, with offsets
		// increasing per partition.
		msgs[i].Partition = (&kafka.Murmur2Balancer{}).Balance(msgs[i], 0, 1, 2, 3, 4, 5)
		msgs[i].Offset = next[msgs[i].Partition]
		next[msgs[i].Partition]++
	}
	return msgs
}

// BenchmarkProcessBatch measures plan + apply of micro-batches of featurize's
// default size (--batch-size) of the example views into Redis: decoding,
// coalescing and the script.
func BenchmarkProcessBatch(b *testing.B) { benchProcessBatch(b, nil) }

// BenchmarkProcessBatchTelemetry is BenchmarkProcessBatch observed as the
// consume loop observes it (a consumer span per batch, its Redis commands as
// children, the metrics), with messages carrying the headers of ingest's
// writes of 250 events (so a batch links 40 traces): with no exporter (the
// default without OTEL_EXPORTER_OTLP_ENDPOINT), with an exporter but no
// span sampled, and with every span recorded and exported (to an exporter
// that drops them).
func BenchmarkProcessBatchTelemetry(b *testing.B) { testenv.EachTelemetry(b, benchProcessBatch) }

func benchProcessBatch(b *testing.B, tel *telemetry.Providers) {
	// live: events 1ms apart, as a stream of 1000 events/s arrives (an
	// entity's events in a batch share tiles); replay: 1s apart, as a
	// replay of sparse history (they rarely do).
	for _, c := range []struct {
		name    string
		users   int
		spacing int64
	}{{"live/users=1k", 1_000, 1}, {"live/users=10k", 10_000, 1}, {"live/users=100k", 100_000, 1}, {"replay/users=10k", 10_000, 1000}} {
		users := c.users
		b.Run(c.name, func(b *testing.B) {
			reg := testenv.Registry(b)
			_, rc := testenv.Redis(b, tel.InstrumentRedis)
			cfg := defaultConfig(b)
			p, err := NewProcessor(reg, store.NewRedis(rc, testenv.Unique("bench:")), cfg.Kafka, quiet())
			require.NoError(b, err)
			obs := NewObserver(tel, cfg.GroupID, p)
			batch := cfg.BatchSize // the default micro-batch
			msgs := exampleMessages(b, reg, cfg.Kafka.Topic("transaction"), batch*20, users, users/10, c.spacing)
			for i := 0; tel != nil && i < len(msgs); i += 250 {
				_, span, headers := tel.StartSend(context.Background(), msgs[i].Topic, 250, time.Now())
				span.End()
				for j := i; j < i+250 && j < len(msgs); j++ {
					msgs[j].Headers = headers
				}
			}
			b.ResetTimer()
			n := 0
			for i := 0; i < b.N; i++ {
				j := (i % 20) * batch
				chunk := msgs[j : j+batch]
				if i >= 20 { // keep offsets increasing so nothing is a duplicate
					chunk = append([]kafka.Message(nil), chunk...)
					for k := range chunk {
						chunk[k].Offset += int64(i/20) * int64(len(msgs))
					}
				}
				ctx := obs.BatchStart(context.Background(), chunk)
				pb := p.Plan(ctx, chunk)
				err := p.Apply(ctx, pb)
				obs.BatchEnd(ctx, chunk, pb, err)
				require.NoError(b, err)
				n += batch
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkConsume measures featurize end to end from a topic holding the
// events to Redis: fetch, decode, apply, commit, through the store as the
// service opens it (which pings Redis before each commit), with and without
// the commit delay.
func BenchmarkConsume(b *testing.B) {
	const n = 200_000
	reg := testenv.Registry(b)
	url, _ := testenv.Redis(b)
	cfg := defaultConfig(b)
	cfg.Kafka.Brokers = testenv.Kafka(b)
	cfg.Kafka.TopicPrefix = testenv.Unique("bench.")
	topic := cfg.Kafka.Topic("transaction")
	require.NoError(b, cfg.Kafka.EnsureTopics(context.Background(), []string{topic}))
	w := cfg.Kafka.NewWriter()
	w.BatchSize = 5000
	defer w.Close()
	msgs := exampleMessages(b, reg, topic, n, 10_000, 1_000, 1)
	for i := range msgs {
		msgs[i].Partition, msgs[i].Offset = 0, 0
	}
	for i := 0; i < n; i += 20_000 {
		require.NoError(b, w.WriteMessages(context.Background(), msgs[i:i+20_000]...))
	}
	for _, delay := range []time.Duration{0, 2 * time.Second} {
		b.Run("commit-delay="+delay.String(), func(b *testing.B) {
			cfg := cfg
			cfg.CommitDelay = delay
			var rate float64
			for i := 0; i < b.N; i++ {
				cfg.GroupID = testenv.Unique("bench-group-")
				st, err := (&store.Config{URL: url, Prefix: testenv.Unique("bench:")}).Open()
				require.NoError(b, err)
				svc, err := NewService(cfg, reg, st, quiet())
				require.NoError(b, err)
				ctx, cancel := context.WithCancel(context.Background())
				reader := NewReader(cfg, svc.Proc.Topics())
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- NewConsumer(cfg, reader, svc.Proc, quiet()).Run(ctx) }()
				for svc.Proc.Stats.Messages.Load() < n {
					time.Sleep(5 * time.Millisecond)
				}
				rate = n / time.Since(start).Seconds()
				cancel()
				require.NoError(b, <-done)
				_ = reader.Close()
				_ = st.Close()
			}
			b.ReportMetric(rate, "events/s")
		})
	}
}
