package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

func TestConfigURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		cluster bool
		addrs   []string
		err     string
	}{
		{url: "redis://localhost:6379/0", addrs: []string{"localhost:6379"}},
		{url: "redis://:pw@h:1/2", addrs: []string{"h:1"}},
		{url: "redis://h1:7000,redis://h2:7001, redis://h3:7002", cluster: true, addrs: []string{"h1:7000", "h2:7001", "h3:7002"}},
		{url: "redis+cluster://h1:7000", cluster: true, addrs: []string{"h1:7000"}},
		{url: "rediss+cluster://:pw@h1:7000", cluster: true, addrs: []string{"h1:7000"}},
		{url: "redis://h1:7000/3,redis://h2:7001/3", err: "only database 0"},
		{url: "http://h:1", err: "invalid URL scheme"},
		{url: "", err: "redis-url: must not be empty"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c := Config{URL: tc.url, Prefix: "p:"}
			err := c.Validate()
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			r, err := c.Open()
			require.NoError(t, err)
			defer r.Close()
			_, isCluster := r.Client().(*redis.ClusterClient)
			require.Equal(t, tc.cluster, isCluster)
			opt, err := c.options()
			require.NoError(t, err)
			require.Equal(t, tc.addrs, opt.Addrs)
		})
	}
}

// TestSetLoggerQuietsGoRedis: go-redis's messages about failed dials go to
// the structured log at debug level, not to stderr.
func TestSetLoggerQuietsGoRedis(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf bytes.Buffer
		SetLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})))
		c := Config{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t)), Prefix: "p:"}
		r, err := c.Open()
		require.NoError(t, err)
		require.Error(t, r.Ping(context.Background()), "nothing listens there")
		require.NoError(t, r.Close())
		if level == slog.LevelDebug {
			require.Contains(t, buf.String(), `"level":"DEBUG","msg":"go-redis: `)
		} else {
			require.Empty(t, buf.String())
		}
	}
	SetLogger(slog.New(slog.DiscardHandler))
}
