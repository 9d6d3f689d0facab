package store

// config.go owns the store's settings (the Redis URL, single server or
// cluster, TLS and credentials, and the key prefix) and opening a client
// from them; tls.go the TLS and password files they name.

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
	// CA is a PEM file of the CA certificates a rediss:// server's
	// certificate must be signed by; empty: the system's roots.
	CA string
	// Cert and Key are PEM files of a client certificate and its key, for
	// a rediss:// server that asks for one; both or neither.
	Cert, Key string
	// PasswordFile holds the password of the URL's user (the URL then
	// holds none), read again for every new connection so a rotated secret
	// needs no restart.
	PasswordFile string
}

// RegisterFlags registers the settings with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "redis-url", "redis://localhost:6379/0", "Redis URL of the online store; a cluster: comma-separated seed URLs or redis+cluster://host:port (passwords are never logged)")
	fs.StringVar(&c.Prefix, "redis-prefix", "freshet:", "prefix of every online store key")
	fs.StringVar(&c.CA, "redis-ca", "", "PEM file of the CA certificates that sign Redis's TLS certificate, for rediss:// URLs (default: the system's roots)")
	fs.StringVar(&c.Cert, "redis-cert", "", "PEM file of a client certificate for a rediss:// Redis that asks for one (with --redis-key)")
	fs.StringVar(&c.Key, "redis-key", "", "PEM file of the private key of --redis-cert")
	fs.StringVar(&c.PasswordFile, "redis-password-file", "", "file holding the password of the Redis user named in --redis-url (which then holds none); a final newline is not part of it")
}

// URLForms is the form of a redis-url, which its errors quote.
const URLForms = "redis://host:6379/0, rediss://host:6380/0 (TLS), or a cluster: redis+cluster://host:7000 or redis://h1:7000,redis://h2:7001"

// Validate reports the first invalid setting. An invalid URL is a
// *config.SettingError that never shows its password.
//
// The files it names are read: a CA file that is not PEM, a certificate
// without its key, a password both in the URL and in a file, TLS files
// with a plain redis:// URL are each refused.
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
// wait for Redis to answer: callers check readiness with Ping. Each new
// connection reads INFO server, so that a restarted server is noticed
// (Online.Restarts): what featurize needs.
func (c *Config) Open(hooks ...Hook) (*Redis, error) { return c.open(true, hooks) }

// OpenReader is Open for a process that only reads (serve, freshet plan):
// it asks no INFO, which it would not act on and which serve's read-only
// ACL user may not run, so its connections leave no entry in ACL LOG.
// Restarts stays 0.
func (c *Config) OpenReader(hooks ...Hook) (*Redis, error) { return c.open(false, hooks) }

func (c *Config) open(watchRestarts bool, hooks []Hook) (*Redis, error) {
	opt, err := c.options()
	if err != nil {
		return nil, err // a *config.SettingError, naming redis-url
	}
	if opt.DialerRetries == 0 {
		// go-redis redials 5 times by default: with Redis down, a lookup
		// would wait half a second for its 503.
		opt.DialerRetries = 1
	}
	// go-redis names itself to every connection with CLIENT SETINFO; a
	// least-privilege user would need +client|setinfo for it, which Redis
	// 7.0 does not know (docs/operations.md).
	opt.DisableIdentity = true
	var watch *restartWatch
	if watchRestarts {
		watch = newRestartWatch(time.Now)
		opt.OnConnect = watch.onConnect
	}
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
	tlsSeeds := 0
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
		if o.TLSConfig != nil {
			tlsSeeds++
		}
		opt.Addrs = append(opt.Addrs, o.Addr)
		opt.IsClusterMode = opt.IsClusterMode || cluster
	}
	if (len(opt.Addrs) > 1 || opt.IsClusterMode) && opt.DB != 0 {
		return nil, badURL(c.URL, fmt.Sprintf("names database %d, but a Redis Cluster has only database 0", opt.DB))
	}
	if err := c.secure(opt, tlsSeeds); err != nil {
		return nil, err
	}
	return opt, nil
}

// secure completes opt with the TLS files and the password file, given how
// many of the URL's seeds are rediss://.
func (c *Config) secure(opt *redis.UniversalOptions, tlsSeeds int) error {
	if tlsSeeds != 0 && tlsSeeds != len(opt.Addrs) {
		return badURL(c.URL, "mixes redis:// and rediss:// seeds")
	}
	if err := c.checkFiles(opt.TLSConfig != nil, opt.Password != ""); err != nil {
		return err
	}
	if opt.Username != "" && opt.Password == "" && c.PasswordFile == "" {
		return badURL(c.URL, fmt.Sprintf("names the user %q but no password (give it in the URL or in redis-password-file)", opt.Username))
	}
	if opt.TLSConfig != nil {
		cfg, err := c.tlsConfig(opt.TLSConfig)
		if err != nil {
			return err
		}
		opt.TLSConfig, opt.Dialer = cfg, tlsDialer(cfg, orDefaultDial(opt.DialTimeout))
	}
	if c.PasswordFile != "" {
		user, path := opt.Username, c.PasswordFile
		opt.CredentialsProviderContext = func(context.Context) (string, string, error) {
			pw, err := readPassword(path)
			return user, pw, err
		}
	}
	return nil
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
