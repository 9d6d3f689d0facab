// Package broker is freshet's side of Kafka: settings, topic names and
// creation, and the producer every event goes through. It owns the kafka-go
// settings whose defaults are traps (acks, batch timeout, partitioner) so no
// caller can get them wrong. It must not know about schemas or Redis.
package broker

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/retry"
)

// Config is the Kafka settings shared by ingest and featurize.
type Config struct {
	Brokers     config.List
	TopicPrefix string
	Partitions  int
	Replication int
	// BatchTimeout and WriteTimeout are the producer's (see
	// RegisterProducerFlags); zero means DefaultBatchTimeout and
	// DefaultWriteTimeout.
	BatchTimeout time.Duration
	WriteTimeout time.Duration
	// Security is TLS and SASL: every connection of every client made
	// from this Config (Transport, Dialer, NewWriter, the topic admin)
	// uses it.
	Security Security
}

// The producer's defaults.
const (
	// DefaultBatchTimeout is how long a produced batch waits to fill:
	// kafka-go's own default, 1s, would add a second to every
	// synchronous write.
	DefaultBatchTimeout = 2 * time.Millisecond
	// DefaultWriteTimeout is how long a produce may take.
	DefaultWriteTimeout = 10 * time.Second
)

// RegisterFlags registers, with their defaults, the settings every Kafka
// user needs: where the brokers are, the topics' names, and how a topic
// freshet creates is laid out. A command that produces adds
// RegisterProducerFlags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Brokers = config.List{"localhost:9092"}
	fs.Var(&c.Brokers, "kafka-brokers", "Kafka seed brokers, comma-separated host:port")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", "freshet.events.", "prefix of each event type's topic; the event name follows it")
	fs.IntVar(&c.Partitions, "partitions", 6, "partitions of a topic freshet creates")
	fs.IntVar(&c.Replication, "replication-factor", 1, "replication factor of a topic freshet creates")
	c.Security.RegisterFlags(fs)
}

// RegisterProducerFlags registers the producer's settings with their
// defaults: for the commands that publish events (ingest and its replay),
// and no other, so that featurize does not offer settings it never uses.
func (c *Config) RegisterProducerFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.BatchTimeout, "kafka-batch-timeout", DefaultBatchTimeout, "how long the producer waits to fill a batch")
	fs.DurationVar(&c.WriteTimeout, "kafka-write-timeout", DefaultWriteTimeout, "how long a produce may take before it fails")
}

// brokerForm is the form of kafka-brokers, which its errors quote.
const brokerForm = "host:port[,host:port...], e.g. kafka1:9092,kafka2:9092"

// Validate reports the first invalid setting of RegisterFlags, as a
// *config.SettingError.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return &config.SettingError{Setting: "kafka-brokers", Value: c.Brokers.String(), Problem: "names no broker", Expected: brokerForm}
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return &config.SettingError{Setting: "kafka-brokers", Value: b, Problem: "is not host:port", Expected: brokerForm}
		}
	}
	if c.Partitions < 1 {
		return &config.SettingError{Setting: "partitions", Value: strconv.Itoa(c.Partitions), Problem: "is less than 1", Expected: "a whole number of at least 1, e.g. 6"}
	}
	if c.Replication < 1 {
		return &config.SettingError{Setting: "replication-factor", Value: strconv.Itoa(c.Replication), Problem: "is less than 1", Expected: "a whole number of at least 1, e.g. 3"}
	}
	return c.Security.Validate()
}

// ValidateProducer reports the first invalid setting of
// RegisterProducerFlags, as a *config.SettingError: a command that
// registers them validates them too.
func (c *Config) ValidateProducer() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"kafka-batch-timeout", c.BatchTimeout}, {"kafka-write-timeout", c.WriteTimeout}} {
		if d.v <= 0 {
			return &config.SettingError{Setting: d.name, Value: d.v.String(), Problem: "is not positive", Expected: "a duration above zero, e.g. 2ms, 10s"}
		}
	}
	return nil
}

// Topic is the topic of an event type.
func (c *Config) Topic(event string) string { return c.TopicPrefix + event }

