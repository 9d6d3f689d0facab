package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestRunStopsOnRefusedCredentials: a wrong SASL password stops ingest at
// start with the reason, instead of a retry loop that never ends.
func TestRunStopsOnRefusedCredentials(t *testing.T) {
	k := testenv.KafkaSASL(t)
	cfg := kafkaConfig(k.SASLBrokers)
	cfg.Security = broker.Security{TLS: true, CA: k.CA, SASL: broker.SASLScramSHA512, Username: k.Username, Password: "not-the-password"}
	require.NoError(t, cfg.Security.Validate())
	srv := NewServer(testenv.Registry(t), nil, Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil)
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Run(ctx, l)
	require.ErrorIs(t, err, broker.ErrSecurity)
	require.ErrorContains(t, err, "SASL authentication failed")
	require.NotContains(t, err.Error(), "not-the-password")
	require.NoError(t, ctx.Err(), "it stopped on its own, not at the test's deadline")
}
