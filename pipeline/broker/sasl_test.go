package broker

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/retry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// The tests of this file run against the secured listeners of
// `scripts/kafka-local.sh start --sasl-ssl` and skip without them.

// secured is the Config of the SASL_SSL listener with mechanism mech.
func secured(tb testing.TB, k testenv.SecuredKafka, mech string) Config {
	c := defaults(tb)
	c.Brokers = k.SASLBrokers
	c.TopicPrefix = testenv.Unique("broker-sasl.")
	c.Partitions = 2
	c.Security = Security{TLS: true, CA: k.CA, SASL: mech, Username: k.Username, PasswordFile: k.PasswordFile}
	require.NoError(tb, c.Validate())
	return c
}

// TestSASLSSLProduceConsume: topics created, written and read back in a
// consumer group over SASL_SSL with SCRAM-SHA-512, as ingest and
// featurize do.
func TestSASLSSLProduceConsume(t *testing.T) {
	k := testenv.KafkaSASL(t)
	c := secured(t, k, SASLScramSHA512)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := c.Topic("transaction")
	require.NoError(t, c.EnsureTopics(ctx, []string{topic}))
	require.NoError(t, c.CheckTopics(ctx, []string{topic}))
	w := c.NewWriter()
	w.Topic = topic
	want := []kafka.Message{{Key: []byte("u1"), Value: []byte(`{"n":1}`)}, {Key: []byte("u2"), Value: []byte(`{"n":2}`)}}
	require.NoError(t, w.WriteMessages(ctx, want...))
	require.NoError(t, w.Close())

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.Brokers, GroupID: testenv.Unique("broker-sasl-group"), GroupTopics: []string{topic},
		StartOffset: kafka.FirstOffset, Dialer: c.Dialer(), MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	got := map[string]string{}
	for len(got) < len(want) {
		m, err := r.FetchMessage(ctx)
		require.NoError(t, err)
		got[string(m.Key)] = string(m.Value)
		require.NoError(t, r.CommitMessages(ctx, m))
	}
	require.Equal(t, map[string]string{"u1": `{"n":1}`, "u2": `{"n":2}`}, got)
}

// TestSASLMechanisms: the other two mechanisms authenticate too.
func TestSASLMechanisms(t *testing.T) {
	k := testenv.KafkaSASL(t)
	for _, mech := range []string{SASLScramSHA256, SASLPlain} {
		t.Run(mech, func(t *testing.T) {
			c := secured(t, k, mech)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			require.ErrorContains(t, c.CheckTopics(ctx, []string{c.Topic("none")}), "topics not ready", "authenticated: the broker answered")
		})
	}
}