// Transport is the round tripper of every kafka.Client and kafka.Writer
// on these brokers (see Security.Transport): TLS and SASL as configured,
// and errors that say when either refused (ErrSecurity).
func (c *Config) Transport() kafka.RoundTripper { return c.Security.Transport() }

// Dialer is the dialer of a kafka.Reader on these brokers (see
// Security.Dialer).
func (c *Config) Dialer() *kafka.Dialer { return c.Security.Dialer() }

// Client returns an admin and fetch client on the brokers, through
// Transport.
func (c *Config) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second, Transport: c.Transport()}
}

// EnsureTopics creates the topics that do not exist yet with the configured
// partitions and replication.
func (c *Config) EnsureTopics(ctx context.Context, topics []string) error {
	missing, err := c.missing(ctx, topics)
	if err != nil || len(missing) == 0 {
		return err
	}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range missing {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: c.Partitions, ReplicationFactor: c.Replication})
	}
	res, err := c.Client().CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", missing, err)
	}
	for t, err := range res.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	// Creation is asynchronous on the brokers: wait until every partition
	// has a leader, so the first write does not fail.
	for {
		missing, err := c.missing(ctx, topics)
		if err == nil && len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topics %v: %w", topics, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CheckTopics reports an error unless every topic exists with a leader for
// every partition; it is the readiness check of ingest and featurize.
func (c *Config) CheckTopics(ctx context.Context, topics []string) error {
	missing, err := c.missing(ctx, topics)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("topics not ready: %v", missing)
	}
	return nil
}

func (c *Config) missing(ctx context.Context, topics []string) ([]string, error) {
	client := c.Client()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata from %v: %w", c.Brokers, err)
	}
	found := map[string]bool{}
	offsets := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue
		}
		ok := true
		for _, p := range t.Partitions {
			ok = ok && p.Error == nil && p.Leader.Host != ""
			offsets.Topics[t.Name] = append(offsets.Topics[t.Name], kafka.LastOffsetOf(p.ID))
		}
		found[t.Name] = ok
	}
	// A real broker names a new partition's leader a moment before the
	// leader serves it: ready means every partition answers for its offsets.
	if len(offsets.Topics) > 0 {
		res, err := client.ListOffsets(ctx, offsets)
		if err != nil {
			return nil, fmt.Errorf("kafka offsets from %v: %w", c.Brokers, err)
		}
		for t, parts := range res.Topics {
			for _, p := range parts {
				if p.Error != nil {
					found[t] = false
				}
			}
		}
	}
	var missing []string
	for _, t := range topics {
		if !found[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// NewWriter returns the producer for freshet's topics: every write waits for
// acks from all in-sync replicas, keys are partitioned with murmur2 as the
// Java client does (so other clients agree on an entity's partition), and
// batches wait at most BatchTimeout to fill. A Config without producer
// settings (featurize's, whose tests produce) writes with the defaults.
func (c *Config) NewWriter() *kafka.Writer {
	batch := cmp.Or(c.BatchTimeout, DefaultBatchTimeout) // kafka-go's zero value means 1s
	write := cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, // the zero value means no acks at all
		BatchTimeout: batch,
		BatchSize:    1000,
		MaxAttempts:  3,
		WriteTimeout: write,
		ReadTimeout:  write,
		Compression:  kafka.Lz4,
		Transport:    c.Transport(),
	}
}

// AwaitTopics creates the missing topics (EnsureTopics), each attempt
// bounded by attempt, retrying with backoff while Kafka is unreachable or
// not ready, until ctx ends (its error). Before each retry it calls
// onRetry with the attempt's error, so that the caller logs the real cause.
// A refused TLS handshake or SASL exchange (ErrSecurity) is returned at
// once: settings and credentials do not fix themselves, and a service
// should fail at start saying why rather than wait forever.
func (c *Config) AwaitTopics(ctx context.Context, topics []string, attempt time.Duration, backoff *retry.Backoff, onRetry func(err error, delay time.Duration)) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := c.EnsureTopics(actx, topics)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrSecurity):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if onRetry != nil {
			onRetry(err, backoff.Delay())
		}
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
	}
}
