package featurize

// processor.go owns turning micro-batches into store updates: Prepare (load
// the watermarks of resumed partitions), Plan (decode, judge, coalesce into
// units) and Apply (write the units, save the watermarks), with the state
// kept per source partition and the outcome counts.

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/schemas"
)

// Processor turns micro-batches of messages into store updates. Prepare,
// Plan and Apply are called from one goroutine (the consume loop's), in
// that order for every batch; Stats may be read from any goroutine.
type Processor struct {
	store  store.Online
	log    *slog.Logger
	routes map[string]*topicRoute // by topic
	views  []*aggregate.Layout
	times  events.TimeRule
	now    func() time.Time
	// marksGroup is the consumer group under which watermarks are saved
	// and loaded (KeepMarks); "": they live in memory only.
	marksGroup string

	// parts is the state of every source partition seen. Only the loop's
	// goroutine reads and writes it, but it adds entries under progress,
	// which also guards every partitionState.appliedBelow: Rebuild reads
	// those while the loop runs (caughtUp).
	parts    map[partition]*partitionState
	progress sync.Mutex

	// gens is, by view, the generation its store keys belong to, when the
	// store keeps generations; bounds, by view, the boundaries of a
	// generation that is catching up: the live path applies a partition's
	// events after its boundary, the catch-up those up to it. Only the
	// loop's goroutine uses them.
	gens   []store.Gen
	bounds []map[partition]int64
	// catchUp marks the processor of a catch-up (newCatchUpProcessor): it
	// applies everything it is given, under source names of its own.
	catchUp bool

	// Stats counts the outcomes of every batch applied, for GET /v1/stats.
	Stats Stats
}

// partition names a source partition.
type partition struct {
	topic string
	id    int
}

// partitionState is what the processor knows of one source partition:
// its watermark and three offsets, each with one meaning.
type partitionState struct {
	// watermark is the highest plausible event time planned from the
	// partition, or loaded with its saved mark; meaningful only when
	// hasWatermark. An event more than a view's MaxLateness behind it is
	// late for the view: lateness is judged in event time, never against
	// the wall clock. Plan raises it; Prepare loads it.
	watermark    int64
	hasWatermark bool
	// nextFetch is the offset after the last one planned: the one the next
	// batch should bring. A batch that brings another first offset resumes
	// the partition after it was consumed elsewhere (a rebalance) or
	// rewound, so Prepare loads its saved watermark again. -1: not being
	// followed (never planned here, or forgotten by a rewind). Plan sets
	// it; forgetPositions resets it.
	nextFetch int64
	// savedThrough is the offset of the saved watermark Prepare last
	// loaded: every message at or below it was planned before (by this
	// process before a rewind, or by another member) and is a redelivery,
	// so one that Plan finds late against that watermark counts as a
	// duplicate, not as late. -1: no watermark was saved. It does not
	// follow this process's own saves: what it plans past it, it plans
	// once.
	savedThrough int64
	// appliedBelow is the offset below which every message of the
	// partition is in the store, as far as this process knows: the highest
	// last offset of a batch applied, plus one (0: none). Apply raises it;
	// Rebuild reads it while the loop runs (caughtUp), so both hold
	// Processor.progress.
	appliedBelow int64
}

// topicRoute is what featurize does with one topic's messages.
type topicRoute struct {
	event *schemas.Event
	views []int // indexes into Processor.views
}

// NewProcessor plans the views of every event type that has one, judging
// event times with the default TimeRule (see JudgeTimes) and keeping
// watermarks in memory only (see KeepMarks).
func NewProcessor(reg *schemas.Registry, st store.Online, kc broker.Config, log *slog.Logger) (*Processor, error) {
	p := &Processor{store: st, log: log, routes: map[string]*topicRoute{}, parts: map[partition]*partitionState{},
		times: events.DefaultTimeRule(), now: time.Now}
	for _, name := range reg.EventNames() {
		views := reg.ViewsOf(name)
		if len(views) == 0 {
			continue
		}
		r := &topicRoute{event: reg.Events[name]}
		for _, v := range views {
			l, err := aggregate.NewLayout(v)
			if err != nil {
				return nil, err
			}
			r.views = append(r.views, len(p.views))
			p.views = append(p.views, l)
		}
		p.routes[kc.Topic(name)] = r
	}
	if len(p.routes) == 0 {
		return nil, errors.New("no feature views: nothing to featurize")
	}
	p.gens = make([]store.Gen, len(p.views))
	p.bounds = make([]map[partition]int64, len(p.views))
	if gs, ok := st.(genStore); ok {
		for vi, l := range p.views {
			if g, ok := gs.GenOf(l); ok {
				p.gens[vi] = g
				if !g.Live() {
					p.bounds[vi] = map[partition]int64{}
				}
			}
		}
	}
	return p, nil
}

