package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

const testSchema = `
events:
  e:
    key: k
    timestamp: ts
    fields: {k: string, i: int, f: float, s: string, b: bool}
feature_views:
  v:
    source: e
    entity: k
    ttl: 1h # the windows are milliseconds long; the wall-clock TTL must outlive a slow test run
    features:
      n:     {agg: count, window: 50ms, hop: 10ms}
      si:    {agg: sum, field: i, window: 50ms, hop: 10ms}
      mf:    {agg: mean, field: f, window: 200ms, hop: 20ms}
      sd:    {agg: stddev, field: f, window: 200ms, hop: 20ms}
      mn:    {agg: min, field: i, window: 60ms, hop: 10ms}
      mx:    {agg: max, field: f, window: 100ms, hop: 100ms}
      ls:    {agg: last, field: s, window: 200ms, hop: 20ms}
      lb:    {agg: last, field: b, window: 50ms, hop: 10ms}
`

func testLayout(tb testing.TB) *aggregate.Layout {
	tb.Helper()
	reg, err := schemas.Parse("test.yaml", []byte(testSchema))
	require.NoError(tb, err)
	l, err := aggregate.NewLayout(reg.Views["v"])
	require.NoError(tb, err)
	return l
}

// backends runs a test against the Redis of testenv (a real server where
// there is one), a Redis Cluster when one is given, and miniredis, which dev
// mode uses.
func backends(t *testing.T, fn func(t *testing.T, r *Redis)) {
	t.Run("redis", func(t *testing.T) {
		_, c := testenv.Redis(t)
		fn(t, NewRedis(c, testenv.Unique("freshet-test:")))
	})
	t.Run("cluster", func(t *testing.T) {
		c, ok := testenv.RedisCluster(t)
		if !ok {
			t.Skip("FRESHET_TEST_REDIS_CLUSTER is not set (scripts/redis-local.sh start cluster)")
		}
		fn(t, NewRedis(c, testenv.Unique("freshet-test:")))
	})
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		fn(t, NewRedis(c, "freshet-test:"))
	})
}

type sourced struct {
	ev     events.Event
	source string
	offset int64
}

// stream makes events for a few entities over two partitions, with offsets
// increasing per partition, as Kafka would deliver them.
func stream(tb testing.TB, l *aggregate.Layout, rng *rand.Rand, n int) []sourced {
	ev := l.View.Source
	offsets := map[string]int64{}
	out := make([]sourced, n)
	for j := range out {
		e := events.Event{Type: ev, Time: 1_000 + int64(j)*3 + rng.Int64N(40), Values: make([]events.Value, len(ev.Fields))}
		set := func(name string, v events.Value) {
			f, ok := ev.Field(name)
			require.True(tb, ok)
			e.Values[f.Index] = v
		}
		set("k", events.Value{Kind: events.String, S: fmt.Sprintf("ent-%d", rng.IntN(3))})
		set("ts", events.Value{Kind: events.Time, I: e.Time})
		if rng.IntN(4) > 0 {
			set("i", events.Value{Kind: events.Int, I: rng.Int64N(100) - 50})
		}
		if rng.IntN(4) > 0 {
			set("f", events.Value{Kind: events.Float, F: math.Round(rng.NormFloat64()*1000) / 10})
		}
		set("s", events.Value{Kind: events.String, S: fmt.Sprintf("v%d", rng.IntN(5))})
		set("b", events.Value{Kind: events.Bool, B: rng.IntN(2) == 0})
		src := fmt.Sprintf("topic/%d", rng.IntN(2))
		out[j] = sourced{ev: e, source: src, offset: offsets[src]}
		offsets[src]++
	}
	return out
}

// units coalesces a slice of a stream the way featurize does: one unit per
// entity and source partition.
func units(l *aggregate.Layout, batch []sourced) []Unit {
	idx := map[string]int{}
	var out []Unit
	for i := range batch {
		s := &batch[i]
		ent := s.ev.Values[l.EntityIndex()].Text()
		k := ent + "|" + s.source
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			out = append(out, Unit{Entity: ent, Source: s.source})
		}
		u := &out[j]
		u.Offsets = append(u.Offsets, s.offset)
		u.Events = append(u.Events, &s.ev)
	}
	return out
}

