package main

import (
	"context"
	"flag"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/store"
)

// featurizeDefaults are featurize's default settings (the processes run
// with them), read from its own flag set: the direct-write limit copies
// its micro-batch size.
func featurizeDefaults() featurize.Config {
	var c featurize.Config
	c.RegisterFlags(flag.NewFlagSet("featurize", flag.ContinueOnError))
	return c
}

// featurizeFigure is what one topic measured.
type featurizeFigure struct {
	ds                          *dataset
	write, read, feat, direct   float64 // events/s
	memory                      map[string]viewSample
	usedBefore, usedAfter       int64
	applied, late, undecodable  int64
	duplicates                  int64
	featurizeRSS, catchUpMillis int64
}

// featurizePhase loads one topic per entity count, and for each measures
// the kafka-go Reader alone, featurize, and go-redis's equivalent pipelined
// writes alone, then Redis's bytes per entity.
func (b *bench) featurizePhase(ctx context.Context) error {
	var figs []*featurizeFigure
	for _, n := range b.plan.Entities {
		ds := b.newDataset(fmt.Sprintf("f%d", n), n, b.plan.FeaturizeEvents)
		f, err := b.featurizeOne(ctx, ds)
		if err != nil {
			return err
		}
		figs = append(figs, f)
		if n == b.plan.ServeEntities {
			b.serveDS = ds
		}
		if n == b.plan.HeavyEntities {
			b.heavyDS = ds
		}
	}
	if b.serveDS == nil {
		return fmt.Errorf("no featurize topic with %d entities for serve", b.plan.ServeEntities)
	}
	b.featurizeRows(figs)
	return nil
}

func (b *bench) featurizeOne(ctx context.Context, ds *dataset) (*featurizeFigure, error) {
	f := &featurizeFigure{ds: ds}
	b.log.Info("featurize: generating", "topic", ds.Topic(), "events", ds.Events, "entities", ds.Entities)
	evs, msgs, err := b.generate(ds)
	if err != nil {
		return nil, err
	}
	// One write at a time keeps each partition in event-time order, as
	// ingest replay writes: concurrent writes would interleave and make
	// events late.
	if f.write, err = b.writeTopic(ctx, ds, msgs, 10_000, 1); err != nil {
		return nil, err
	}
	b.log.Info("featurize: topic written", "events/s (Writer, batches of 10000)", int(f.write))
	if f.read, err = b.readTopic(ctx, ds); err != nil {
		return nil, err
	}
	b.log.Info("featurize: kafka-go Reader alone", "events/s", int(f.read))
	f.usedBefore = usedMemory(ctx, b.env.Redis)
	err = b.prof.Phase(ctx, "featurize-"+ds.Name, func() error { return b.runFeaturize(ctx, ds, f) })
	if err != nil {
		return nil, err
	}
	f.usedAfter = usedMemory(ctx, b.env.Redis)
	b.log.Info("featurize: done", "events/s", int(f.feat), "applied", f.applied, "peak RSS MiB", f.featurizeRSS>>20)
	if f.memory, err = b.sampleViews(ctx, ds); err != nil {
		return nil, err
	}
	b.samples[ds] = f.memory
	if f.direct, err = b.directWrites(ctx, ds, evs, msgs, f.memory); err != nil {
		return nil, err
	}
	b.log.Info("featurize: go-redis pipelined writes alone", "events/s", int(f.direct))
	return f, nil
}

