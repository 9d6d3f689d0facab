package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

func TestConfigURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		cluster bool
		addrs   []string
	}{
		{url: "redis://localhost:6379/0", addrs: []string{"localhost:6379"}},
		{url: "redis://:pw@h:1/2", addrs: []string{"h:1"}},
		{url: "redis://h1:7000,redis://h2:7001, redis://h3:7002", cluster: true, addrs: []string{"h1:7000", "h2:7001", "h3:7002"}},
		{url: "redis+cluster://h1:7000", cluster: true, addrs: []string{"h1:7000"}},
		{url: "rediss+cluster://:pw@h1:7000", cluster: true, addrs: []string{"h1:7000"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c := Config{URL: tc.url, Prefix: "p:"}
			require.NoError(t, c.Validate())
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

// TestConfigErrors: a bad setting names itself, quotes the value with its
// password masked, says what is wrong and shows the expected form.
func TestConfigErrors(t *testing.T) {
	forms := "; expected " + URLForms
	for _, tc := range []struct {
		name, url, prefix, want string
	}{
		{"not a URL", "bogus", "p:", `redis-url: "bogus" is not a URL` + forms},
		{"host:port only", "redis:6379", "p:", `redis-url: "redis:6379" is not a URL` + forms},
		{"empty", "", "p:", `redis-url: "" is empty` + forms},
		{"no host", "redis:///0", "p:", `redis-url: "redis:///0" has no host` + forms},
		{"scheme", "http://h:1", "p:", `redis-url: "http://h:1" has the scheme http, not redis or rediss` + forms},
		{"port", "redis://h:x/0", "p:", `redis-url: "redis://h:x/0" is not a valid Redis URL: invalid port ":x" after host` + forms},
		{"port, password masked", "redis://:hunter2@h:x/0", "p:", `redis-url: "redis://:xxxxx@h:x/0" is not a valid Redis URL: invalid port ":x" after host` + forms},
		{"database", "redis://h:6379/zero", "p:", `redis-url: "redis://h:6379/zero" is not a valid Redis URL: invalid database number: "zero"` + forms},
		{"second seed", "redis://:hunter2@h1:7000,h2:7001", "p:", `redis-url: "h2:7001" is not a URL (seed 2 of 2)` + forms},
		{"cluster database", "redis://:hunter2@h1:7000/3,redis://h2:7001/3", "p:",
			`redis-url: "redis://:xxxxx@h1:7000/3,redis://h2:7001/3" names database 3, but a Redis Cluster has only database 0` + forms},
		{"prefix", "redis://h:1/0", "", `redis-prefix: "" is empty; expected a prefix such as freshet: (keys would collide with other data)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{URL: tc.url, Prefix: tc.prefix}
			err := c.Validate()
			require.EqualError(t, err, tc.want)
			var se *config.SettingError
			require.ErrorAs(t, err, &se)
			if tc.prefix != "" {
				_, err = c.Open()
				require.EqualError(t, err, tc.want, "Open says what Validate says")
			}
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
