// Package store is freshet's online store: entity tiles in Redis, written by
// featurize effectively once and read by serve.
//
// Each entity of a view is one Redis hash. Every update runs inside a Lua
// script on that single key, so it is atomic in Redis Cluster too, and it
// carries its source partition and offsets so that a redelivered update is
// skipped event by event. The package owns the key layout and the script; it
// must not know about Kafka or HTTP.
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

//go:embed apply.lua
var applySource string

var applyScript = redis.NewScript(applySource)

// status is the script's verdict on one unit.
type status int64

const (
	applied   status = 0 // merged into the entity's state
	duplicate status = 1 // every offset was applied before
	straddle  status = 2 // some offsets were applied before: nothing changed
)

// Unit is the events of one entity from one source partition, in offset
// order, and their tiles coalesced.
type Unit struct {
	Entity string
	// Source names the partition, e.g. "freshet.events.transaction/3".
	Source  string
	Offsets []int64
	Events  []*events.Event
	Tiles   *aggregate.Tiles
}

func (u *Unit) first() int64 { return u.Offsets[0] }
func (u *Unit) last() int64  { return u.Offsets[len(u.Offsets)-1] }

// Result counts what became of a unit's events.
type Result struct {
	Applied, Duplicates int
}

// Online is the online store seam between featurize, serve and Redis.
type Online interface {
	// Apply merges each unit into its entity's state, atomically per
	// entity, skipping every event whose offset the entity has applied
	// before, so a redelivered batch changes nothing however its boundaries
	// fall. It returns one result per unit. On error nothing may be assumed
	// about which units were applied; applying them again is safe.
	Apply(ctx context.Context, l *aggregate.Layout, units []Unit) ([]Result, error)
	// Read returns the state of each entity, in order, with one round trip
	// per Redis node. An entity with no state has Found false.
	Read(ctx context.Context, l *aggregate.Layout, entities []string) ([]*aggregate.State, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}

var _ Online = (*Redis)(nil)

// Redis is the Online store on a Redis server or cluster.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	cluster bool
	// maxKeys bounds the keys of one script call, so one call never
	// blocks Redis for long.
	maxKeys int
}

// NewRedis wraps a connected client; prefix starts every key.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	_, cluster := client.(*redis.ClusterClient)
	return &Redis{client: client, prefix: prefix, cluster: cluster, maxKeys: 64}
}

// Client is the underlying go-redis client.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Key is the Redis key of an entity of a view.
func (r *Redis) Key(l *aggregate.Layout, entity string) string {
	return r.prefix + l.View.Name + ":" + l.Fingerprint + ":" + entity
}

// Ping implements Online.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close closes the client.
func (r *Redis) Close() error { return r.client.Close() }

func layoutArg(l *aggregate.Layout) string {
	var b strings.Builder
	for i := range l.Groups {
		g := &l.Groups[i]
		fmt.Fprintf(&b, "%d,%d,%s;", g.Hop, g.Keep, g.Ops())
	}
	return b.String()
}

type call struct {
	keys  []string
	args  []any
	units []int // indexes into the caller's units, in result order
}

// Apply implements Online.
func (r *Redis) Apply(ctx context.Context, l *aggregate.Layout, units []Unit) ([]Result, error) {
	out := make([]Result, len(units))
	st, err := r.applyOnce(ctx, l, units)
	if err != nil {
		return nil, err
	}
	// A unit that straddles what was applied before (a redelivery after a
	// crash, cut at other batch boundaries) goes again one event per unit,
	// so the script skips exactly the events applied before.
	var split []Unit
	var owner []int
	for i, s := range st {
		switch s {
		case applied:
			out[i].Applied = len(units[i].Offsets)
		case duplicate:
			out[i].Duplicates = len(units[i].Offsets)
		case straddle:
			for j, ev := range units[i].Events {
				t := l.NewTiles()
				t.Add(ev)
				split = append(split, Unit{Entity: units[i].Entity, Source: units[i].Source, Offsets: units[i].Offsets[j : j+1], Events: units[i].Events[j : j+1], Tiles: t})
				owner = append(owner, i)
			}
		default:
			return nil, fmt.Errorf("apply tiles for %s: unknown status %d", l.View.Name, s)
		}
	}
	if len(split) == 0 {
		return out, nil
	}
	st, err = r.applyOnce(ctx, l, split)
	if err != nil {
		return nil, err
	}
	for i, s := range st {
		switch s {
		case applied:
			out[owner[i]].Applied++
		case duplicate:
			out[owner[i]].Duplicates++
		default:
			return nil, fmt.Errorf("apply tiles for %s: a single event straddles (status %d)", l.View.Name, s)
		}
	}
	return out, nil
}