// TestSASLWrongPassword: a wrong password fails in seconds, saying it was
// authentication, as ErrSecurity, without the password; the dialer of a
// consumer group fails the same way.
func TestSASLWrongPassword(t *testing.T) {
	k := testenv.KafkaSASL(t)
	c := secured(t, k, SASLScramSHA512)
	c.Security.PasswordFile, c.Security.Password = "", "wrong-password-123"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := c.EnsureTopics(ctx, []string{c.Topic("a")})
	took := time.Since(start)
	t.Logf("wrong password failed after %v: %v", took, err)
	require.ErrorIs(t, err, ErrSecurity)
	require.ErrorContains(t, err, `SASL authentication failed: the broker refused user "`+k.Username+`" with SCRAM-SHA-512`)
	require.NotContains(t, err.Error(), "wrong-password-123")
	require.Less(t, took, 5*time.Second)

	start = time.Now()
	_, err = c.Dialer().DialContext(ctx, "tcp", k.SASLBrokers[0])
	t.Logf("dialer: wrong password failed after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, kafka.SASLAuthenticationFailed)
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestUntrustedCA: a broker certificate that does not chain to kafka-ca
// fails in seconds, naming the certificate.
func TestUntrustedCA(t *testing.T) {
	k := testenv.KafkaSASL(t)
	c := secured(t, k, SASLScramSHA512)
	c.Security.CA, _ = selfSigned(t, t.TempDir(), "untrusted")
	require.NoError(t, c.Validate())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := c.CheckTopics(ctx, []string{c.Topic("a")})
	took := time.Since(start)
	t.Logf("untrusted CA failed after %v: %v", took, err)
	require.ErrorIs(t, err, ErrSecurity)
	require.ErrorContains(t, err, "TLS handshake: certificate signed by unknown authority")
	require.Less(t, took, 5*time.Second)

	// Without kafka-ca, the system's roots do not know the test CA either.
	c.Security.CA = ""
	require.ErrorContains(t, c.CheckTopics(ctx, []string{c.Topic("a")}), "TLS handshake: certificate signed by unknown authority")
}

// TestSASLWithoutTLS: plaintext to the SASL_SSL listener is no hang: it
// fails at once, saying TLS is expected.
func TestSASLWithoutTLS(t *testing.T) {
	k := testenv.KafkaSASL(t)
	c := secured(t, k, SASLScramSHA512)
	c.Security.TLS, c.Security.CA = false, ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := c.CheckTopics(ctx, []string{c.Topic("a")})
	t.Logf("plaintext to SASL_SSL failed after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, ErrSecurity)
	require.ErrorContains(t, err, "TLS handshake: the broker expects TLS on this listener (set kafka-tls)")
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestMutualTLS: the listener that requires a client certificate accepts
// kafka-cert and kafka-key, and refuses a client without them, saying so.
func TestMutualTLS(t *testing.T) {
	k := testenv.KafkaSASL(t)
	if len(k.MTLSBrokers) == 0 || k.ClientCert == "" {
		t.Skip("FRESHET_TEST_KAFKA_MTLS_BROKERS not set")
	}
	c := defaults(t)
	c.Brokers, c.TopicPrefix = k.MTLSBrokers, testenv.Unique("broker-mtls.")
	c.Security = Security{TLS: true, CA: k.CA, Cert: k.ClientCert, Key: k.ClientKey}
	require.NoError(t, c.Validate())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.EnsureTopics(ctx, []string{c.Topic("a")}))

	c.Security.Cert, c.Security.Key = "", ""
	start := time.Now()
	err := c.CheckTopics(ctx, []string{c.Topic("a")})
	t.Logf("no client certificate failed after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, ErrSecurity)
	require.ErrorContains(t, err, "TLS handshake")
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestPlaintextBesideSASL: the PLAINTEXT listener of the same broker still
// works with the zero Security.
func TestPlaintextBesideSASL(t *testing.T) {
	testenv.KafkaSASL(t)
	if os.Getenv("FRESHET_TEST_KAFKA_BROKERS") == "" {
		t.Skip("FRESHET_TEST_KAFKA_BROKERS not set")
	}
	c := defaults(t)
	c.Brokers, c.TopicPrefix = testenv.Kafka(t), testenv.Unique("broker-plain.")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.EnsureTopics(ctx, []string{c.Topic("a")}))
	w := c.NewWriter()
	w.Topic = c.Topic("a")
	require.NoError(t, w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}))
	require.NoError(t, w.Close())
}

// TestAwaitTopicsFailsOnSecurity: the start-up wait of ingest and featurize
// returns a refused SASL exchange at once instead of retrying it.
func TestAwaitTopicsFailsOnSecurity(t *testing.T) {
	k := testenv.KafkaSASL(t)
	c := secured(t, k, SASLScramSHA512)
	c.Security.PasswordFile, c.Security.Password = "", "wrong-password-456"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	retries := 0
	start := time.Now()
	err := c.AwaitTopics(ctx, []string{c.Topic("a")}, 10*time.Second, &retry.Backoff{}, func(error, time.Duration) { retries++ })
	require.ErrorContains(t, err, "SASL authentication failed")
	require.Zero(t, retries)
	require.Less(t, time.Since(start), 5*time.Second)
}
