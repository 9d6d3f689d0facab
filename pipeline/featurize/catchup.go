package featurize

// catchup.go owns recomputing a view's new generation from Kafka while the
// live path runs: a consumer group of its own reads the view's topic from
// the earliest retained offsets into the new generation's keys, up to each
// partition's boundary (claimBounds), rate-limited, and the generation goes
// live once every partition is applied up to its boundary.
//
// Why it is effectively once: every event of a partition is applied to the
// generation by exactly one of the two paths, split at the boundary, and
// each path skips what it applied before by its own offsets in the entity's
// state (the catch-up's source names end in catchUpSuffix). A boundary is
// claimed once (HSETNX) and never moves: by the live path before it applies
// anything to the generation (at the offset before its first message), or,
// for a partition the live path has nothing to apply, by the catch-up at
// the live group's committed offset, which is past everything the live
// path applied without a claim. Until a boundary is claimed, the catch-up
// applies only what the live group has committed, which can only be at or
// before the boundary claimed later.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/freshet-ml/freshet/pipeline/retry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/schemas"
)

// catchUpSuffix ends the source names under which a catch-up records its
// offsets in an entity's state.
const catchUpSuffix = "#catchup"

// claimGrace is how long after a generation is made the catch-up waits
// before it claims a boundary for a partition the live path has not: time
// for a featurize still on the retired generation to notice and stop
// (watchGens, every 2s) and for its last commits.
const claimGrace = 10 * time.Second

// genKeeper is what a catch-up needs of the store besides Online: the
// generations and their boundaries (store.Redis).
type genKeeper interface {
	store.Online
	genStore
	Generations(ctx context.Context) (map[string]store.Gen, error)
	Boundaries(ctx context.Context, g store.Gen) (map[string]int64, error)
	SetProgress(ctx context.Context, g store.Gen, p store.CatchUpProgress) error
	GoLive(ctx context.Context, g store.Gen) (bool, error)
}

var _ genKeeper = (*store.Redis)(nil)

// errRetired is why featurize stops when a later deploy replaced the
// generation of one of its views.
var errRetired = errors.New("a later deploy changed these definitions")

// catchUp recomputes one view's generation.
type catchUp struct {
	cfg   Config // the catch-up's: its own group
	live  string // the live consumer group
	st    genKeeper
	gen   store.Gen
	topic string
	proc  *Processor
	log   *slog.Logger
	start time.Time

	limits   atomic.Pointer[map[int]limit] // by partition
	progress atomic.Pointer[store.CatchUpProgress]
	src      *boundedSource
	logged   time.Time // when progress was last logged
}

// limit is how far the catch-up may apply a partition: up to offset; final
// when it is the claimed boundary (the rest is the live path's).
type limit struct {
	offset int64
	final  bool
}

