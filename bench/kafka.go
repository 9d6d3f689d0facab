package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/bench/internal/synth"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/featurize"
)

// dataset is one topic of the run and the names around it.
type dataset struct {
	Name        string
	Entities    int
	Events      int
	TopicPrefix string
	Group       string
	RedisPrefix string
	// Start is the event time of the first event (epoch ms).
	Start int64
}

// Topic is the dataset's topic.
func (d *dataset) Topic() string { return d.TopicPrefix + "transaction" }

// newDataset names a topic of n events over entities entities, whose last
// event is a minute old: windows at now still hold them.
func (b *bench) newDataset(name string, entities, n int) *dataset {
	const spacing = 10 // ms
	return &dataset{
		Name: name, Entities: entities, Events: n,
		TopicPrefix: fmt.Sprintf("%s.%s.", b.id, name),
		Group:       fmt.Sprintf("%s-%s", b.id, name),
		RedisPrefix: fmt.Sprintf("%s:%s:", b.id, name),
		Start:       time.Now().Add(-time.Minute).UnixMilli() - int64(n)*spacing,
	}
}

// kafkaConfig is the broker settings of the services, on ds's topics.
func (b *bench) kafkaConfig(ds *dataset) broker.Config {
	return broker.Config{
		Brokers: b.env.Brokers, TopicPrefix: ds.TopicPrefix, Partitions: 6, Replication: 1,
		BatchTimeout: 2 * time.Millisecond, WriteTimeout: 10 * time.Second,
		Security: b.env.Kafka,
	}
}

// generate returns ds's events and the messages ingest would publish for
// them: keyed by user, valued by the normalized JSON, timed by the event.
func (b *bench) generate(ds *dataset) ([]events.Event, []kafka.Message, error) {
	g := synth.NewTransactions(b.typ, synth.Spec{Users: ds.Entities, Merchants: ds.Entities, Seed: 7, Start: ds.Start, Cycle: true})
	evs, err := g.Take(ds.Events)
	if err != nil {
		return nil, nil, err
	}
	msgs := make([]kafka.Message, len(evs))
	topic := ds.Topic()
	var buf []byte
	for i := range evs {
		start := len(buf)
		buf = append(buf, evs[i].Key()...)
		mid := len(buf)
		buf = evs[i].AppendJSON(buf)
		msgs[i] = kafka.Message{Topic: topic, Key: buf[start:mid:mid], Value: buf[mid:len(buf):len(buf)], Time: time.UnixMilli(evs[i].Time)}
		if len(buf) > 1<<20 {
			buf = make([]byte, 0, 2<<20)
		}
	}
	return evs, msgs, nil
}

// writeTopic creates ds's topic and writes msgs with the producer ingest
// uses (broker.Config.NewWriter: acks=all, murmur2, lz4), chunk messages
// per WriteMessages call and inflight calls at a time. It returns the
// events/s of the writes alone.
func (b *bench) writeTopic(ctx context.Context, ds *dataset, msgs []kafka.Message, chunk, inflight int) (float64, error) {
	cfg := b.kafkaConfig(ds)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := cfg.EnsureTopics(tctx, []string{ds.Topic()})
	cancel()
	if err != nil {
		return 0, fmt.Errorf("create topic %s: %w", ds.Topic(), err)
	}
	w := cfg.NewWriter()
	defer w.Close()
	// One small write first: metadata and connections are not the
	// writer's steady state.
	if err := w.WriteMessages(ctx, msgs[:1]...); err != nil {
		return 0, fmt.Errorf("write to %s: %w", ds.Topic(), err)
	}
	rest := msgs[1:]
	chunks := make(chan []kafka.Message)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	t := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				if err := w.WriteMessages(ctx, c...); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < len(rest); i += chunk {
		chunks <- rest[i:min(i+chunk, len(rest))]
	}
	close(chunks)
	wg.Wait()
	took := time.Since(t)
	if firstErr != nil {
		return 0, fmt.Errorf("write to %s: %w", ds.Topic(), firstErr)
	}
	return float64(len(rest)) / took.Seconds(), nil
}

// readTopic reads ds's whole topic with the consumer featurize uses
// (featurize.NewReader: a consumer group from the earliest offset) and
// nothing else, and returns its events/s from the first message to the
// last.
func (b *bench) readTopic(ctx context.Context, ds *dataset) (float64, error) {
	cfg := featurizeDefaults()
	cfg.GroupID, cfg.Kafka = ds.Group+"-reader", b.kafkaConfig(ds)
	r := featurize.NewReader(cfg, []string{ds.Topic()})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, b.plan.CatchUp)
	defer cancel()
	var first time.Time
	for n := 0; n < ds.Events; n++ {
		if _, err := r.FetchMessage(rctx); err != nil {
			return 0, fmt.Errorf("read %s: %d of %d messages: %w", ds.Topic(), n, ds.Events, err)
		}
		if n == 0 {
			first = time.Now()
		}
	}
	return float64(ds.Events-1) / time.Since(first).Seconds(), nil
}
