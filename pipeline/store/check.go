package store

// check.go owns the checks a service runs once at start: that the store's
// settings get it through to its server and that its user may do what the
// service will do, so that a wrong password, TLS setting or ACL stops the
// service at once with an error that says so, rather than making it retry
// forever, logging a bare EOF or NOPERM per batch.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// checkTimeout bounds a check: a server that does not answer within it is
// taken for one that is down, not for a wrong setting.
const checkTimeout = 5 * time.Second

// aclHint says where the users' rights are written down.
const aclHint = `give it the ACL SETUSER line of docs/operations.md ("Redis over TLS, with least-privilege users")`

// CheckReader reports a setting the store's server refuses, as serve runs
// at start: a TLS handshake that fails (rediss:// to a plain-text port, a
// certificate that no CA of redis-ca signed), a plain redis:// client on a
// TLS port, a password the server does not take (WRONGPASS), or a user
// that may not PING or read the prefix's keys (NOPERM). A server that
// cannot be reached at all (down, not listening yet, not answering within
// 5 s) is no error: the services wait for it and their readiness says so.
func (r *Redis) CheckReader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, err := r.checkRead(ctx)
	return err
}

// CheckWriter is CheckReader for featurize: the user must also be allowed
// everything featurize runs. It loads the scripts (SCRIPT LOAD), runs them
// (EVALSHA, EVAL, and in them HGET, HSET, HGETALL, HDEL, PEXPIRE) on a probe
// hash of its own (<prefix>_check:<random>, which expires within a minute
// should the clean-up fail), reads it as Apply does (HMGET), asks INFO
// server (how featurize notices a restarted Redis), claims and numbers as
// generations do (HSETNX, HINCRBY) and clears as
// `featurize rebuild --clear` does (SCAN, UNLINK, DEL). A user that may
// only read, as serve's, fails naming the first command it may not run.
func (r *Redis) CheckWriter(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if reached, err := r.checkRead(ctx); err != nil || !reached {
		return err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	probe := r.prefix + "_check:" + hex.EncodeToString(b[:])
	steps := []struct {
		doing string
		run   func() error
	}{
		{"load featurize's scripts (SCRIPT LOAD)", func() error { return r.loadScripts(ctx) }},
		{"write with marks.lua (EVAL)", func() error {
			return marksScript.Eval(ctx, r.client, []string{probe}, "0", "0:0").Err()
		}},
		{"write with cas.lua (EVALSHA)", func() error {
			// An empty version matches a new hash: the script sets two fields,
			// sweeps the tile 0:-1 (below cutoff 0) and sets the TTL.
			return casScript.EvalSha(ctx, r.client, []string{probe}, "", "60000", "0;0", fieldVersion, "1", "0:-1", "x").Err()
		}},
		{"read as featurize does (HMGET)", func() error {
			return r.client.HMGet(ctx, probe, fieldVersion).Err()
		}},
		{"claim a catch-up boundary (HSETNX)", func() error {
			return r.client.HSetNX(ctx, probe, "b:probe", 0).Err()
		}},
		{"number a new generation (HINCRBY)", func() error {
			return r.client.HIncrBy(ctx, probe, "probe#n", 1).Err()
		}},
		{"clear state as featurize rebuild --clear does (SCAN)", func() error {
			return r.client.Scan(ctx, 0, probe, 10).Err()
		}},
		{"clear state as featurize rebuild --clear does (UNLINK)", func() error {
			return r.client.Unlink(ctx, probe).Err()
		}},
		{"clear state as featurize rebuild --clear does (DEL)", func() error {
			return r.client.Del(ctx, probe).Err()
		}},
		{"ask INFO server (how featurize notices a restarted Redis)", func() error {
			return r.client.Info(ctx, "server").Err()
		}},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			if refused := r.refused(ctx, s.doing, err); refused != nil {
				return refused
			}
			return nil // gone meanwhile: the service's own retries take over
		}
	}
	return nil
}

// checkRead pings and reads a key of the prefix; reached reports whether
// the server answered.
func (r *Redis) checkRead(ctx context.Context) (reached bool, err error) {
	if cfg, addr := r.tlsConfig(); cfg != nil {
		// A handshake on its own first: its failure says more than the
		// client's (a plain-text server is told within a second).
		if reached, err := handshake(ctx, addr, cfg, r.dialTimeout()); err != nil || !reached {
			return false, err
		}
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return false, r.refused(ctx, "run PING", err)
	}
	// A key nobody writes: only the permission to read the prefix counts.
	if err := r.client.HGetAll(ctx, r.prefix+"_check").Err(); err != nil {
		return false, r.refused(ctx, "read the keys "+r.prefix+"* (HGETALL)", err)
	}
	return true, nil
}

