package broker

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// defaults is a producer's settings (ingest's) with their defaults.
func defaults(tb testing.TB) Config {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	c.RegisterProducerFlags(fs)
	require.NoError(tb, fs.Parse(nil))
	return c
}

// TestConsumerFlags: RegisterFlags alone (featurize's) offers no producer
// setting, validates, and still writes with the safe producer defaults.
func TestConsumerFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	require.Equal(t, []string{"kafka-brokers", "kafka-ca", "kafka-cert", "kafka-key", "kafka-password", "kafka-password-file",
		"kafka-sasl", "kafka-tls", "kafka-username", "partitions", "replication-factor", "topic-prefix"}, names)
	require.NoError(t, c.Validate())
	w := c.NewWriter()
	require.Equal(t, DefaultBatchTimeout, w.BatchTimeout, "not kafka-go's 1s")
	require.Equal(t, DefaultWriteTimeout, w.WriteTimeout)

	c = defaults(t)
	c.BatchTimeout, c.WriteTimeout = 5*time.Millisecond, time.Second
	w = c.NewWriter()
	require.Equal(t, 5*time.Millisecond, w.BatchTimeout)
	require.Equal(t, time.Second, w.WriteTimeout)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, `kafka-brokers: "" names no broker; expected host:port[,host:port...], e.g. kafka1:9092,kafka2:9092`},
		{"bad broker", func(c *Config) { c.Brokers = []string{"k1:9092", "kafka"} }, `kafka-brokers: "kafka" is not host:port; expected host:port[,host:port...], e.g. kafka1:9092,kafka2:9092`},
		{"no port", func(c *Config) { c.Brokers = []string{"kafka:"} }, `kafka-brokers: "kafka:" is not host:port`},
		{"a URL", func(c *Config) { c.Brokers = []string{"PLAINTEXT://kafka:9092"} }, `kafka-brokers: "PLAINTEXT://kafka:9092" is not host:port`},
		{"partitions", func(c *Config) { c.Partitions = 0 }, `partitions: "0" is less than 1; expected a whole number of at least 1, e.g. 6`},
		{"replication", func(c *Config) { c.Replication = 0 }, `replication-factor: "0" is less than 1; expected a whole number of at least 1, e.g. 3`},
		{"batch timeout", func(c *Config) { c.BatchTimeout = 0 }, `kafka-batch-timeout: "0s" is not positive; expected a duration above zero, e.g. 2ms, 10s`},
		{"write timeout", func(c *Config) { c.WriteTimeout = -time.Second }, `kafka-write-timeout: "-1s" is not positive`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults(t)
			tc.mod(&c)
			err := errors.Join(c.Validate(), c.ValidateProducer())
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			var se *config.SettingError
			require.ErrorAs(t, err, &se, "a setting error, which names its variable when one set it")
		})
	}
}

func TestWriterDefaultsAreSafe(t *testing.T) {
	c := defaults(t)
	w := c.NewWriter()
	require.Equal(t, kafka.RequireAll, w.RequiredAcks, "acks from all in-sync replicas, not the zero value (none)")
	require.Equal(t, 2*time.Millisecond, w.BatchTimeout, "not kafka-go's 1s default")
	require.IsType(t, &kafka.Murmur2Balancer{}, w.Balancer, "partitioned as the Java client does")
}

func TestEnsureTopics(t *testing.T) {
	c := defaults(t)
	c.Brokers = testenv.Kafka(t)
	c.TopicPrefix = testenv.Unique("broker-test.")
	c.Partitions = 4
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics := []string{c.Topic("a"), c.Topic("b")}
	require.ErrorContains(t, c.CheckTopics(ctx, topics), "topics not ready")
	require.NoError(t, c.EnsureTopics(ctx, topics))
	require.NoError(t, c.EnsureTopics(ctx, topics), "creating existing topics is a no-op")
	require.NoError(t, c.CheckTopics(ctx, topics))
	conn, err := kafka.DialContext(ctx, "tcp", c.Brokers[0])
	require.NoError(t, err)
	defer conn.Close()
	parts, err := conn.ReadPartitions(topics[0])
	require.NoError(t, err)
	require.Len(t, parts, 4)
}

func TestUnreachable(t *testing.T) {
	c := defaults(t)
	c.Brokers = []string{"127.0.0.1:1"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.ErrorContains(t, c.CheckTopics(ctx, []string{"x"}), "kafka metadata")
}
