// Package store is freshet's online store: entity tiles in Redis, written by
// featurize effectively once (Online) and read by serve (Reader).
//
// Each entity of a view is one Redis hash holding its tiles, its newest
// event time and, per source partition, the last offset applied. A write
// reads those, merges in Go and stores the result with a compare-and-set
// script on the hash's version: atomic on a single key, so Redis Cluster
// works, and a redelivered event is skipped by its offset, event by event.
// The package owns the key layout and the script; it must not know about
// Kafka (a source partition and a consumer group are names to it) or HTTP.
//
// store.go holds the seams (Unit, Reader, Online) and the reads; apply.go
// the two round trips of a write and the hash's fields; merge.go one
// entity's merge, in steps; marks.go the partition watermarks; restart.go
// how a restarted server is noticed and fenced; config.go the settings.
package store

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/events"
)

//go:embed cas.lua
var casSource string

var casScript = redis.NewScript(casSource)

//go:embed marks.lua
var marksSource string

var marksScript = redis.NewScript(marksSource)

// Unit is the events of one entity from one source partition, in
// increasing offset order: what featurize hands the store for one entity.
// The store builds the tiles itself, from the events it has not applied
// before (see Online.Apply).
type Unit struct {
	Entity string // the entity's key, e.g. a user id
	// Source names the partition, e.g. "freshet.events.transaction/3".
	Source string
	// Offsets are the events' offsets in Source, increasing.
	Offsets []int64
	Events  []*events.Event // Events[i] is the event at Offsets[i]
}

func (u *Unit) last() int64 { return u.Offsets[len(u.Offsets)-1] }

// Result counts what became of a unit's events: Applied were merged into
// the entity's tiles, Duplicates were skipped (their offset, or their id
// within the dedupe window, was applied before). They add up to the unit's
// events.
type Result struct {
	Applied, Duplicates int // events merged, events skipped
}

// Reader is the read side of the online store: all serve needs. *Redis is
// one.
type Reader interface {
	// Read returns the state of each entity, in order, with one round trip
	// per Redis node. An entity with no state has Found false; every
	// entity of a view whose state is being recomputed (or is not kept for
	// these definitions) has Pending true.
	Read(ctx context.Context, l *aggregate.Layout, entities []string) ([]*aggregate.State, error)
	// Ping reports whether the store answers. It also makes Online's
	// Restarts current.
	Ping(ctx context.Context) error
	// Deployed returns the definitions featurize last started with, and
	// false when it recorded none.
	Deployed(ctx context.Context) (Deployment, bool, error)
	// Generations returns each view's current generation (see Gen); none
	// before featurize recorded any.
	Generations(ctx context.Context) (map[string]Gen, error)
	// FollowGens makes Read follow the generations featurize records now:
	// serve calls it every second, so a view whose catch-up completes is
	// read from then on.
	FollowGens(ctx context.Context) error
	// Progress returns what the catch-up of a generation last reported;
	// nil before it did.
	Progress(ctx context.Context, g Gen) (*CatchUpProgress, error)
}

// Online is the online store featurize writes through, with every
// guarantee featurize's effectively-once relies on: idempotent apply,
// partition watermarks kept across processes, and a fence against a server
// that restarted without its last writes. *Redis is one.
type Online interface {
	Reader // reads, and Ping, which also makes Restarts current

	// Apply merges each unit into its entity's state, atomically per
	// entity, skipping every event whose offset the entity has applied
	// from the unit's source before (and, when the source event declares
	// an id, every event whose id it applied within the dedupe window), so
	// a redelivered batch changes nothing however its boundaries fall. The
	// store builds the tiles from the events it applies. It returns one
	// result per unit, in order. On error nothing may be assumed about
	// which units were applied; applying them again is safe.
	Apply(ctx context.Context, l *aggregate.Layout, units []Unit) ([]Result, error)

	// LoadMarks returns the watermarks saved for a topic's partitions
	// under a consumer group, by partition; none saved is an empty map.
	LoadMarks(ctx context.Context, group, topic string) (map[int]Mark, error)
	// SaveMarks records watermarks of a topic's partitions under a
	// consumer group, never moving one back to an earlier offset: another
	// member of the group may have got further after a rebalance.
	SaveMarks(ctx context.Context, group, topic string, marks map[int]Mark) error

	// Restarts counts the restarts of the store's server noticed so far:
	// a restarted server may have lost the writes of its last second
	// (appendfsync everysec), so offsets applied before it must not be
	// committed. It moves only when the store talks to its server; Ping
	// makes it current. It stays 0 for a store that does not notice
	// restarts.
	Restarts() uint64
	// FenceRestarts makes every write fail (with ErrRestarted) from the
	// moment a restart is noticed until Resume, so that nothing planned
	// before the restart lands on the server that lost the writes before
	// it. It reports whether the store notices restarts at all: when it
	// does not, Restarts stays 0 and nothing is ever fenced.
	FenceRestarts() bool
	// Resume lifts the fence of a noticed restart, once the caller has
	// dropped everything it planned before it.
	Resume()
}