// runFeaturize starts a featurize process on ds's topic and waits until it
// has applied every message. Its rate runs from the first progress seen to
// the last message, so start-up and the group join do not count.
func (b *bench) runFeaturize(ctx context.Context, ds *dataset, f *featurizeFigure) error {
	t0 := time.Now()
	p, err := b.env.Start(ctx, "featurize-"+ds.Name, "featurize", settings{
		"FRESHET_TOPIC_PREFIX": ds.TopicPrefix, "FRESHET_GROUP_ID": ds.Group, "FRESHET_REDIS_PREFIX": ds.RedisPrefix,
	}, true)
	if err != nil {
		return err
	}
	defer p.Stop()
	// Progress is counted in events applied to every view: a consumer
	// group that rebalances redelivers messages, which featurize counts
	// again as messages but skips as duplicates.
	views := int64(len(b.views))
	var (
		first   time.Time
		firstN  int64
		last    map[string]int64
		changed = time.Now()
	)
	deadline := time.Now().Add(b.plan.CatchUp)
	for {
		st, err := p.stats(ctx, b.client)
		if err != nil {
			if p.Exited() {
				return fmt.Errorf("featurize exited: %w", p.Stop())
			}
			return fmt.Errorf("featurize stats: %w", err)
		}
		now := time.Now()
		done := st["applied"] / views
		if done > 0 && first.IsZero() {
			first, firstN = now, done
		}
		if last == nil || st["applied"] != last["applied"] {
			changed = now
		}
		last = st
		if done >= int64(ds.Events) {
			break
		}
		if now.After(deadline) {
			return fmt.Errorf("featurize never caught up: %d of %d events applied to its %d views after %s (no progress for %s; stats %v); its last log lines:\n%s",
				done, ds.Events, views, b.plan.CatchUp, now.Sub(changed).Round(time.Second), st, p.LogTail(15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	end := time.Now()
	f.catchUpMillis = end.Sub(t0).Milliseconds()
	if n := int64(ds.Events) - firstN; n > 0 && end.After(first) {
		f.feat = float64(n) / end.Sub(first).Seconds()
	} else { // everything in the first batch seen: count from the start
		f.feat = float64(ds.Events) / end.Sub(t0).Seconds()
	}
	f.applied, f.late, f.undecodable, f.duplicates = last["applied"], last["late"], last["undecodable"], last["duplicates"]
	f.featurizeRSS = p.PeakRSS()
	b.rss = append(b.rss, rssFigure{"featurize", fmt.Sprintf("%d events, %d entities", ds.Events, ds.Entities), f.featurizeRSS})
	if err := p.Stop(); err != nil {
		return err
	}
	if want := int64(ds.Events) * views; f.applied != want || f.undecodable != 0 || f.late != 0 {
		return fmt.Errorf("featurize applied %d event×view updates of %d (late %d, undecodable %d)", f.applied, want, f.late, f.undecodable)
	}
	return nil
}

// viewSample is what sampled keys of a view hold.
type viewSample struct {
	Keys int // sampled keys that exist
	// Bytes is the mean MEMORY USAGE of a key.
	Bytes float64
	// Fields is the mean number of hash fields; TileBytes the mean length
	// of a tile field's value.
	Fields, TileBytes float64
}

// sampleViews reads up to 200 entities of each view of ds: their memory,
// fields and tile sizes.
func (b *bench) sampleViews(ctx context.Context, ds *dataset) (map[string]viewSample, error) {
	out := map[string]viewSample{}
	st := store.NewRedis(b.env.Redis, ds.RedisPrefix)
	n := min(200, ds.Entities)
	for _, name := range b.views {
		l := b.layouts[name]
		pipe := b.env.Redis.Pipeline()
		mems := make([]*redis.IntCmd, n)
		hashes := make([]*redis.MapStringStringCmd, n)
		for i := range n {
			key := st.Key(l, b.entityID(l, ds, i*max(ds.Entities/n, 1)))
			mems[i] = pipe.MemoryUsage(ctx, key, 0)
			hashes[i] = pipe.HGetAll(ctx, key)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("sample %s keys: %w", name, err)
		}
		var s viewSample
		var tiles, tileBytes int
		for i := range n {
			m, err := mems[i].Result()
			if err != nil {
				continue // no such key
			}
			s.Keys++
			s.Bytes += float64(m)
			h := hashes[i].Val()
			s.Fields += float64(len(h))
			for k, v := range h {
				if !strings.HasPrefix(k, "_") {
					tiles++
					tileBytes += len(v)
				}
			}
		}
		if s.Keys == 0 {
			return nil, fmt.Errorf("view %s: none of %d sampled entities has state under %s", name, n, ds.RedisPrefix)
		}
		s.Bytes /= float64(s.Keys)
		s.Fields /= float64(s.Keys)
		if tiles > 0 {
			s.TileBytes = float64(tileBytes) / float64(tiles)
		}
		out[name] = s
	}
	return out, nil
}

// entityID is the id of entity i of a view in ds's events: users are
// u%06d, merchants m%04d (bench/internal/synth).
func (b *bench) entityID(l *aggregate.Layout, ds *dataset, i int) string {
	if l.View.Entity == "merchant_id" {
		return fmt.Sprintf("m%04d", i)
	}
	return fmt.Sprintf("u%06d", i)
}

// directWrites applies, with go-redis alone, the writes featurize makes for
// ds's events: per micro-batch of featurize's default size and per view, one
// HSET per entity of the tiles the batch touches (values as long as the
// real ones), its version, newest time and partition offset, and a PEXPIRE;
// pipelined in four concurrent shards by entity, as featurize applies. No
// read, no merge, no script: the write floor. Each batch's commands are
// planned off the clock; the rate counts their sending and Redis's work.
func (b *bench) directWrites(ctx context.Context, ds *dataset, evs []events.Event, msgs []kafka.Message, sample map[string]viewSample) (float64, error) {
	const shards = 4
	type write struct {
		key    string
		fields map[string]struct{}
		ts     int64
		part   int
		val    string
	}
	prefix := ds.RedisPrefix + "direct:"
	seed := maphash.MakeSeed()
	bal := &kafka.Murmur2Balancer{}
	parts := []int{0, 1, 2, 3, 4, 5}
	var took time.Duration
	batch := featurizeDefaults().BatchSize
	for lo := 0; lo < len(evs); lo += batch {
		hi := min(lo+batch, len(evs))
		var shard [shards][]*write
		for _, name := range b.views {
			l := b.layouts[name]
			val := strings.Repeat("7", max(int(math.Round(sample[name].TileBytes)), 1))
			byEntity := map[string]*write{}
			for i := lo; i < hi; i++ {
				ev := &evs[i]
				ent := ev.Get(l.View.Entity).Text()
				w := byEntity[ent]
				if w == nil {
					w = &write{key: prefix + name + ":" + l.Fingerprint + ":" + ent, fields: map[string]struct{}{}, part: bal.Balance(msgs[i], parts...), val: val}
					byEntity[ent] = w
					s := maphash.String(seed, ent) % shards
					shard[s] = append(shard[s], w)
				}
				w.ts = max(w.ts, ev.Time)
				for g := range l.Groups {
					w.fields[strconv.Itoa(g)+":"+strconv.FormatInt(aggregate.FloorDiv(ev.Time, l.Groups[g].Hop), 10)] = struct{}{}
				}
			}
		}
		var cmds [shards][][]any
		for s := range shards {
			for _, w := range shard[s] {
				args := make([]any, 0, 2*len(w.fields)+8)
				args = append(args, "hset", w.key, "_v", lo, "_e", w.ts, "_o:"+ds.Topic()+"/"+strconv.Itoa(w.part), hi)
				for f := range w.fields {
					args = append(args, f, w.val)
				}
				cmds[s] = append(cmds[s], args, []any{"pexpire", w.key, int64(8 * 24 * time.Hour / time.Millisecond)})
			}
		}
		t := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		for s := range shards {
			g.Go(func() error {
				pipe := b.env.Redis.Pipeline()
				for _, args := range cmds[s] {
					pipe.Do(gctx, args...)
				}
				_, err := pipe.Exec(gctx)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return 0, fmt.Errorf("direct writes: %w", err)
		}
		took += time.Since(t)
	}
	return float64(len(evs)) / took.Seconds(), nil
}

// usedMemory is Redis's used_memory in bytes (0 when unknown).
func usedMemory(ctx context.Context, rc *redis.Client) int64 {
	info, err := rc.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