// newCatchUp plans the catch-up of view under generation g.
func newCatchUp(cfg Config, reg *schemas.Registry, st genKeeper, g store.Gen, log *slog.Logger) (*catchUp, error) {
	v := reg.Views[g.View]
	if v == nil {
		return nil, fmt.Errorf("catch up view %s: not in the definitions", g.View)
	}
	ccfg := cfg
	ccfg.GroupID = cfg.GroupID + ".catchup." + g.View + "." + g.ID
	proc, err := NewProcessor(reg, st, cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	proc.only(g.View)
	proc.catchUp = true
	proc.JudgeTimes(cfg.Times, nil)
	proc.KeepMarks(ccfg.GroupID)
	c := &catchUp{cfg: ccfg, live: cfg.GroupID, st: st, gen: g, topic: cfg.Kafka.Topic(v.Source.Name), proc: proc,
		log: log.With("view", g.View, "generation", g.ID), start: time.Now()}
	c.progress.Store(&store.CatchUpProgress{View: g.View, Generation: g.ID})
	return c, nil
}

// only keeps the processor to one view.
func (p *Processor) only(view string) {
	for topic, r := range p.routes {
		var keep []int
		for _, vi := range r.views {
			if p.views[vi].View.Name == view {
				keep = append(keep, vi)
			}
		}
		if len(keep) == 0 {
			delete(p.routes, topic)
			continue
		}
		r.views = keep
	}
}

// Run catches up until the generation is live (nil), ctx ends (nil) or a
// later deploy retired it (errRetired).
func (c *catchUp) Run(ctx context.Context) error {
	c.log.Info("catching up from the earliest retained offsets", "topic", c.topic, "group", c.cfg.GroupID, "rate", c.cfg.CatchUpRate)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src := &boundedSource{inner: NewGroupReader(c.cfg, []string{c.topic}), limits: &c.limits, rate: c.cfg.CatchUpRate}
	c.src = src
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := NewConsumer(c.cfg, src, c.proc, c.log).Run(cctx); err != nil {
			c.log.Error("catch-up consumer", "error", err)
		}
	})
	stop := func() {
		cancel()
		wg.Wait()
		if err := src.Close(); err != nil {
			c.log.Warn("close catch-up consumer", "error", err)
		}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		done, err := c.check(ctx)
		switch {
		case errors.Is(err, errRetired):
			stop()
			return err
		case err != nil && ctx.Err() == nil:
			c.log.Warn("check catch-up progress; retrying", "error", err)
		case done:
			stop() // applies and commits what it holds
			var live bool
			var backoff retry.Backoff
			for {
				if live, err = c.st.GoLive(ctx, c.gen); err == nil {
					break
				}
				// Redis away: the catch-up is complete and stays so;
				// only the switch waits.
				c.log.Warn("make the view live; retrying", "error", err, "backoff", backoff.Delay())
				if backoff.Wait(ctx) != nil {
					return nil
				}
			}
			p := c.progress.Load()
			if !live {
				return fmt.Errorf("catch up view %s: %w", c.gen.View, errRetired)
			}
			c.log.Info("caught up: the view is live", "applied", p.Applied, "events_per_second", p.Rate, "took", time.Since(c.start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-t.C:
		}
	}
}

// Progress is the catch-up's last check.
func (c *catchUp) Progress() store.CatchUpProgress { return *c.progress.Load() }

// check reads where the live group, the catch-up and the boundaries are,
// claims the boundaries of partitions the live path has nothing to apply,
// moves the limits and records the progress. It reports whether every
// partition is applied up to its boundary.
func (c *catchUp) check(ctx context.Context) (bool, error) {
	gens, err := c.st.Generations(ctx)
	if err != nil {
		return false, err
	}
	if cur, ok := gens[c.gen.View]; !ok || cur.ID != c.gen.ID {
		return false, fmt.Errorf("view %s is now generation %s: %w", c.gen.View, cur.ID, errRetired)
	}
	spans, err := c.cfg.Kafka.Spans(ctx, []string{c.topic}, false)
	if err != nil {
		return false, err
	}
	parts := spans[c.topic]
	ids := make([]int, len(parts))
	for i, s := range parts {
		ids[i] = s.Partition
	}
	liveAt, err := c.committed(ctx, c.live, ids)
	if err != nil {
		return false, err
	}
	mineAt, err := c.committed(ctx, c.cfg.GroupID, ids)
	if err != nil {
		return false, err
	}
	bounds, err := c.st.Boundaries(ctx, c.gen)
	if err != nil {
		return false, err
	}
	limits := map[int]limit{}
	p := store.CatchUpProgress{View: c.gen.View, Generation: c.gen.ID, Partitions: len(parts)}
	for _, s := range parts {
		source := c.topic + "/" + strconv.Itoa(s.Partition)
		b, claimed := bounds[source]
		if !claimed && time.Since(c.start) > claimGrace {
			// The live path has applied nothing to the generation here
			// (it claims before it does), so its committed offset is
			// past everything it applied without it.
			at, ok := liveAt[s.Partition]
			if !ok {
				at = s.First // it will start at the earliest
			}
			if b, err = c.st.ClaimBoundary(ctx, c.gen, source, at-1); err != nil {
				return false, err
			}
			claimed = true
		}
		lim := limit{offset: b, final: claimed}
		if !claimed {
			lim.offset = -1
			if at, ok := liveAt[s.Partition]; ok {
				lim.offset = at - 1
			}
		}
		limits[s.Partition] = lim
		next := s.First
		if at, ok := mineAt[s.Partition]; ok {
			next = max(next, at)
		}
		if claimed && next > b {
			p.Done++
		}
		p.Remaining += max(0, min(lim.offset+1, s.Last)-next)
	}
	c.limits.Store(&limits)
	p.Applied = c.proc.Stats.Applied.Load()
	if first := c.src.first.Load(); first > 0 {
		if secs := time.Since(time.Unix(0, first)).Seconds(); secs > 0 {
			p.Rate = float64(p.Applied) / secs
		}
	}
	c.progress.Store(&p)
	if time.Since(c.logged) >= 10*time.Second {
		c.logged = time.Now()
		c.log.Info("catching up", "partitions_done", p.Done, "partitions", p.Partitions, "remaining", p.Remaining,
			"applied", p.Applied, "events_per_second", int64(p.Rate))
	}
	if err := c.st.SetProgress(ctx, c.gen, p); err != nil {
		return false, err
	}
	return p.Done == p.Partitions, nil
}

// committed returns a group's committed offsets of the topic's partitions;
// a partition it never committed is absent.
func (c *catchUp) committed(ctx context.Context, group string, ids []int) (map[int]int64, error) {
	res, err := c.cfg.Kafka.Client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{c.topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	if res.Error != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, res.Error)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[c.topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("committed offset of group %s on %s/%d: %w", group, c.topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// rateStep is the shortest pause of a catch-up's pacing; rateBurst the
// most of its rate it may catch up on after a pause.
const (
	rateStep  = 10 * time.Millisecond
	rateBurst = 250 * time.Millisecond
)

// boundedSource is a catch-up's source: it hands over a partition's
// messages up to its limit, at most rate a second, holds one past a limit
// that is not final until the limit moves, and drops those past a final
// one (the live path applies them).
type boundedSource struct {
	inner  Source
	limits *atomic.Pointer[map[int]limit]
	rate   float64 // events per second; 0: unlimited
	held   *kafka.Message
	next   time.Time // when the rate allows the next message
	// first is when the first message was handed over (unix ns; 0: not
	// yet): the catch-up's rate counts from it, not from joining the group.
	first atomic.Int64
}

var (
	_ Source   = (*boundedSource)(nil)
	_ Rewinder = (*boundedSource)(nil)
)

// FetchMessage implements Source.
func (s *boundedSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for {
		var m kafka.Message
		if s.held != nil {
			m, s.held = *s.held, nil
		} else {
			var err error
			if m, err = s.inner.FetchMessage(ctx); err != nil {
				return m, err
			}
		}
		lim := limit{offset: -1}
		if ls := s.limits.Load(); ls != nil {
			if l, ok := (*ls)[m.Partition]; ok {
				lim = l
			}
		}
		if m.Offset > lim.offset {
			if lim.final {
				continue // the live path's
			}
			s.held = &m
			if err := retry.Sleep(ctx, 200*time.Millisecond); err != nil {
				return kafka.Message{}, err
			}
			continue
		}
		if s.rate > 0 {
			// Paced in steps of at least rateStep: a timer cannot sleep
			// the fraction of a millisecond one event is worth. What the
			// pauses between batches (applying them) leave unused is
			// kept, up to rateBurst, so that the rate holds on average.
			now := time.Now()
			if s.next.Before(now.Add(-rateBurst)) {
				s.next = now.Add(-rateBurst)
			}
			s.next = s.next.Add(time.Duration(float64(time.Second) / s.rate))
			if wait := s.next.Sub(now); wait >= rateStep {
				if err := retry.Sleep(ctx, wait); err != nil {
					s.held = &m
					s.next = s.next.Add(-time.Duration(float64(time.Second) / s.rate))
					return kafka.Message{}, err
				}
			}
		}
		s.first.CompareAndSwap(0, time.Now().UnixNano())
		return m, nil
	}
}

// CommitMessages implements Source.
func (s *boundedSource) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	return s.inner.CommitMessages(ctx, msgs...)
}

// Rewind implements Rewinder: the held message goes with the rest.
func (s *boundedSource) Rewind() error {
	s.held = nil
	if r, ok := s.inner.(Rewinder); ok {
		return r.Rewind()
	}
	return errors.New("the catch-up's source cannot rewind")
}

// Close implements Source.
func (s *boundedSource) Close() error { return s.inner.Close() }

// startCatchUps starts, in g, a catch-up for every view whose generation
// is catching up. One that finds its generation retired stops featurize.
func (s *Service) startCatchUps(g *errgroup.Group, ctx context.Context) {
	keeper, ok := s.st.(genKeeper)
	if !ok {
		return
	}
	for _, gen := range s.Proc.gens {
		if gen.ID == "" || gen.Live() {
			continue
		}
		c, err := newCatchUp(s.cfg, s.reg, keeper, gen, s.log)
		if err != nil {
			g.Go(func() error { return err })
			continue
		}
		s.cuMu.Lock()
		s.catchUps = append(s.catchUps, c)
		s.cuMu.Unlock()
		g.Go(func() error { return c.Run(ctx) })
	}
}

// CatchUps returns the progress of the views this process recomputes.
func (s *Service) CatchUps() []store.CatchUpProgress {
	s.cuMu.Lock()
	defer s.cuMu.Unlock()
	out := make([]store.CatchUpProgress, len(s.catchUps))
	for i, c := range s.catchUps {
		out[i] = c.Progress()
	}
	return out
}

// watchGens stops featurize (errRetired) when a later deploy gives one of
// its views another generation: the keys it writes are no longer read, and
// the events it applies would be missing from the new generation. It
// checks every 2s until ctx ends.
func (s *Service) watchGens(ctx context.Context) error {
	keeper, ok := s.st.(genKeeper)
	if !ok {
		return nil
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		gens, err := keeper.Generations(ctx)
		if err != nil {
			continue // the store is down: the consumer says so
		}
		if err := s.stale(gens); err != nil {
			return err
		}
	}
}

// stale says why this featurize must stop under the generations a later
// deploy recorded, nil when it need not: one of its views has another
// generation, or a view it does not have is catching up (its boundaries
// assume every featurize of the group applies it).
func (s *Service) stale(gens map[string]store.Gen) error {
	if len(gens) == 0 {
		return nil // none recorded (dev mode, or a store from before them)
	}
	mine := map[string]bool{}
	for _, g := range s.Proc.gens {
		if g.ID == "" {
			continue
		}
		mine[g.View] = true
		if cur := gens[g.View]; cur.ID != g.ID {
			return fmt.Errorf("view %s: %w (its state is now generation %q, this featurize writes %q): this featurize stops; run it with the deployed definitions (GET /v1/views on serve shows them)",
				g.View, errRetired, cur.ID, g.ID)
		}
	}
	for view, g := range gens {
		if !mine[view] && !g.Live() && len(mine) > 0 {
			return fmt.Errorf("view %s: %w (it is being recomputed and this featurize does not have it): this featurize stops; run it with the deployed definitions (GET /v1/views on serve shows them)",
				view, errRetired)
		}
	}
	return nil
}