// genStore is a store that keeps generations (store.Redis): a view whose
// generation catches up splits each partition at a boundary between the
// catch-up and the live path.
type genStore interface {
	GenOf(l *aggregate.Layout) (store.Gen, bool)
	ClaimBoundary(ctx context.Context, g store.Gen, source string, offset int64) (int64, error)
}

// claimBounds makes sure each partition of msgs has its boundary for every
// view catching up, claiming it at the offset before the partition's first
// message here when none is set: every event this process applies to the
// view from then on is after it, and every one before it is the
// catch-up's. It runs before Plan, which drops the events at or before the
// boundary (Stats.Deferred).
func (p *Processor) claimBounds(ctx context.Context, msgs []kafka.Message) error {
	gs, _ := p.store.(genStore)
	if p.catchUp || gs == nil || !slices.ContainsFunc(p.bounds, func(b map[partition]int64) bool { return b != nil }) {
		return nil // nothing catching up: no per-message work on the hot path
	}
	for i := range msgs {
		m := &msgs[i]
		pk := partition{m.Topic, m.Partition}
		route := p.routes[m.Topic]
		if route == nil {
			continue
		}
		for _, vi := range route.views {
			bounds := p.bounds[vi]
			if bounds == nil {
				continue
			}
			if _, ok := bounds[pk]; ok {
				continue
			}
			b, err := gs.ClaimBoundary(ctx, p.gens[vi], m.Topic+"/"+strconv.Itoa(m.Partition), m.Offset-1)
			if err != nil {
				return err
			}
			bounds[pk] = b
			p.log.InfoContext(ctx, "catch-up boundary", "view", p.views[vi].View.Name, "topic", m.Topic, "partition", m.Partition, "boundary", b)
		}
	}
	return nil
}

// KeepMarks makes the processor save its partitions' watermarks in the
// store with every batch, under the consumer group's name, and load them
// when it starts or resumes a partition (Prepare), so that a redelivered
// event is judged late or not exactly as the first time.
func (p *Processor) KeepMarks(group string) { p.marksGroup = group }

// JudgeTimes makes the processor judge event times with rule on the clock
// now (nil: time.Now).
func (p *Processor) JudgeTimes(rule events.TimeRule, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	p.times, p.now = rule, now
}

// Views are the names of the views the processor keeps, in the order of
// Batch.Outcomes.
func (p *Processor) Views() []string {
	out := make([]string, len(p.views))
	for i, l := range p.views {
		out[i] = l.View.Name
	}
	return out
}

// Topics are the topics the processor consumes.
func (p *Processor) Topics() []string {
	out := make([]string, 0, len(p.routes))
	for t := range p.routes {
		out = append(out, t)
	}
	return out
}

// state returns a partition's state, adding it (followed by nothing yet)
// when it is new.
func (p *Processor) state(pk partition) *partitionState {
	ps := p.parts[pk]
	if ps == nil {
		ps = &partitionState{nextFetch: -1, savedThrough: -1}
		p.progress.Lock()
		p.parts[pk] = ps
		p.progress.Unlock()
	}
	return ps
}

// forgetPositions makes Prepare load every partition's saved watermark
// again: the source rewinds.
func (p *Processor) forgetPositions() {
	for _, ps := range p.parts {
		ps.nextFetch = -1
	}
}

// Prepare loads the saved watermark of each partition of msgs that this
// process has not been following: seen for the first time, or resumed at an
// offset other than the next one (it was consumed elsewhere in between),
// and the boundaries of views catching up (claimBounds). Call it before
// Plan; without KeepMarks it loads no watermark.
func (p *Processor) Prepare(ctx context.Context, msgs []kafka.Message) error {
	if err := p.claimBounds(ctx, msgs); err != nil {
		return err
	}
	if p.marksGroup == "" {
		return nil
	}
	need := map[string][]int{}
	checked := map[partition]bool{}
	for i := range msgs {
		pk := partition{msgs[i].Topic, msgs[i].Partition}
		if checked[pk] {
			continue
		}
		checked[pk] = true
		if ps := p.parts[pk]; ps != nil && ps.nextFetch == msgs[i].Offset {
			continue
		}
		need[pk.topic] = append(need[pk.topic], pk.id)
	}
	for topic, ids := range need {
		saved, err := p.store.LoadMarks(ctx, p.marksGroup, topic)
		if err != nil {
			return err
		}
		// The saved mark is the truth, even when older than ours: a
		// restarted Redis may have lost the writes our mark went on to.
		now := p.now().UnixMilli()
		for _, id := range ids {
			ps := p.state(partition{topic, id})
			if m, ok := saved[id]; ok {
				// Clamped: a mark an implausible event moved far ahead
				// (before the time rule existed) heals on restart.
				ps.watermark, ps.hasWatermark, ps.savedThrough = p.times.Clamp(m.Time, now), true, m.Offset
			} else {
				ps.watermark, ps.hasWatermark, ps.savedThrough = 0, false, -1
			}
		}
	}
	return nil
}