func (r *Redis) applyOnce(ctx context.Context, l *aggregate.Layout, units []Unit) ([]status, error) {
	if len(units) == 0 {
		return nil, nil
	}
	calls := r.plan(l, units)
	out := make([]status, len(units))
	err := r.run(ctx, calls, out)
	if err != nil && isNoScript(err) {
		// The script cache is empty (a restarted or failed-over Redis):
		// load it everywhere and run again; applying twice is safe.
		if lerr := r.loadScript(ctx); lerr != nil {
			return nil, fmt.Errorf("load apply script: %w", lerr)
		}
		err = r.run(ctx, calls, out)
	}
	if err != nil {
		return nil, fmt.Errorf("apply tiles for %s: %w", l.View.Name, err)
	}
	return out, nil
}

func (r *Redis) run(ctx context.Context, calls []call, out []status) error {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = applyScript.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i, c := range calls {
		res, err := cmds[i].Int64Slice()
		if err != nil {
			return err
		}
		if len(res) != len(c.units) {
			return fmt.Errorf("apply script returned %d statuses for %d units", len(res), len(c.units))
		}
		for j, s := range res {
			out[c.units[j]] = status(s)
		}
	}
	return nil
}

func (r *Redis) loadScript(ctx context.Context) error {
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return applyScript.Load(ctx, c).Err()
		})
	}
	return applyScript.Load(ctx, r.client).Err()
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// plan groups units by entity into script calls of at most maxKeys keys;
// in a cluster, one call's keys share a slot.
func (r *Redis) plan(l *aggregate.Layout, units []Unit) []call {
	layout, ttl := layoutArg(l), strconv.FormatInt(l.View.TTL, 10)
	type entry struct {
		key   string
		units []int
	}
	var order []string
	byEntity := map[string]*entry{}
	for i, u := range units {
		e := byEntity[u.Entity]
		if e == nil {
			e = &entry{key: r.Key(l, u.Entity)}
			byEntity[u.Entity] = e
			order = append(order, u.Entity)
		}
		e.units = append(e.units, i)
	}
	open := map[int]*call{} // by slot; one bucket when not a cluster
	var calls []call
	flush := func(slot int) {
		if c := open[slot]; c != nil {
			calls = append(calls, *c)
			delete(open, slot)
		}
	}
	var packed []byte
	for _, ent := range order {
		e := byEntity[ent]
		slot := 0
		if r.cluster {
			slot = Slot(e.key)
		}
		c := open[slot]
		if c == nil {
			c = &call{args: []any{layout, ttl}}
			open[slot] = c
		}
		c.keys = append(c.keys, e.key)
		c.args = append(c.args, len(e.units))
		for _, ui := range e.units {
			u := units[ui]
			tiles := u.Tiles.Tiles()
			c.args = append(c.args, u.Source, u.first(), u.last(), u.Tiles.MaxTime, len(tiles))
			for _, t := range tiles {
				packed = l.AppendPacked(packed[:0], t.Group, t.Accs)
				c.args = append(c.args, t.Group, t.Index, string(packed))
			}
			c.units = append(c.units, ui)
		}
		if len(c.keys) >= r.maxKeys {
			flush(slot)
		}
	}
	for slot := range open {
		flush(slot)
	}
	return calls
}

// Read implements Online.
func (r *Redis) Read(ctx context.Context, l *aggregate.Layout, entities []string) ([]*aggregate.State, error) {
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
		if f[0] == '_' {
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