// loadScripts loads both scripts on every node, as Apply and SaveMarks do
// when a server lost its script cache.
func (r *Redis) loadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Scripter) error {
		for _, s := range []*redis.Script{casScript, marksScript} {
			if err := s.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return load(ctx, c) })
	}
	return load(ctx, r.client)
}

// refused turns the error of doing something into the error of a setting
// the server refuses, saying which and what to change, or into nil when the
// error says only that the server could not be reached (yet).
func (r *Redis) refused(ctx context.Context, doing string, err error) error {
	user, addr, useTLS := r.endpoint()
	msg := err.Error()
	var te *TLSError
	switch {
	case errors.As(err, &te):
		return err // it says what failed, with whom, and the usual cause
	case strings.Contains(msg, "WRONGPASS"):
		return fmt.Errorf("authentication of redis user %s failed: %w (a wrong password, an unknown user, or a user that is off: check the user of redis-url and the password of redis-url or redis-password-file)", fmtUser(user), err)
	case strings.Contains(msg, "NOAUTH"):
		return fmt.Errorf("authentication failed: redis at %s asks for a password, and redis-url and redis-password-file give none: %w", addr, err)
	case strings.Contains(msg, "NOPERM"), strings.Contains(msg, "can't run this command"):
		// The second is Redis 7.0's word for a command a script runs
		// that the user may not (later versions say NOPERM and name it).
		return fmt.Errorf("redis user %s may not %s: %w; %s", fmtUser(user), doing, err, aclHint)
	case strings.Contains(msg, "remote error: tls:"):
		// TLS 1.3 reports a client certificate the server refused at the
		// first read, after the handshake.
		return fmt.Errorf("redis at %s refused the TLS connection: %w (does it ask for a client certificate? redis-cert and redis-key give one)", addr, err)
	case (errors.Is(err, io.EOF) || isReset(err)) && !useTLS && speaksTLS(context.WithoutCancel(ctx), addr):
		return fmt.Errorf("redis at %s speaks TLS, but redis-url is plain redis:// (%w): use rediss://", addr, err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !transient(msg) {
		return fmt.Errorf("redis user %s could not %s: %w", fmtUser(user), doing, err)
	}
	// Refused connections, timeouts, EOF from a server going down, a
	// server loading its data: it is not there yet, which the service
	// waits out.
	return nil
}

// transient reports whether a Redis error is one of a server that will
// answer in a while.
func transient(msg string) bool {
	for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// tlsConfig is the client's TLS configuration and first address; nil
// without TLS.
// dialTimeout is the client's dial timeout, which bounds a handshake too.
func (r *Redis) dialTimeout() time.Duration {
	var d time.Duration
	switch c := r.client.(type) {
	case *redis.Client:
		d = c.Options().DialTimeout
	case *redis.ClusterClient:
		d = c.Options().DialTimeout
	}
	return orDefaultDial(d)
}

// orDefaultDial is d, or go-redis's default dial timeout when d is unset.
func orDefaultDial(d time.Duration) time.Duration {
	if d <= 0 {
		return 5 * time.Second
	}
	return d
}

func (r *Redis) tlsConfig() (*tls.Config, string) {
	switch c := r.client.(type) {
	case *redis.Client:
		return c.Options().TLSConfig, c.Options().Addr
	case *redis.ClusterClient:
		if o := c.Options(); len(o.Addrs) > 0 {
			return o.TLSConfig, o.Addrs[0]
		}
	}
	return nil, ""
}

// endpoint is the client's user, its first address and whether it speaks
// TLS, for errors.
func (r *Redis) endpoint() (user, addr string, useTLS bool) {
	switch c := r.client.(type) {
	case *redis.Client:
		o := c.Options()
		return o.Username, o.Addr, o.TLSConfig != nil
	case *redis.ClusterClient:
		o := c.Options()
		if len(o.Addrs) > 0 {
			addr = o.Addrs[0]
		}
		return o.Username, addr, o.TLSConfig != nil
	}
	return "", "", false
}
