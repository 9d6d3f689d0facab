package featurize

// config.go owns featurize's settings: their flags, defaults and checks.

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
)

// Config is featurize's settings. RegisterFlags gives the defaults.
type Config struct {
	// HTTPAddr is the listen address of the health, stats and metrics
	// endpoints.
	HTTPAddr string
	// GroupID is the Kafka consumer group; watermarks are saved under it.
	GroupID string
	// BatchSize is the most messages of one micro-batch.
	BatchSize int
	// BatchWait is how long a micro-batch waits to fill once it has a
	// message.
	BatchWait time.Duration
	// CommitDelay is how long a batch's offsets wait, once the batch is in
	// the store, before they are committed (see Consumer).
	CommitDelay time.Duration
	// CatchUpRate is the most events a second one featurize applies to a
	// view being recomputed from Kafka (0: no limit), so the live path
	// keeps Redis's attention and its freshness.
	CatchUpRate float64
	// Kafka is the brokers and how topics are named and created.
	Kafka broker.Config
	// Times is which event times are plausible: an event outside is
	// counted as rejected_time and skipped, and never moves a watermark.
	// Other producers than ingest write to the topics too.
	Times events.TimeRule
}

// RegisterFlags registers the settings with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8082", "address of the health, stats and metrics endpoints")
	fs.StringVar(&c.GroupID, "group-id", "freshet-featurize", "Kafka consumer group")
	// Under a backlog the batch fills at once: the bigger it is, the more
	// events of an entity share one read and one write (BenchmarkProcessBatch,
	// 10k users: 41k events/s at 10000, 96k at 50000). Live, batch-wait ends
	// a batch long before, so the size costs no freshness.
	fs.IntVar(&c.BatchSize, "batch-size", 50000, "most events applied to the store in one micro-batch")
	fs.DurationVar(&c.BatchWait, "batch-wait", 20*time.Millisecond, "longest a micro-batch waits to fill once it has an event")
	fs.DurationVar(&c.CommitDelay, "commit-delay", 2*time.Second, "how long offsets wait after their batch is in Redis before they are committed to Kafka: longer than Redis's fsync interval (1s under appendfsync everysec), so a hard Redis crash cannot lose a write whose offset Kafka no longer redelivers")
	fs.Float64Var(&c.CatchUpRate, "catch-up-rate", 20000, "most events a second applied to a view being recomputed from Kafka after a definitions change (0: no limit), so live updates keep their freshness")
	c.Kafka.RegisterFlags(fs)
	c.Times.RegisterFlags(fs)
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if err := c.Times.Validate(); err != nil {
		return err
	}
	if c.GroupID == "" {
		return errors.New("group-id: must not be empty")
	}
	if c.BatchSize < 1 {
		return fmt.Errorf("batch-size: %d, must be at least 1", c.BatchSize)
	}
	if c.BatchWait <= 0 {
		return fmt.Errorf("batch-wait: %s, must be positive", c.BatchWait)
	}
	if c.CommitDelay < 0 || c.CommitDelay > 8*time.Second {
		return fmt.Errorf("commit-delay: %s, must be between 0 and 8s (shutdown waits it out within 10s)", c.CommitDelay)
	}
	if c.CatchUpRate < 0 {
		return fmt.Errorf("catch-up-rate: %g, must be 0 (no limit) or more events a second", c.CatchUpRate)
	}
	return c.Kafka.Validate()
}