// Stats counts what became of the events, by outcome. Safe for concurrent
// reads while the loop runs.
type Stats struct {
	Messages    atomic.Int64 // messages fetched
	Undecodable atomic.Int64 // messages skipped: not a valid event
	Applied     atomic.Int64 // event×view updates applied
	Duplicates  atomic.Int64 // event×view updates already applied before
	Late        atomic.Int64 // event×view updates dropped as late
	// Deferred counts event×view updates left to a view's catch-up: at or
	// before its boundary, so the catch-up applies them (effectively once,
	// by its own offsets).
	Deferred atomic.Int64
	NoEntity atomic.Int64 // event×view updates without the entity field
	// RejectedTime counts messages skipped for an implausible event time
	// (Config.Times): far ahead of the clock or before the floor.
	RejectedTime atomic.Int64
	Batches      atomic.Int64 // micro-batches applied
}

// Snapshot returns the counts by name, as GET /v1/stats shows them.
func (s *Stats) Snapshot() map[string]int64 {
	return map[string]int64{
		"messages": s.Messages.Load(), "undecodable": s.Undecodable.Load(), "applied": s.Applied.Load(),
		"duplicates": s.Duplicates.Load(), "late": s.Late.Load(), "no_entity": s.NoEntity.Load(), "batches": s.Batches.Load(),
		"rejected_time": s.RejectedTime.Load(), "deferred_to_catch_up": s.Deferred.Load(),
	}
}

// Batch is a micro-batch planned for the store: its events decoded, judged
// for lateness and coalesced per view, entity and source partition.
type Batch struct {
	units    [][]store.Unit // by view
	messages int
	counts   []ViewOutcomes // by view; applied and duplicates once applied
	events   []events.Event // by message; the units point into it
	// marks are the partitions' watermarks after the batch, saved with it.
	marks map[partition]store.Mark
	// ends are the last offset of each partition in the batch.
	ends map[partition]int64
	// redelivered counts, by view, the updates of messages applied by an
	// earlier batch that Plan dropped itself (they looked late).
	redelivered []int64
	// done is, by view, the units the store applied and their results.
	done [][]appliedPart
}

// appliedPart is one store call of Apply: units and their results.
type appliedPart struct {
	units []store.Unit
	res   []store.Result
}

// ViewOutcomes is what became of a micro-batch's updates of one view: each
// message of the view's source is one update, which is applied, a
// duplicate (its offset or id was handled before: a redelivery or a
// producer's retry), late, without the view's entity field, or undecodable.
type ViewOutcomes struct {
	View string // the view's name
	// Applied and Duplicates are known once the batch is applied: updates
	// merged into the store, and updates it had applied before (or that a
	// redelivery made look late).
	Applied, Duplicates int64
	// Late is updates dropped for an event time more than the view's
	// max lateness behind its partition's watermark; NoEntity, updates
	// without the view's entity field; Undecodable, messages that are not
	// a valid event.
	Late, NoEntity, Undecodable int64
	// RejectedTime is updates skipped for an implausible event time.
	RejectedTime int64
	// Deferred is updates left to the view's catch-up (Stats.Deferred).
	Deferred int64
}

// Outcomes returns what became of the batch's updates, per view in the
// order of Processor.Views. Applied and Duplicates are known once the batch
// is applied.
func (b *Batch) Outcomes() []ViewOutcomes { return b.counts }

