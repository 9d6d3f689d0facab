package store

// config.go owns the store's settings (the Redis URL, single server or
// cluster, and the key prefix) and opening a client from them.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/freshet-ml/freshet/pipeline/config"
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

// URLForms is the form of a redis-url, which its errors quote.
const URLForms = "redis://host:6379/0, rediss://host:6380/0 (TLS), or a cluster: redis+cluster://host:7000 or redis://h1:7000,redis://h2:7001"

// Validate reports the first invalid setting. An invalid URL is a
// *config.SettingError that never shows its password.
func (c *Config) Validate() error {
	if _, err := c.options(); err != nil {
		return err
	}
	if c.Prefix == "" {
		return &config.SettingError{Setting: "redis-prefix", Problem: "is empty", Expected: "a prefix such as freshet: (keys would collide with other data)"}
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
		return nil, err // a *config.SettingError, naming redis-url
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
	if strings.TrimSpace(c.URL) == "" {
		return nil, badURL(c.URL, "is empty")
	}
	seeds := strings.Split(c.URL, ",")
	var opt *redis.UniversalOptions
	for i, seed := range seeds {
		u := strings.TrimSpace(seed)
		cluster := false
		for _, scheme := range []string{"redis", "rediss"} {
			if rest, ok := strings.CutPrefix(u, scheme+"+cluster://"); ok {
				u, cluster = scheme+"://"+rest, true
			}
		}
		o, err := redis.ParseURL(u)
		if problem := urlProblem(u, err); problem != "" {
			e := badURL(seed, problem)
			if len(seeds) > 1 {
				e.Problem += fmt.Sprintf(" (seed %d of %d)", i+1, len(seeds))
			}
			return nil, e
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
	if (len(opt.Addrs) > 1 || opt.IsClusterMode) && opt.DB != 0 {
		return nil, badURL(c.URL, fmt.Sprintf("names database %d, but a Redis Cluster has only database 0", opt.DB))
	}
	return opt, nil
}

// badURL is the error of a redis-url; config.SettingError masks its
// password.
func badURL(value, problem string) *config.SettingError {
	return &config.SettingError{Setting: "redis-url", Value: value, Problem: problem, Expected: URLForms}
}

// urlProblem says what is wrong with u, given go-redis's error parsing it,
// or "" when nothing is. It never quotes u: url.Parse's errors hold the
// whole URL, password included.
func urlProblem(u string, err error) string {
	if !strings.Contains(u, "://") {
		// go-redis takes "redis:6379" for a URL without a host, and
		// would connect to localhost:6379.
		return "is not a URL"
	}
	p, perr := url.Parse(u)
	switch {
	case perr == nil && p.Scheme != "redis" && p.Scheme != "rediss" && p.Scheme != "unix":
		return "has the scheme " + p.Scheme + ", not redis or rediss"
	case err == nil && p.Scheme != "unix" && p.Host == "":
		return "has no host" // go-redis would use localhost
	case err == nil:
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return "is not a valid Redis URL: " + strings.TrimPrefix(err.Error(), "redis: ")
}

// SetLogger sends go-redis's own messages (which otherwise go to stderr
// unformatted, one per failed dial while Redis is down) to log at debug
// level: the store's callers already log each failure that matters once.
// go-redis has one logger per process.
func SetLogger(log *slog.Logger) { redis.SetLogger(redisLog{log}) }

type redisLog struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}
