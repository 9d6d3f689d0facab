package featurize

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestRunStopsOnRefusedCredentials: a wrong SASL password stops featurize
// at start with the reason, instead of waiting for Kafka forever.
func TestRunStopsOnRefusedCredentials(t *testing.T) {
	k := testenv.KafkaSASL(t)
	_, rc := testenv.Redis(t)
	cfg := defaultConfig(t)
	cfg.Kafka.Brokers = k.SASLBrokers
	cfg.Kafka.Security = broker.Security{TLS: true, CA: k.CA, SASL: broker.SASLScramSHA512, Username: k.Username, Password: "not-the-password"}
	require.NoError(t, cfg.Kafka.Security.Validate())
	svc, err := NewService(cfg, testenv.Registry(t), store.NewRedis(rc, testenv.Unique("featurize-sec:")), quiet())
	require.NoError(t, err)
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = svc.Run(ctx, l)
	require.ErrorIs(t, err, broker.ErrSecurity)
	require.ErrorContains(t, err, "SASL authentication failed")
	require.NotContains(t, err.Error(), "not-the-password")
	require.NoError(t, ctx.Err(), "it stopped on its own, not at the test's deadline")
}