// EachApplied calls f with the view (its index in Outcomes) and the event
// time of every update the store applied. Per entity and partition these
// are the events past the offset the entity held; when ids were also
// skipped as duplicates, which ones is not known: their count is exact, the
// event times are those of the unit's latest events.
func (b *Batch) EachApplied(f func(view int, eventTime int64)) {
	for vi, parts := range b.done {
		for _, part := range parts {
			for k := range part.units {
				evs := part.units[k].Events
				for _, e := range evs[len(evs)-part.res[k].Applied:] {
					f(vi, e.Time)
				}
			}
		}
	}
}

// unitKey names a unit of a batch.
type unitKey struct {
	view   int
	entity string
	source string
}

// Plan decodes and coalesces a micro-batch. It advances the partitions'
// watermarks, so each message must be planned exactly once, in order. ctx
// is the batch's, for what it logs.
func (p *Processor) Plan(ctx context.Context, msgs []kafka.Message) *Batch {
	b := &Batch{units: make([][]store.Unit, len(p.views)), messages: len(msgs), counts: make([]ViewOutcomes, len(p.views)),
		events: make([]events.Event, len(msgs)), marks: map[partition]store.Mark{}, ends: map[partition]int64{},
		redelivered: make([]int64, len(p.views))}
	for vi, l := range p.views {
		b.counts[vi].View = l.View.Name
	}
	index := map[unitKey]int{}
	now := p.now().UnixMilli()
	for i := range msgs {
		m := &msgs[i]
		pk := partition{m.Topic, m.Partition}
		// After a rebalance kafka-go restarts a partition from its
		// committed offset, so one batch can hold 100..200 then 50..250.
		// A message at or below one already in the batch was planned
		// already (or applied by an earlier batch): taking it again would
		// count it twice, since the store skips by the highest offset.
		if last, ok := b.ends[pk]; ok && m.Offset <= last {
			continue
		}
		ps := p.state(pk)
		ps.nextFetch = m.Offset + 1
		b.ends[pk] = m.Offset
		route := p.routes[m.Topic]
		if route == nil {
			continue
		}
		ev, ok := p.decode(ctx, b, route, m, now)
		if !ok {
			continue
		}
		b.events[i] = ev
		p.addToUnits(b, index, route, ps, m, &b.events[i])
		if !ps.hasWatermark || ev.Time > ps.watermark {
			ps.watermark, ps.hasWatermark = ev.Time, true
		}
	}
	for pk, off := range b.ends {
		if ps := p.parts[pk]; ps.hasWatermark {
			b.marks[pk] = store.Mark{Offset: off, Time: ps.watermark}
		}
	}
	return b
}

