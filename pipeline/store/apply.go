package store

// apply.go owns a write: Apply's rounds of two pipelined round trips (read
// what the units need, write each changed entity with cas.lua), retried
// for entities another writer changed in between, and the entity hash's
// fields. The merge between the two round trips is merge.go's.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
)

// Bookkeeping fields of an entity hash; tiles are "<group>:<index>".
const (
	fieldVersion  = "_v"  // incremented by every write
	fieldNewest   = "_e"  // newest event time applied
	fieldLows     = "_s"  // lowest tile index written per group, "l0,l1,..."
	fieldOldestID = "_d"  // earliest event time of a remembered id
	offsetPrefix  = "_o:" // "_o:<source>": the last offset applied from a source partition
	idPrefix      = "_i:" // "_i:<id>": an event id applied, and its event time
)

// headerFields are the bookkeeping fields every write reads first, in this
// order (readHeader reads them by position).
var headerFields = [...]string{fieldVersion, fieldNewest, fieldLows, fieldOldestID}

// Apply implements Online. It reads what each entity's units need (its
// version, offsets and the tiles their events fall in) in one pipelined
// round trip, merges in Go, and writes each changed entity with a
// compare-and-set script on its version in a second round trip. An entity
// that someone else wrote in between (another featurize process sharing a
// merchant across partitions) is read and merged again.
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
	units  []int    // indexes of its units, in order
	fields []string // the fields read for it (readFields)
	res    []Result // by unit, once merged
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

// commit copies the entity's results to their units' places in out.
func (w *entityWork) commit(out []Result) {
	for j, ui := range w.units {
		out[ui] = w.res[j]
	}
}

// write runs cas.lua for each entity in one pipeline and reports, per
// entity, whether it wrote (false: its version changed since the read).
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

// loadScript loads cas.lua into every node's script cache.
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

// tileField is the hash field of a tile: "<group>:<index>".
func tileField(group int, index int64) string {
	return strconv.Itoa(group) + ":" + strconv.FormatInt(index, 10)
}

// tileAt names a tile of an entity: its group and index.
type tileAt struct {
	group int
	index int64
}

// readFields lists what merging w's units needs, without repeats: the
// header fields first, then per unit its source's offset, the tiles its
// events fall in (whether or not they turn out to be duplicates) and their
// ids. Entities touch a handful of fields per batch, so linear search beats
// maps here.
func readFields(l *aggregate.Layout, units []Unit, w *entityWork) []string {
	fields := append(w.fields[:0], headerFields[:]...)
	idIdx, _ := idField(l)
	var tiles []tileAt
	var ids map[string]bool // a hot entity can have thousands: not a linear search
	if idIdx >= 0 {
		ids = map[string]bool{}
	}
	for _, ui := range w.units {
		u := &units[ui]
		if f := offsetPrefix + u.Source; !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
		for _, ev := range u.Events {
			for g := range l.Groups {
				t := tileAt{g, l.TileIndex(g, ev.Time)}
				if !slices.Contains(tiles, t) {
					tiles = append(tiles, t)
					fields = append(fields, tileField(t.group, t.index))
				}
			}
			if idIdx >= 0 {
				if id := ev.Values[idIdx]; id.Present() {
					if f := idPrefix + id.Text(); !ids[f] {
						ids[f] = true
						fields = append(fields, f)
					}
				}
			}
		}
	}
	return fields
}
