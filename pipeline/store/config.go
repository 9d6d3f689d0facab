package store

import (
	"errors"
	"flag"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Config is the online store's settings.
type Config struct {
	// URL is redis://[:password@]host:port/db (rediss:// for TLS).
	URL string
	// Prefix starts every key freshet writes.
	Prefix string
}

// RegisterFlags registers the settings with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "redis-url", "redis://localhost:6379/0", "Redis URL of the online store (the password in it is never logged)")
	fs.StringVar(&c.Prefix, "redis-prefix", "freshet:", "prefix of every online store key")
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("redis-url: must not be empty")
	}
	if _, err := redis.ParseURL(c.URL); err != nil {
		return fmt.Errorf("redis-url: %w", err)
	}
	if c.Prefix == "" {
		return errors.New("redis-prefix: must not be empty (keys would collide with other data)")
	}
	return nil
}

// Open connects to the store. It does not wait for Redis to answer: callers
// check readiness with Ping.
func (c *Config) Open() (*Redis, error) {
	opt, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("redis-url: %w", err)
	}
	if opt.DialerRetries == 0 {
		// go-redis redials 5 times by default: with Redis down, a lookup
		// would wait half a second for its 503.
		opt.DialerRetries = 1
	}
	return NewRedis(redis.NewClient(opt), c.Prefix), nil
}