// applyInBatches applies the stream cut at the given boundaries and returns
// the events applied and skipped as duplicates.
func applyInBatches(t *testing.T, r *Redis, l *aggregate.Layout, s []sourced, cuts []int) (applied, dups int) {
	prev := 0
	for _, c := range append(cuts, len(s)) {
		us := units(l, s[prev:c])
		res, err := r.Apply(context.Background(), l, us)
		require.NoError(t, err)
		require.Len(t, res, len(us))
		for _, x := range res {
			applied += x.Applied
			dups += x.Duplicates
		}
		prev = c
	}
	return applied, dups
}

// requireStateMatches compares what the store serves with tiles built in
// memory from the same events, at many times.
func requireStateMatches(t *testing.T, r *Redis, l *aggregate.Layout, s []sourced) {
	want := map[string]*aggregate.Tiles{}
	var ents []string
	for i := range s {
		ent := s[i].ev.Values[l.EntityIndex()].Text()
		if want[ent] == nil {
			want[ent] = l.NewTiles()
			ents = append(ents, ent)
		}
		want[ent].Add(&s[i].ev)
	}
	got, err := r.Read(context.Background(), l, ents)
	require.NoError(t, err)
	for i, ent := range ents {
		ws := want[ent].State()
		require.True(t, got[i].Found)
		require.Equal(t, ws.EventTime, got[i].EventTime, "event time of %s", ent)
		// The newest event time at or before a time survives the packing,
		// the merges and the retention sweeps as the tiles built here hold it.
		for at := ws.EventTime - l.View.Retention(); at <= ws.EventTime+300; at += 7 {
			wt, wok := l.EventTime(ws, at)
			gt, gok := l.EventTime(got[i], at)
			require.Equal(t, wok, gok, "%s event time at %d", ent, at)
			require.Equal(t, wt, gt, "%s event time at %d", ent, at)
		}
		for fi, f := range l.View.Features {
			// Lookups as of any time within the retention before the
			// newest event are exact.
			from := ws.EventTime - l.View.Retention()
			for at := from; at <= ws.EventTime+300; at += 7 {
				w, wst := l.Value(ws, fi, at)
				g, gst := l.Value(got[i], fi, at)
				require.Equal(t, wst, gst, "status")
				require.Equal(t, w.Kind, g.Kind, "%s %s at %d", ent, f.Name, at)
				if w.Kind == events.Float {
					require.InDelta(t, w.F, g.F, 1e-9*math.Max(1, math.Abs(w.F)), "%s %s at %d", ent, f.Name, at)
				} else {
					require.Equal(t, w, g, "%s %s at %d", ent, f.Name, at)
				}
			}
		}
	}
}

func TestApplyMatchesInMemoryTiles(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		l := testLayout(t)
		s := stream(t, l, rand.New(rand.NewPCG(1, 1)), 400)
		applied, dups := applyInBatches(t, r, l, s, []int{1, 50, 51, 200, 333})
		require.Equal(t, len(s), applied)
		require.Zero(t, dups)
		requireStateMatches(t, r, l, s)
	})
}

// TestRedeliveryIsSkippedPerEvent replays the stream after a simulated
// crash from an earlier commit, cut at different batch boundaries, so
// redelivered batches straddle what was applied: the state must not change.
func TestRedeliveryIsSkippedPerEvent(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		l := testLayout(t)
		rng := rand.New(rand.NewPCG(2, 2))
		s := stream(t, l, rng, 300)
		a1, _ := applyInBatches(t, r, l, s[:180], []int{60, 120})
		require.Equal(t, 180, a1)
		// Kafka redelivers from the last commit (offset position 90 here)
		// with other batch boundaries, then continues past the crash.
		a2, d2 := applyInBatches(t, r, l, s[90:], []int{37, 101, 150})
		require.Equal(t, 90, d2, "events applied before the crash are skipped")
		require.Equal(t, 120, a2, "events after the crash are applied once")
		requireStateMatches(t, r, l, s)
		// A full replay changes nothing.
		a3, d3 := applyInBatches(t, r, l, s, []int{13, 250})
		require.Zero(t, a3)
		require.Equal(t, len(s), d3)
		requireStateMatches(t, r, l, s)
	})
}

