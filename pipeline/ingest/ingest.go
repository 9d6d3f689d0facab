// Package ingest validates raw events against their schemas and publishes
// them to Kafka, one topic per event type, keyed by the event's key field.
// It owns the ingest HTTP API (POST /v1/events/{event}, /healthz, /readyz)
// and the replay of event files.
//
// An event is reported as accepted only once Kafka has acknowledged it from
// every in-sync replica; a request or a replay batch is validated as a whole
// before anything of it is published. The package must not know Redis: what
// happens to events after Kafka is featurize's business.
package ingest

import (
	"errors"
	"flag"
	"fmt"
	"net"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
)

// DefaultMaxBody is the default largest request body, in bytes.
const DefaultMaxBody = 16 << 20

// DefaultMaxEvents is the default of the most events one request may
// hold: a full body of typical events (about 150 bytes each), while a body
// of tiny ones ("{}" a line) stays at some 50 MB of decoded events.
const DefaultMaxEvents = 100_000

// Config is the settings of the ingest service.
type Config struct {
	// HTTPAddr is the address the HTTP API listens on.
	HTTPAddr string
	// MaxBody is the largest request body accepted, in bytes; larger
	// requests get 413.
	MaxBody int64
	// MaxEvents is the most events one request may hold; more get 413,
	// refused while the body is split.
	MaxEvents int
	// Kafka is where events are published.
	Kafka broker.Config
	// Times is which event times are plausible: an event outside is
	// refused (422, or an invalid row of a replay) rather than published
	// to poison its partition's watermark.
	Times events.TimeRule
}

// RegisterFlags registers the settings with their defaults: the HTTP
// API's, and what publishing takes (RegisterPublishFlags).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8081", "address of the ingest HTTP API")
	fs.Int64Var(&c.MaxBody, "max-body", DefaultMaxBody, "largest request body accepted, in bytes")
	fs.IntVar(&c.MaxEvents, "max-events", DefaultMaxEvents, "most events one request may hold (413 beyond)")
	c.RegisterPublishFlags(fs)
}

// RegisterPublishFlags registers, with their defaults, the settings of
// publishing events, which `ingest replay` shares with the service: Kafka
// and its producer, and which event times are plausible.
func (c *Config) RegisterPublishFlags(fs *flag.FlagSet) {
	c.Kafka.RegisterFlags(fs)
	c.Kafka.RegisterProducerFlags(fs)
	c.Times.RegisterFlags(fs)
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.HTTPAddr == "" {
		return errors.New("http-addr: an address to listen on is required, e.g. :8081")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("http-addr: %q is not [host]:port", c.HTTPAddr)
	}
	if c.MaxBody <= 0 {
		return fmt.Errorf("max-body: %d, must be a positive number of bytes", c.MaxBody)
	}
	if c.MaxEvents <= 0 {
		return fmt.Errorf("max-events: %d, must be at least 1", c.MaxEvents)
	}
	return c.ValidatePublish()
}

// ValidatePublish reports the first invalid setting of
// RegisterPublishFlags.
func (c *Config) ValidatePublish() error {
	if err := c.Times.Validate(); err != nil {
		return err
	}
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	return c.Kafka.ValidateProducer()
}
