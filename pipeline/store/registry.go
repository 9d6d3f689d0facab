package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/freshet-ml/freshet/pipeline/registry"
)

// registryKey is the hash of the deployed definitions, under the prefix:
// "current" is the version featurize last started with, "v:<version>" each
// version's canonical form, "at:<version>" when it was first deployed (epoch
// ms). One key, so Redis Cluster serves it from one node.
const registryKey = "_registry"

// Deployment is one deployed version of the definitions.
type Deployment struct {
	Version string
	Form    registry.Form
	// At is when featurize first started with it.
	At time.Time
}

// Deployed returns the definitions featurize last started with, and false
// when none were recorded (a store written before the registry existed, or
// never). It needs only HGETALL, so serve's read-only user may call it.
func (r *Redis) Deployed(ctx context.Context) (Deployment, bool, error) {
	h, err := r.client.HGetAll(ctx, r.prefix+registryKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Deployment{}, false, fmt.Errorf("read the deployed definitions: %w", err)
	}
	v := h["current"]
	if v == "" {
		return Deployment{}, false, nil
	}
	text, ok := h["v:"+v]
	if !ok {
		return Deployment{}, false, fmt.Errorf("read the deployed definitions: version %s is current but not recorded", v)
	}
	f, err := registry.Parse([]byte(text))
	if err != nil {
		return Deployment{}, false, err
	}
	d := Deployment{Version: v, Form: f}
	if ms, err := strconv.ParseInt(h["at:"+v], 10, 64); err == nil {
		d.At = time.UnixMilli(ms).UTC()
	}
	return d, true, nil
}

// Record makes f the current deployed version, keeping the forms of earlier
// versions (a rolling deploy runs two at once; a plan compares with them).
// The time a version was first deployed is kept when it is recorded again.
func (r *Redis) Record(ctx context.Context, f registry.Form, now time.Time) error {
	key := r.prefix + registryKey
	v := f.Version()
	at, err := r.client.HGet(ctx, key, "at:"+v).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("record the deployed definitions: %w", err)
	}
	fields := []any{"current", v, "v:" + v, string(f.JSON())}
	if strings.TrimSpace(at) == "" {
		fields = append(fields, "at:"+v, strconv.FormatInt(now.UnixMilli(), 10))
	}
	if err := r.client.HSet(ctx, key, fields...).Err(); err != nil {
		return fmt.Errorf("record the deployed definitions: %w", err)
	}
	return nil
}