func TestRetentionAndTTL(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		l := testLayout(t)
		ctx := context.Background()
		ev := l.View.Source
		var s []sourced
		for j := range 3000 {
			e := events.Event{Type: ev, Time: int64(j) * 10, Values: make([]events.Value, len(ev.Fields))}
			e.Values[0] = events.Value{Kind: events.String, S: "busy"}
			s = append(s, sourced{ev: e, source: "topic/0", offset: int64(j)})
		}
		for i := 0; i < len(s); i += 100 {
			_, err := r.Apply(ctx, l, units(l, s[i:i+100]))
			require.NoError(t, err)
		}
		key := r.Key(l, "busy")
		fields, err := r.Client().HLen(ctx, key).Result()
		require.NoError(t, err)
		// Retention is 200ms+100ms: a handful of tiles per group, not the
		// 3000 events' worth, plus bookkeeping fields.
		var bound int64
		for _, g := range l.Groups {
			bound += g.Keep + g.Keep/4 + 3
		}
		require.LessOrEqual(t, fields, bound+8)
		ttl, err := r.Client().PTTL(ctx, key).Result()
		require.NoError(t, err)
		require.Greater(t, ttl.Milliseconds(), int64(0))
		require.LessOrEqual(t, ttl.Milliseconds(), l.View.TTL)
		// Lookups within the retention stay exact.
		requireStateMatchesRecent(t, r, l, s)
	})
}

// requireStateMatchesRecent checks lookups at and after the newest event,
// which the retention must keep exact.
func requireStateMatchesRecent(t *testing.T, r *Redis, l *aggregate.Layout, s []sourced) {
	want := l.NewTiles()
	for i := range s {
		want.Add(&s[i].ev)
	}
	ws := want.State()
	got, err := r.Read(context.Background(), l, []string{"busy"})
	require.NoError(t, err)
	for at := ws.EventTime - l.View.Retention(); at < ws.EventTime+300; at += 5 {
		wt, wok := l.EventTime(ws, at)
		gt, gok := l.EventTime(got[0], at)
		require.Equal(t, wok, gok, "event time at %d", at)
		require.Equal(t, wt, gt, "event time at %d", at)
		for fi := range l.View.Features {
			w, wst := l.Value(ws, fi, at)
			g, gst := l.Value(got[0], fi, at)
			require.Equal(t, w, g, "feature %s at %d", l.View.Features[fi].Name, at)
			require.Equal(t, wst, gst, "feature %s at %d", l.View.Features[fi].Name, at)
		}
	}
}

func TestReadMissingEntity(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		l := testLayout(t)
		got, err := r.Read(context.Background(), l, []string{"nobody", "nobody-else"})
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.False(t, got[0].Found)
		require.False(t, got[1].Found)
	})
}

// TestConcurrentWritersLoseNothing has two writers, as two featurize
// processes sharing entities across partitions would, apply interleaved
// batches of the same entities at once: the version check must make every
// read-merge-write atomic.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		l := testLayout(t)
		s := stream(t, l, rand.New(rand.NewPCG(5, 5)), 600)
		bySource := map[string][]sourced{}
		for _, x := range s {
			bySource[x.source] = append(bySource[x.source], x)
		}
		require.Len(t, bySource, 2)
		errs := make(chan error, 2)
		for _, part := range bySource {
			go func() {
				for i := 0; i < len(part); i += 7 {
					if _, err := r.Apply(context.Background(), l, units(l, part[i:min(i+7, len(part))])); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
		requireStateMatches(t, r, l, s)
	})
}

func TestMarksNeverMoveBack(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		got, err := r.LoadMarks(ctx, "g", "topic")
		require.NoError(t, err)
		require.Empty(t, got)
		require.NoError(t, r.SaveMarks(ctx, "g", "topic", map[int]Mark{0: {Offset: 10, Time: 500}, 1: {Offset: 3, Time: 90}}))
		require.NoError(t, r.SaveMarks(ctx, "g", "topic", map[int]Mark{0: {Offset: 7, Time: 400}, 1: {Offset: 4, Time: 95}}))
		got, err = r.LoadMarks(ctx, "g", "topic")
		require.NoError(t, err)
		require.Equal(t, map[int]Mark{0: {Offset: 10, Time: 500}, 1: {Offset: 4, Time: 95}}, got)
		other, err := r.LoadMarks(ctx, "other-group", "topic")
		require.NoError(t, err)
		require.Empty(t, other)
	})
}

