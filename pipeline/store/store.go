// Package store is freshet's online store: entity tiles in Redis, written by
// featurize effectively once and read by serve.
//
// Each entity of a view is one Redis hash holding its tiles, its newest
// event time and, per source partition, the last offset applied. A write
// reads those, merges in Go and stores the result with a compare-and-set
// script on the hash's version: atomic on a single key, so Redis Cluster
// works, and a redelivered event is skipped by its offset, event by event.
// The package owns the key layout and the script; it must not know about
// Kafka or HTTP.
package store

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

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
	client redis.UniversalClient
	prefix string
	watch  *restartWatch // nil: restarts go unnoticed
}

// NewRedis wraps a connected client; prefix starts every key.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
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

// Apply implements Online. It reads what each entity's units need (its
// version, offsets and the tiles they touch) in one pipelined round trip,
// merges in Go, and writes each changed entity with a compare-and-set script
// on its version in a second round trip. An entity that someone else wrote
// in between (another featurize process sharing a merchant across
// partitions) is read and merged again.
//
// Keeping the merge out of Lua keeps Redis's share of the work to one HMGET
// and one small script per entity, which is what bounds throughput: Redis is
// single-threaded, featurize processes are not.
func (r *Redis) Apply(ctx context.Context, l *aggregate.Layout, units []Unit) ([]Result, error) {
	out := make([]Result, len(units))
	var pending []*entityWork
	byEntity := map[string]*entityWork{}
	for i := range units {
		w := byEntity[units[i].Entity]
		if w == nil {
			w = &entityWork{key: r.Key(l, units[i].Entity)}
			byEntity[units[i].Entity] = w
			pending = append(pending, w)
		}
		w.units = append(w.units, i)
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		if attempt > 50 {
			return nil, fmt.Errorf("apply tiles for %s: %d entities still contended after %d attempts", l.View.Name, len(pending), attempt-1)
		}
		if attempt > 2 {
			// Another writer keeps winning the same entities: step aside
			// for a moment, at random, so the two stop colliding.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))):
			}
		}
		var err error
		if pending, err = r.applyRound(ctx, l, units, pending, out); err != nil {
			return nil, fmt.Errorf("apply tiles for %s: %w", l.View.Name, err)
		}
	}
	return out, nil
}

// entityWork is one entity's part of an Apply.
type entityWork struct {
	key    string
	units  []int // indexes of its units, in order
	fields []string
	res    []Result
}