var (
	_ Online = (*Redis)(nil)
	_ Reader = (*Redis)(nil)
)

// Redis is the online store on a Redis server or cluster.
type Redis struct {
	client redis.UniversalClient
	prefix string
	watch  *restartWatch // nil: restarts go unnoticed
	gens   gensPointer   // the views' generations (UseGens); nil: none recorded
}

// NewRedis wraps a connected client; prefix starts every key. The store
// does not notice restarts (see Config.Open for one that does).
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Client is the underlying go-redis client.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Key is the Redis key of an entity of a view:
// <prefix><view>:<generation>:<entity>, where the generation of a layout
// is its fingerprint until generations are recorded (see Gen).
func (r *Redis) Key(l *aggregate.Layout, entity string) string {
	g, _ := r.genOf(l)
	if g.ID == "" {
		g.ID = l.Fingerprint
	}
	return r.prefix + l.View.Name + ":" + g.ID + ":" + entity
}

// Ping implements Reader.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close closes the client.
func (r *Redis) Close() error { return r.client.Close() }

// Read implements Reader: one pipelined HGETALL per entity. A layout whose
// generation is catching up, or has none, is read as Pending without a
// round trip.
func (r *Redis) Read(ctx context.Context, l *aggregate.Layout, entities []string) ([]*aggregate.State, error) {
	if g, ok := r.genOf(l); !ok || !g.Live() {
		out := make([]*aggregate.State, len(entities))
		for i := range out {
			out[i] = &aggregate.State{Pending: true}
		}
		return out, nil
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(entities))
	for i, e := range entities {
		cmds[i] = pipe.HGetAll(ctx, r.Key(l, e))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read %s: %w", l.View.Name, err)
	}
	out := make([]*aggregate.State, len(entities))
	for i, cmd := range cmds {
		st, err := decodeState(l, cmd.Val())
		if err != nil {
			return nil, fmt.Errorf("read %s entity %q: %w", l.View.Name, entities[i], err)
		}
		out[i] = st
	}
	return out, nil
}

// decodeState turns an entity hash into tiles grouped and sorted by index.
func decodeState(l *aggregate.Layout, h map[string]string) (*aggregate.State, error) {
	st := &aggregate.State{Groups: make([][]aggregate.Tile, len(l.Groups))}
	if len(h) == 0 {
		return st, nil
	}
	for f, v := range h {
		if f == "_e" {
			t, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("field _e: %w", err)
			}
			st.EventTime, st.Found = int64(t), true
			continue
		}
		if f == "" || f[0] == '_' {
			continue
		}
		gs, is, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		g, err1 := strconv.Atoi(gs)
		idx, err2 := strconv.ParseInt(is, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("field %q is not a tile", f)
		}
		accs, err := l.DecodePacked(g, v)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f, err)
		}
		st.Groups[g] = append(st.Groups[g], aggregate.Tile{Group: g, Index: idx, Accs: accs})
	}
	for _, ts := range st.Groups {
		sortTiles(ts)
	}
	return st, nil
}

func sortTiles(ts []aggregate.Tile) {
	slices.SortFunc(ts, func(a, b aggregate.Tile) int { return cmp.Compare(a.Index, b.Index) })
}
