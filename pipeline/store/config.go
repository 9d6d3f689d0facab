package store

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is the online store's settings.
type Config struct {
	// URL is redis://[:password@]host:port/db (rediss:// for TLS). A Redis
	// Cluster is named by several comma-separated seed URLs, or by one
	// seed with the scheme redis+cluster:// (rediss+cluster:// for TLS).
	URL string
	// Prefix starts every key freshet writes.
	Prefix string
}

// RegisterFlags registers the settings with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "redis-url", "redis://localhost:6379/0", "Redis URL of the online store; a cluster: comma-separated seed URLs or redis+cluster://host:port (passwords are never logged)")
	fs.StringVar(&c.Prefix, "redis-prefix", "freshet:", "prefix of every online store key")
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("redis-url: must not be empty")
	}
	if _, err := c.options(); err != nil {
		return fmt.Errorf("redis-url: %w", err)
	}
	if c.Prefix == "" {
		return errors.New("redis-prefix: must not be empty (keys would collide with other data)")
	}
	return nil
}

// Hook is applied to the go-redis client when it is created, before any
// command: telemetry's InstrumentRedis is one.
type Hook func(redis.UniversalClient) error

// Open connects to the store, applying each hook to the client. It does not
// wait for Redis to answer: callers check readiness with Ping.
func (c *Config) Open(hooks ...Hook) (*Redis, error) {
	opt, err := c.options()
	if err != nil {
		return nil, fmt.Errorf("redis-url: %w", err)
	}
	if opt.DialerRetries == 0 {
		// go-redis redials 5 times by default: with Redis down, a lookup
		// would wait half a second for its 503.
		opt.DialerRetries = 1
	}
	watch := newRestartWatch(time.Now)
	opt.OnConnect = watch.onConnect
	var client redis.UniversalClient
	if len(opt.Addrs) > 1 || opt.IsClusterMode {
		client = redis.NewClusterClient(opt.Cluster())
	} else {
		client = redis.NewClient(opt.Simple())
	}
	for _, h := range hooks {
		if err := h(client); err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("redis client hook: %w", err)
		}
	}
	r := NewRedis(client, c.Prefix)
	r.watch = watch
	return r, nil
}

// options parses URL, for a single server or a cluster.
func (c *Config) options() (*redis.UniversalOptions, error) {
	var opt *redis.UniversalOptions
	for _, u := range strings.Split(c.URL, ",") {
		u = strings.TrimSpace(u)
		cluster := false
		for _, scheme := range []string{"redis", "rediss"} {
			if rest, ok := strings.CutPrefix(u, scheme+"+cluster://"); ok {
				u, cluster = scheme+"://"+rest, true
			}
		}
		o, err := redis.ParseURL(u)
		if err != nil {
			return nil, err
		}
		if opt == nil {
			opt = &redis.UniversalOptions{
				Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig,
				DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
				PoolSize: o.PoolSize, MaxRetries: o.MaxRetries, DialerRetries: o.DialerRetries,
			}
		}
		opt.Addrs = append(opt.Addrs, o.Addr)
		opt.IsClusterMode = opt.IsClusterMode || cluster
	}
	if opt == nil {
		return nil, errors.New("no address")
	}
	if (len(opt.Addrs) > 1 || opt.IsClusterMode) && opt.DB != 0 {
		return nil, fmt.Errorf("a Redis Cluster has only database 0, not %d", opt.DB)
	}
	return opt, nil
}

// SetLogger sends go-redis's own messages (which otherwise go to stderr
// unformatted, one per failed dial while Redis is down) to log at debug
// level: the store's callers already log each failure that matters once.
// go-redis has one logger per process.
func SetLogger(log *slog.Logger) { redis.SetLogger(redisLog{log}) }

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}