const dedupeSchema = `
events:
  e:
    key: k
    timestamp: ts
    id: id
    dedupe_window: 100ms
    fields: {k: string, id: string, f: float}
feature_views:
  v:
    source: e
    entity: k
    ttl: 1h
    features:
      n:  {agg: count, window: 50ms, hop: 10ms}
      sf: {agg: sum, field: f, window: 100ms, hop: 10ms}
`

// TestDuplicateIDsAreIgnored sends every event twice at new offsets, as a
// producer retry or a file replayed twice would, in the same batch and in
// later ones: each id counts once within the window, and ids past the window
// are forgotten.
func TestDuplicateIDsAreIgnored(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		reg, err := schemas.Parse("d.yaml", []byte(dedupeSchema))
		require.NoError(t, err)
		l, err := aggregate.NewLayout(reg.Views["v"])
		require.NoError(t, err)
		ev := l.View.Source
		mk := func(id string, ts int64, off int64) sourced {
			e, err := events.Decode(ev, []byte(fmt.Sprintf(`{"k":"a","id":%q,"f":1.5,"ts":%d}`, id, ts)))
			require.NoError(t, err)
			return sourced{ev: e, source: "t/0", offset: off}
		}
		var s []sourced
		var unique []sourced
		off := int64(0)
		for i := range 400 {
			e := mk(fmt.Sprintf("id-%d", i), 1000+int64(i)*5, off)
			s = append(s, e)
			unique = append(unique, e)
			off++
			// The retry: same id and time, a later offset; sometimes in the
			// same batch, sometimes a few batches later.
			s = append(s, mk(fmt.Sprintf("id-%d", i), 1000+int64(i)*5, off))
			off++
		}
		// Reorder a little so retries land in later batches, keeping
		// offsets increasing per source.
		applied, dups := applyInBatches(t, r, l, s, []int{7, 100, 101, 350, 600})
		require.Equal(t, 400, applied)
		require.Equal(t, 400, dups)
		requireStateMatches(t, r, l, unique)
		// Ids are remembered for the window only: the entity's hash holds
		// a bounded number of them however long the stream.
		fields, err := r.Client().HKeys(context.Background(), r.Key(l, "a")).Result()
		require.NoError(t, err)
		ids := 0
		for _, f := range fields {
			if strings.HasPrefix(f, "_i:") {
				ids++
			}
		}
		require.LessOrEqual(t, ids, 2*100/5+10, "ids of a 100ms window at one event per 5ms, plus the sweep's slack")
		// Past the window, the same id counts again.
		late := mk("id-0", 1000+400*5+500, off)
		a2, d2 := applyInBatches(t, r, l, []sourced{late}, nil)
		require.Equal(t, 1, a2)
		require.Zero(t, d2)
	})
}

// TestManyIDsInOneWrite: a hot entity gets thousands of new ids in one
// micro-batch, more fields than one Lua unpack can pass to HSET (about
// 8000 values): the write must still go through, in chunks.
func TestManyIDsInOneWrite(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		reg, err := schemas.Parse("d.yaml", []byte(dedupeSchema))
		require.NoError(t, err)
		l, err := aggregate.NewLayout(reg.Views["v"])
		require.NoError(t, err)
		const n = 6000 // 12,000 HSET values for the ids alone
		var s []sourced
		for i := range n {
			e, err := events.Decode(l.View.Source, []byte(fmt.Sprintf(`{"k":"a","id":"id-%d","f":1.5,"ts":%d}`, i, 1000+i%50)))
			require.NoError(t, err)
			s = append(s, sourced{ev: e, source: "t/0", offset: int64(i)})
		}
		applied, dups := applyInBatches(t, r, l, s, nil)
		require.Equal(t, n, applied)
		require.Zero(t, dups)
		requireStateMatches(t, r, l, s)
	})
}