// applyRound reads, merges and writes every pending entity once; it returns
// the entities whose write lost a race and must go again.
func (r *Redis) applyRound(ctx context.Context, l *aggregate.Layout, units []Unit, pending []*entityWork, out []Result) ([]*entityWork, error) {
	pipe := r.client.Pipeline()
	reads := make([]*redis.SliceCmd, len(pending))
	for i, w := range pending {
		w.fields = readFields(l, units, w)
		reads[i] = pipe.HMGet(ctx, w.key, w.fields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	ttl := strconv.FormatInt(l.View.TTL, 10)
	var writing []*entityWork
	var args [][]any
	for i, w := range pending {
		a, err := merge(l, units, w, reads[i].Val(), ttl)
		if err != nil {
			return nil, fmt.Errorf("entity key %s: %w", w.key, err)
		}
		if a == nil { // every unit a duplicate: nothing to write
			w.commit(out)
			continue
		}
		writing = append(writing, w)
		args = append(args, a)
	}
	if len(writing) == 0 {
		return nil, nil
	}
	ok, err := r.write(ctx, writing, args)
	if err != nil && isNoScript(err) {
		// The script cache is empty (a restarted or failed-over Redis):
		// load it everywhere and write again; the version check makes a
		// repeated write safe.
		if lerr := r.loadScript(ctx); lerr != nil {
			return nil, fmt.Errorf("load script: %w", lerr)
		}
		ok, err = r.write(ctx, writing, args)
	}
	if err != nil {
		return nil, fmt.Errorf("write state: %w", err)
	}
	var again []*entityWork
	for i, w := range writing {
		if ok[i] {
			w.commit(out)
		} else {
			again = append(again, w)
		}
	}
	return again, nil
}

func (w *entityWork) commit(out []Result) {
	for j, ui := range w.units {
		out[ui] = w.res[j]
	}
}

func (r *Redis) write(ctx context.Context, writing []*entityWork, args [][]any) ([]bool, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(writing))
	for i, w := range writing {
		cmds[i] = casScript.EvalSha(ctx, pipe, []string{w.key}, args[i]...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	ok := make([]bool, len(cmds))
	for i, c := range cmds {
		n, err := c.Int()
		if err != nil {
			return nil, err
		}
		ok[i] = n == 1
	}
	return ok, nil
}

func (r *Redis) loadScript(ctx context.Context) error {
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return casScript.Load(ctx, c).Err()
		})
	}
	return casScript.Load(ctx, r.client).Err()
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// Bookkeeping fields of an entity hash; tiles are "<group>:<index>".
const (
	fieldVersion  = "_v" // incremented by every write
	fieldNewest   = "_e" // newest event time applied
	fieldLows     = "_s" // lowest tile index written per group, "l0,l1,..."
	fieldOldestID = "_d" // earliest event time of a remembered id
	offsetPrefix  = "_o:"
	idPrefix      = "_i:" // an event id and its event time
)

// idField returns the index of the source event's id field (-1 without one)
// and how long ids are remembered.
func idField(l *aggregate.Layout) (int, int64) {
	src := l.View.Source
	if src.ID == "" {
		return -1, 0
	}
	f, _ := src.Field(src.ID)
	return f.Index, src.DedupeWindow
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func tileField(group int, index int64) string {
	return strconv.Itoa(group) + ":" + strconv.FormatInt(index, 10)
}

// readFields lists what merging w's units needs, without repeats: the
// bookkeeping fields first, then offsets and tiles. Entities touch a handful
// of fields per batch, so linear search beats maps here.
func readFields(l *aggregate.Layout, units []Unit, w *entityWork) []string {
	fields := append(w.fields[:0], fieldVersion, fieldNewest, fieldLows, fieldOldestID)
	idIdx, _ := idField(l)
	add := func(f string) {
		if !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	for _, ui := range w.units {
		u := &units[ui]
		add(offsetPrefix + u.Source)
		for _, t := range u.Tiles.Tiles() {
			add(tileField(t.Group, t.Index))
		}
		if idIdx >= 0 {
			for _, ev := range u.Events {
				if id := ev.Values[idIdx]; id.Present() {
					add(idPrefix + id.Text())
				}
			}
		}
	}
	return fields
}

// changedTile is a tile being merged for a write.
type changedTile struct {
	field string
	group int
	accs  []aggregate.Acc
}

// merge applies w's units to the state read (vals, in the order of
// w.fields) and returns the script's arguments, or nil when nothing changes.
// It records each unit's result in w.res.
func merge(l *aggregate.Layout, units []Unit, w *entityWork, vals []any, ttl string) ([]any, error) {
	read := func(f string) (string, bool) {
		i := slices.Index(w.fields, f)
		if i < 0 {
			return "", false
		}
		s, ok := vals[i].(string)
		return s, ok
	}
	version, _ := vals[0].(string)
	var newest int64
	hasNewest := false
	if s, ok := vals[1].(string); ok {
		t, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", fieldNewest, err)
		}
		newest, hasNewest = int64(t), true
	}
	lows := make([]int64, len(l.Groups))
	hasLow := make([]bool, len(l.Groups))
	if s, _ := vals[2].(string); s != "" {
		for g := 0; s != "" && g < len(lows); g++ {
			var p string
			p, s, _ = strings.Cut(s, ",")
			if p == "" {
				continue
			}
			x, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", fieldLows, err)
			}
			lows[g], hasLow[g] = x, true
		}
	}

	var tiles []changedTile
	type offset struct {
		source string
		last   int64
	}
	var offsets []offset
	w.res = make([]Result, len(w.units))
	changed := false

	// Ids, when the event declares one: those read, and those applied now.
	idIdx, window := idField(l)
	type seenAt struct {
		id string
		t  int64
	}
	var ids []seenAt
	seenID := func(id string, t int64) bool {
		for _, s := range ids {
			if s.id == id && abs(t-s.t) <= window {
				return true
			}
		}
		if s, ok := read(idPrefix + id); ok {
			if x, err := strconv.ParseInt(s, 10, 64); err == nil && abs(t-x) <= window {
				return true
			}
		}
		return false
	}
	var pick []int
	for j, ui := range w.units {
		u := &units[ui]
		done := int64(-1)
		if k := slices.IndexFunc(offsets, func(o offset) bool { return o.source == u.Source }); k >= 0 {
			done = offsets[k].last
		} else if s, ok := read(offsetPrefix + u.Source); ok {
			x, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("field %s%s: %w", offsetPrefix, u.Source, err)
			}
			done = x
		}
		if done >= u.last() {
			w.res[j].Duplicates = len(u.Offsets)
			continue
		}
		// The events to apply: those after the offset applied before (a
		// redelivery cut at other batch boundaries can straddle it), and
		// with an id, those whose id was not seen within the window.
		pick := pick[:0]
		for k, off := range u.Offsets {
			if off <= done {
				continue
			}
			if idIdx >= 0 {
				if id := u.Events[k].Values[idIdx]; id.Present() {
					key := id.Text()
					if seenID(key, u.Events[k].Time) {
						continue
					}
					ids = append(ids, seenAt{key, u.Events[k].Time})
				}
			}
			pick = append(pick, k)
		}
		ts := u.Tiles
		if len(pick) < len(u.Offsets) {
			ts = l.NewTiles()
			for _, k := range pick {
				ts.Add(u.Events[k])
			}
		}
		w.res[j] = Result{Applied: len(pick), Duplicates: len(u.Offsets) - len(pick)}
		changed = true
		if k := slices.IndexFunc(offsets, func(o offset) bool { return o.source == u.Source }); k >= 0 {
			offsets[k].last = u.last()
		} else {
			offsets = append(offsets, offset{u.Source, u.last()})
		}
		if ts.Events > 0 && (!hasNewest || ts.MaxTime > newest) {
			newest, hasNewest = ts.MaxTime, true
		}
		for _, t := range ts.Tiles() {
			g := &l.Groups[t.Group]
			// Tiles older than the retention before the newest event are
			// never read exactly again: don't write them.
			if t.Index < aggregate.FloorDiv(newest, g.Hop)-g.Keep {
				continue
			}
			f := tileField(t.Group, t.Index)
			k := slices.IndexFunc(tiles, func(c changedTile) bool { return c.field == f })
			if k < 0 {
				c := changedTile{field: f, group: t.Group}
				if s, had := read(f); had {
					old, err := l.DecodePacked(t.Group, s)
					if err != nil {
						return nil, fmt.Errorf("field %s: %w", f, err)
					}
					c.accs = old
				} else {
					c.accs = make([]aggregate.Acc, len(t.Accs))
				}
				k = len(tiles)
				tiles = append(tiles, c)
			}
			for c := range tiles[k].accs {
				tiles[k].accs[c].Merge(t.Accs[c])
			}
			if !hasLow[t.Group] || t.Index < lows[t.Group] {
				lows[t.Group], hasLow[t.Group] = t.Index, true
			}
		}
	}
	if !changed {
		return nil, nil
	}

	// Drop tiles past the retention (and ids past the window) in one sweep
	// once the oldest is a quarter of the retention behind, so the sweep's
	// cost is amortized.
	oldestID, hasOldestID := int64(0), false
	if s, ok := vals[3].(string); ok && s != "" {
		if x, err := strconv.ParseInt(s, 10, 64); err == nil {
			oldestID, hasOldestID = x, true
		}
	}
	for _, s := range ids {
		if !hasOldestID || s.t < oldestID {
			oldestID, hasOldestID = s.t, true
		}
	}
	idsStale := hasOldestID && oldestID < newest-window-max(1, window/4)
	sweep := ""
	for g := range l.Groups {
		grp := &l.Groups[g]
		cutoff := aggregate.FloorDiv(newest, grp.Hop) - grp.Keep
		if idsStale || (hasLow[g] && lows[g] < cutoff-max(1, grp.Keep/4)) {
			var b strings.Builder
			for g2 := range l.Groups {
				c := aggregate.FloorDiv(newest, l.Groups[g2].Hop) - l.Groups[g2].Keep
				if hasLow[g2] {
					lows[g2] = max(lows[g2], c)
				}
				if g2 > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strconv.FormatInt(c, 10))
			}
			if idIdx >= 0 {
				fmt.Fprintf(&b, ";%d", newest-window)
				oldestID = max(oldestID, newest-window)
			}
			sweep = b.String()
			break
		}
	}

	next := int64(1)
	if version != "" {
		v, err := strconv.ParseInt(version, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", fieldVersion, err)
		}
		next = v + 1
	}
	args := make([]any, 0, 9+2*(len(offsets)+len(tiles)))
	var lb []byte
	for g := range lows {
		if g > 0 {
			lb = append(lb, ',')
		}
		if hasLow[g] {
			lb = strconv.AppendInt(lb, lows[g], 10)
		}
	}
	args = append(args, version, ttl, sweep,
		fieldVersion, strconv.FormatInt(next, 10),
		fieldNewest, strconv.FormatInt(newest, 10),
		fieldLows, string(lb))
	for _, o := range offsets {
		args = append(args, offsetPrefix+o.source, strconv.FormatInt(o.last, 10))
	}
	for _, s := range ids {
		args = append(args, idPrefix+s.id, strconv.FormatInt(s.t, 10))
	}
	if hasOldestID {
		args = append(args, fieldOldestID, strconv.FormatInt(oldestID, 10))
	}
	var packed []byte
	for _, c := range tiles {
		packed = l.AppendPacked(packed[:0], c.group, c.accs)
		args = append(args, c.field, string(packed))
	}
	return args, nil
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