// decode decodes m and checks its event time on this process's clock (now,
// in ms), so that whatever a producer wrote, no watermark runs ahead of the
// clock by more than the allowed skew. A message that fails either is
// counted for each of the route's views and logged, and decode returns
// false.
func (p *Processor) decode(ctx context.Context, b *Batch, route *topicRoute, m *kafka.Message, now int64) (events.Event, bool) {
	ev, err := events.Decode(route.event, m.Value)
	if err != nil {
		p.Stats.Undecodable.Add(1)
		for _, vi := range route.views {
			b.counts[vi].Undecodable++
		}
		p.log.WarnContext(ctx, "skipping undecodable message", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", err)
		return events.Event{}, false
	}
	if fe := p.times.Check(route.event.Timestamp, ev.Time, true, now); fe != nil {
		p.Stats.RejectedTime.Add(1)
		for _, vi := range route.views {
			b.counts[vi].RejectedTime++
		}
		p.log.WarnContext(ctx, "skipping message with an implausible event time", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", fe)
		return events.Event{}, false
	}
	return ev, true
}

// addToUnits adds the event ev of message m to the unit of its entity and
// partition in each of the route's views, unless the view has no entity
// for it or it is late for the view against the partition's watermark
// before it.
func (p *Processor) addToUnits(b *Batch, index map[unitKey]int, route *topicRoute, ps *partitionState, m *kafka.Message, ev *events.Event) {
	source := m.Topic + "/" + strconv.Itoa(m.Partition)
	if p.catchUp {
		// Its own offsets in the entity's state: the live path's mark of
		// the partition may be past the events the catch-up applies.
		source += catchUpSuffix
	}
	for _, vi := range route.views {
		l := p.views[vi]
		ent := ev.Values[l.EntityIndex()]
		if !ent.Present() {
			b.counts[vi].NoEntity++
			continue
		}
		if ps.hasWatermark && ev.Time < ps.watermark-l.View.MaxLateness {
			// A redelivered message is judged against the watermark
			// saved after it. It was applied or dropped the first
			// time; either way, this time it is a duplicate.
			if ps.savedThrough >= 0 && m.Offset <= ps.savedThrough {
				b.redelivered[vi]++
			} else {
				b.counts[vi].Late++
			}
			continue
		}
		if bd, ok := p.bounds[vi][partition{m.Topic, m.Partition}]; ok && m.Offset <= bd {
			b.counts[vi].Deferred++
			continue
		}
		k := unitKey{vi, ent.Text(), source}
		j, ok := index[k]
		if !ok {
			j = len(b.units[vi])
			index[k] = j
			b.units[vi] = append(b.units[vi], store.Unit{Entity: k.entity, Source: source})
		}
		u := &b.units[vi][j]
		u.Offsets = append(u.Offsets, m.Offset)
		u.Events = append(u.Events, ev)
	}
}

// applyShards is how many parts of a batch are applied at once. Entities
// are independent keys, so while Redis works through one part's round trip
// featurize merges another's: the two never wait on each other.
const applyShards = 4

// Apply writes a planned batch to the store, then saves the partitions'
// watermarks (with KeepMarks) and counts the outcomes. It may be retried:
// the store skips what an earlier attempt applied. The caller commits the
// batch's offsets only after a nil return.
func (p *Processor) Apply(ctx context.Context, b *Batch) error {
	if err := p.applyUnits(ctx, b); err != nil {
		return err
	}
	if err := p.saveMarks(ctx, b); err != nil {
		return err
	}
	p.progress.Lock()
	for pk, off := range b.ends {
		ps := p.parts[pk]
		ps.appliedBelow = max(ps.appliedBelow, off+1)
	}
	p.progress.Unlock()
	p.count(b)
	return nil
}

// applyUnits writes every view's units, in up to applyShards concurrent
// store calls, and records in b.done what each applied.
func (p *Processor) applyUnits(ctx context.Context, b *Batch) error {
	b.done = make([][]appliedPart, len(b.units))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(applyShards)
	for vi, units := range b.units {
		for _, part := range shard(units, applyShards) {
			if len(part) == 0 {
				continue
			}
			g.Go(func() error {
				res, err := p.store.Apply(gctx, p.views[vi], part)
				if err != nil {
					return err
				}
				mu.Lock()
				b.done[vi] = append(b.done[vi], appliedPart{part, res})
				mu.Unlock()
				return nil
			})
		}
	}
	return g.Wait()
}

// saveMarks saves the watermarks the batch left, per topic, with KeepMarks.
func (p *Processor) saveMarks(ctx context.Context, b *Batch) error {
	if p.marksGroup == "" {
		return nil
	}
	byTopic := map[string]map[int]store.Mark{}
	for pk, m := range b.marks {
		if byTopic[pk.topic] == nil {
			byTopic[pk.topic] = map[int]store.Mark{}
		}
		byTopic[pk.topic][pk.id] = m
	}
	for topic, marks := range byTopic {
		if err := p.store.SaveMarks(ctx, p.marksGroup, topic, marks); err != nil {
			return err
		}
	}
	return nil
}

// count completes the batch's outcomes with what the store applied and
// adds them to Stats.
func (p *Processor) count(b *Batch) {
	var applied, dups, late, noEntity, deferred int64
	for vi := range b.counts {
		c := &b.counts[vi]
		c.Applied, c.Duplicates = 0, b.redelivered[vi]
		for _, part := range b.done[vi] {
			for _, r := range part.res {
				c.Applied += int64(r.Applied)
				c.Duplicates += int64(r.Duplicates)
			}
		}
		applied, dups, late, noEntity = applied+c.Applied, dups+c.Duplicates, late+c.Late, noEntity+c.NoEntity
		deferred += c.Deferred
	}
	p.Stats.Deferred.Add(deferred)
	p.Stats.Messages.Add(int64(b.messages))
	p.Stats.Late.Add(late)
	p.Stats.NoEntity.Add(noEntity)
	p.Stats.Applied.Add(applied)
	p.Stats.Duplicates.Add(dups)
	p.Stats.Batches.Add(1)
}

// shard splits units into n parts by entity, so an entity's units (one per
// source partition) stay in one part and never race each other.
func shard(units []store.Unit, n int) [][]store.Unit {
	if len(units) < 256 {
		return [][]store.Unit{units}
	}
	parts := make([][]store.Unit, n)
	for _, u := range units {
		h := fnv.New32a()
		_, _ = h.Write([]byte(u.Entity))
		i := int(h.Sum32() % uint32(n))
		parts[i] = append(parts[i], u)
	}
	return parts
}
