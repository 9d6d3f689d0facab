// Package featurize consumes events from Kafka in a consumer group and keeps
// every feature view's tiles in the online store, effectively once.
//
// The loop is: fetch a micro-batch, coalesce its events per view, entity and
// source partition, apply them to the store (which skips every event it has
// applied before), and only then commit the offsets. A crash anywhere
// redelivers messages whose effects the store already holds or skips. The
// package owns that loop and lateness; it must not know HTTP or the tile
// format.
package featurize

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/schemas"
)

// Config is featurize's settings.
type Config struct {
	HTTPAddr    string
	GroupID     string
	BatchSize   int
	BatchWait   time.Duration
	CommitDelay time.Duration
	Kafka       broker.Config
	// Times is which event times are plausible: an event outside is
	// counted as rejected_time and skipped, and never moves a watermark.
	// Other producers than ingest write to the topics too.
	Times events.TimeRule
}

// RegisterFlags registers the settings with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8082", "address of the health, stats and metrics endpoints")
	fs.StringVar(&c.GroupID, "group-id", "freshet-featurize", "Kafka consumer group")
	// Under a backlog the batch fills at once: the bigger it is, the more
	// events of an entity share one read and one write (BenchmarkProcessBatch,
	// 10k users: 41k events/s at 10000, 96k at 50000). Live, batch-wait ends
	// a batch long before, so the size costs no freshness.
	fs.IntVar(&c.BatchSize, "batch-size", 50000, "most events applied to the store in one micro-batch")
	fs.DurationVar(&c.BatchWait, "batch-wait", 20*time.Millisecond, "longest a micro-batch waits to fill once it has an event")
	fs.DurationVar(&c.CommitDelay, "commit-delay", 2*time.Second, "how long offsets wait after their batch is in Redis before they are committed to Kafka: longer than Redis's fsync interval (1s under appendfsync everysec), so a hard Redis crash cannot lose a write whose offset Kafka no longer redelivers")
	c.Kafka.RegisterFlags(fs)
	c.Times.RegisterFlags(fs)
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if err := c.Times.Validate(); err != nil {
		return err
	}
	if c.GroupID == "" {
		return errors.New("group-id: must not be empty")
	}
	if c.BatchSize < 1 {
		return fmt.Errorf("batch-size: %d, must be at least 1", c.BatchSize)
	}
	if c.BatchWait <= 0 {
		return fmt.Errorf("batch-wait: %s, must be positive", c.BatchWait)
	}
	if c.CommitDelay < 0 || c.CommitDelay > 8*time.Second {
		return fmt.Errorf("commit-delay: %s, must be between 0 and 8s (shutdown waits it out within 10s)", c.CommitDelay)
	}
	return c.Kafka.Validate()
}

// Source is where featurize reads events: a consumer group. FetchMessage
// blocks until a message or ctx's end; CommitMessages marks everything up to
// each message's offset in its partition as done. *kafka.Reader is one.
type Source interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

var _ Source = (*kafka.Reader)(nil)

// Rewinder is a Source that can forget what it fetched and resume every
// partition from its committed offset.
type Rewinder interface {
	Rewind() error
}

// GroupReader is the consumer group member featurize runs: a kafka.Reader
// that rewinds by leaving the group and joining it again, which makes every
// partition start over from its committed offset.
type GroupReader struct {
	*kafka.Reader
	cfg    Config
	topics []string
}

// NewGroupReader opens a GroupReader on topics (see NewReader).
func NewGroupReader(cfg Config, topics []string) *GroupReader {
	return &GroupReader{Reader: NewReader(cfg, topics), cfg: cfg, topics: topics}
}

// Rewind implements Rewinder. Not safe to call concurrently with Fetch.
func (g *GroupReader) Rewind() error {
	err := g.Reader.Close()
	g.Reader = NewReader(g.cfg, g.topics)
	if err != nil {
		return fmt.Errorf("leave the group: %w", err)
	}
	return nil
}

// RestartNotifier is an online store that notices its server restarting,
// which may have lost the writes of its last second (appendfsync everysec).
// *store.Redis is one.
type RestartNotifier interface {
	// Restarts counts the restarts noticed so far. It moves only when the
	// store talks to its server: Ping makes sure it is current.
	Restarts() uint64
	// FenceRestarts makes every write fail from the moment a restart is
	// noticed until Resume, so that nothing planned before it lands after.
	FenceRestarts()
	Resume()
	Ping(ctx context.Context) error
}

var _ RestartNotifier = (*store.Redis)(nil)

// Stats counts what became of the events, by outcome. Safe for concurrent
// reads while the loop runs.
type Stats struct {
	Messages    atomic.Int64 // messages fetched
	Undecodable atomic.Int64 // messages skipped: not a valid event
	Applied     atomic.Int64 // event×view updates applied
	Duplicates  atomic.Int64 // event×view updates already applied before
	Late        atomic.Int64 // event×view updates dropped as late
	NoEntity    atomic.Int64 // event×view updates without the entity field
	// RejectedTime counts messages skipped for an implausible event time
	// (Config.Times): far ahead of the clock or before the floor.
	RejectedTime atomic.Int64
	Batches      atomic.Int64
}

// Snapshot returns the counts by name, as GET /v1/stats shows them.
func (s *Stats) Snapshot() map[string]int64 {
	return map[string]int64{
		"messages": s.Messages.Load(), "undecodable": s.Undecodable.Load(), "applied": s.Applied.Load(),
		"duplicates": s.Duplicates.Load(), "late": s.Late.Load(), "no_entity": s.NoEntity.Load(), "batches": s.Batches.Load(),
		"rejected_time": s.RejectedTime.Load(),
	}
}

// topicRoute is what featurize does with one topic's messages.
type topicRoute struct {
	event *schemas.Event
	views []int // indexes into Processor.views
}

// Processor turns micro-batches of messages into store updates.
type Processor struct {
	store  store.Online
	log    *slog.Logger
	routes map[string]*topicRoute
	views  []*aggregate.Layout
	// marks is the highest event time seen per partition: lateness is
	// judged in event time against it, never against the wall clock.
	marks map[partition]int64
	// next is the offset expected next per partition; another offset
	// means the partition was consumed elsewhere in between.
	next map[partition]int64
	// processed is, per partition, the offset of the last saved
	// watermark: everything up to it was planned and applied before,
	// here or by another member, and is now being redelivered.
	processed map[partition]int64
	markStore MarkStore // nil: watermarks live in memory only
	group     string
	obs       Observer
	Stats     Stats
	times     events.TimeRule
	now       func() time.Time

	// progress guards applied: the next offset per partition whose
	// predecessors are all in the store, read while the loop runs.
	progress sync.Mutex
	applied  map[partition]int64
}

// MarkStore keeps partition watermarks across restarts and rebalances, so
// that a redelivered event is judged late or not exactly as the first time.
// *store.Redis is one.
type MarkStore interface {
	LoadMarks(ctx context.Context, group, topic string) (map[int]store.Mark, error)
	SaveMarks(ctx context.Context, group, topic string, marks map[int]store.Mark) error
}

var _ MarkStore = (*store.Redis)(nil)

// KeepMarks makes the processor load and save its partitions' watermarks
// in ms under the consumer group's name.
func (p *Processor) KeepMarks(ms MarkStore, group string) { p.markStore, p.group = ms, group }

// Prepare loads the saved watermark of each partition of msgs that this
// process has not been following: seen for the first time, or resumed at an
// offset other than the next one (it was consumed elsewhere in between).
// Call it before Plan; without a MarkStore it does nothing.
func (p *Processor) Prepare(ctx context.Context, msgs []kafka.Message) error {
	if p.markStore == nil {
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
		if next, ok := p.next[pk]; ok && next == msgs[i].Offset {
			continue
		}
		need[pk.topic] = append(need[pk.topic], pk.id)
	}
	for topic, parts := range need {
		saved, err := p.markStore.LoadMarks(ctx, p.group, topic)
		if err != nil {
			return err
		}
		// The saved mark is the truth, even when older than ours: a
		// restarted Redis may have lost the writes our mark went on to.
		now := p.now().UnixMilli()
		for _, id := range parts {
			pk := partition{topic, id}
			if m, ok := saved[id]; ok {
				// Clamped: a mark an implausible event moved far ahead
				// (before the time rule existed) heals on restart.
				p.marks[pk], p.processed[pk] = p.times.Clamp(m.Time, now), m.Offset
			} else {
				delete(p.marks, pk)
				delete(p.processed, pk)
			}
		}
	}
	return nil
}

type partition struct {
	topic string
	id    int
}

// forgetPositions makes Prepare load every partition's saved watermark
// again: the source rewinds.
func (p *Processor) forgetPositions() { clear(p.next) }

// NewProcessor plans the views of every event type that has one, judging
// event times with the default TimeRule (see JudgeTimes).
func NewProcessor(reg *schemas.Registry, st store.Online, kc broker.Config, log *slog.Logger) (*Processor, error) {
	p := &Processor{store: st, log: log, obs: noObserver{}, routes: map[string]*topicRoute{}, marks: map[partition]int64{}, next: map[partition]int64{}, processed: map[partition]int64{}, applied: map[partition]int64{},
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
	return p, nil
}

// JudgeTimes makes the processor judge event times with rule on the clock
// now (nil: time.Now).
func (p *Processor) JudgeTimes(rule events.TimeRule, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	p.times, p.now = rule, now
}

// Observe makes the consume loop report every micro-batch to obs.
func (p *Processor) Observe(obs Observer) {
	if obs == nil {
		obs = noObserver{}
	}
	p.obs = obs
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

type unitKey struct {
	view   int
	entity string
	source string
}

// Batch is a micro-batch planned for the store: its events decoded, judged
// for lateness and coalesced per view, entity and source partition.
type Batch struct {
	units    [][]store.Unit // by view
	messages int
	counts   []ViewOutcomes // by view; applied and duplicates once applied
	events   []events.Event
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
	View                                             string
	Applied, Duplicates, Late, NoEntity, Undecodable int64
	// RejectedTime is updates skipped for an implausible event time.
	RejectedTime int64
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

// Plan decodes and coalesces a micro-batch. It advances the partitions'
// watermarks, so each message must be planned exactly once, in order. ctx
// is the batch's, for what it logs.
func (p *Processor) Plan(ctx context.Context, msgs []kafka.Message) *Batch {
	b := &Batch{units: make([][]store.Unit, len(p.views)), messages: len(msgs), counts: make([]ViewOutcomes, len(p.views)), events: make([]events.Event, len(msgs)), marks: map[partition]store.Mark{}, ends: map[partition]int64{}, redelivered: make([]int64, len(p.views))}
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
		p.next[pk] = m.Offset + 1
		b.ends[pk] = m.Offset
		route := p.routes[m.Topic]
		if route == nil {
			continue
		}
		ev, err := events.Decode(route.event, m.Value)
		if err != nil {
			p.Stats.Undecodable.Add(1)
			for _, vi := range route.views {
				b.counts[vi].Undecodable++
			}
			p.log.WarnContext(ctx, "skipping undecodable message", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", err)
			continue
		}
		// Judged on this process's clock: whatever a producer wrote, no
		// watermark runs ahead of it by more than the allowed skew.
		if fe := p.times.Check(route.event.Timestamp, ev.Time, true, now); fe != nil {
			p.Stats.RejectedTime.Add(1)
			for _, vi := range route.views {
				b.counts[vi].RejectedTime++
			}
			p.log.WarnContext(ctx, "skipping message with an implausible event time", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", fe)
			continue
		}
		b.events[i] = ev
		evp := &b.events[i]
		mark, seen := p.marks[pk]
		source := m.Topic + "/" + strconv.Itoa(m.Partition)
		for _, vi := range route.views {
			l := p.views[vi]
			ent := evp.Values[l.EntityIndex()]
			if !ent.Present() {
				b.counts[vi].NoEntity++
				continue
			}
			if seen && evp.Time < mark-l.View.MaxLateness {
				// A redelivered message is judged against the watermark
				// saved after it. It was applied or dropped the first
				// time; either way, this time it is a duplicate.
				if done, ok := p.processed[pk]; ok && m.Offset <= done {
					b.redelivered[vi]++
				} else {
					b.counts[vi].Late++
				}
				continue
			}
			k := unitKey{vi, ent.Text(), source}
			j, ok := index[k]
			if !ok {
				j = len(b.units[vi])
				index[k] = j
				b.units[vi] = append(b.units[vi], store.Unit{Entity: k.entity, Source: source, Tiles: l.NewTiles()})
			}
			u := &b.units[vi][j]
			u.Offsets = append(u.Offsets, m.Offset)
			u.Events = append(u.Events, evp)
			u.Tiles.Add(evp)
		}
		if !seen || evp.Time > mark {
			p.marks[pk] = evp.Time
		}
	}
	for pk, off := range b.ends {
		if t, ok := p.marks[pk]; ok {
			b.marks[pk] = store.Mark{Offset: off, Time: t}
		}
	}
	return b
}

// applyShards is how many parts of a batch are applied at once. Entities
// are independent keys, so while Redis works through one part's round trip
// featurize merges another's: the two never wait on each other.
const applyShards = 4

// Apply writes a planned batch to the store. It may be retried: the store
// skips what an earlier attempt applied. The caller commits the batch's
// offsets only after a nil return.
func (p *Processor) Apply(ctx context.Context, b *Batch) error {
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
	if err := g.Wait(); err != nil {
		return err
	}
	if p.markStore != nil {
		byTopic := map[string]map[int]store.Mark{}
		for pk, m := range b.marks {
			if byTopic[pk.topic] == nil {
				byTopic[pk.topic] = map[int]store.Mark{}
			}
			byTopic[pk.topic][pk.id] = m
		}
		for topic, marks := range byTopic {
			if err := p.markStore.SaveMarks(ctx, p.group, topic, marks); err != nil {
				return err
			}
		}
	}
	p.progress.Lock()
	for pk, off := range b.ends {
		p.applied[pk] = max(p.applied[pk], off+1)
	}
	p.progress.Unlock()
	var applied, dups, late, noEntity int64
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
	}
	p.Stats.Messages.Add(int64(b.messages))
	p.Stats.Late.Add(late)
	p.Stats.NoEntity.Add(noEntity)
	p.Stats.Applied.Add(applied)
	p.Stats.Duplicates.Add(dups)
	p.Stats.Batches.Add(1)
	return nil
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

// Consumer runs the fetch → apply → commit loop.
type Consumer struct {
	cfg     Config
	src     Source
	proc    *Processor
	log     *slog.Logger
	pending []pendingCommit // oldest first
	watch   RestartNotifier // nil: the store does not notice restarts
}

// NewConsumer returns a consumer of src feeding proc.
func NewConsumer(cfg Config, src Source, proc *Processor, log *slog.Logger) *Consumer {
	c := &Consumer{cfg: cfg, src: src, proc: proc, log: log}
	if w, ok := proc.store.(RestartNotifier); ok {
		w.FenceRestarts()
		c.watch = w
	}
	return c
}

// NewReader opens the consumer group on the processor's topics: explicit
// commits only, starting from the earliest offset for a new group.
func NewReader(cfg Config, topics []string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           cfg.Kafka.Brokers,
		GroupID:           cfg.GroupID,
		GroupTopics:       topics,
		MinBytes:          1,
		MaxBytes:          16 << 20,
		MaxWait:           250 * time.Millisecond,
		ReadBatchTimeout:  time.Second,
		QueueCapacity:     cfg.BatchSize,
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0, // synchronous, explicit commits
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  time.Second,
	})
}

// Run consumes until ctx ends, then finishes the batch in hand (apply and
// commit, within a few seconds) and returns nil.
func (c *Consumer) Run(ctx context.Context) error {
	batch := make([]kafka.Message, 0, c.cfg.BatchSize)
	backoff := 100 * time.Millisecond
	for {
		batch = batch[:0]
		err := c.fill(ctx, &batch)
		if len(batch) > 0 {
			bctx := c.proc.obs.BatchStart(ctx, batch)
			if perr := c.prepare(bctx, batch); perr != nil {
				c.proc.obs.BatchEnd(bctx, batch, nil, perr)
				if errors.Is(perr, errRestarted) {
					c.rewind(ctx)
					continue
				}
				c.commitPending(ctx, true)
				return nil // shutting down before the batch could be judged
			}
			b := c.proc.Plan(bctx, batch)
			ferr := c.flush(bctx, b, batch)
			c.proc.obs.BatchEnd(bctx, batch, b, ferr)
			if errors.Is(ferr, errRestarted) {
				c.rewind(ctx)
				continue
			}
		}
		c.commitPending(ctx, ctx.Err() != nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Kafka unreachable or the group rebalancing: the reader keeps
			// reconnecting, so keep fetching rather than exit.
			c.log.Warn("fetch from kafka; retrying", "error", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				c.commitPending(ctx, true)
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// fill fetches until the batch is full, BatchWait has passed since its first
// message, or ctx ends.
func (c *Consumer) fill(ctx context.Context, batch *[]kafka.Message) error {
	fetchCtx := ctx
	if len(c.pending) > 0 {
		// Wake up when the oldest commit is due, even with no traffic.
		var cancel context.CancelFunc
		fetchCtx, cancel = context.WithDeadline(ctx, c.pending[0].at.Add(c.cfg.CommitDelay))
		defer cancel()
	}
	for len(*batch) < c.cfg.BatchSize {
		m, err := c.src.FetchMessage(fetchCtx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if fetchCtx != ctx && errors.Is(err, context.DeadlineExceeded) {
				return nil // the batch waited long enough
			}
			return fmt.Errorf("fetch: %w", err)
		}
		*batch = append(*batch, m)
		if len(*batch) == 1 {
			var cancel context.CancelFunc
			fetchCtx, cancel = context.WithTimeout(ctx, c.cfg.BatchWait)
			defer cancel()
		}
	}
	return nil
}

// prepare loads watermarks for the batch, retrying store errors until ctx
// ends or the store restarts (errRestarted: the batch must be dropped).
func (c *Consumer) prepare(ctx context.Context, batch []kafka.Message) error {
	backoff := 100 * time.Millisecond
	restarts := c.restartCount()
	for {
		err := c.proc.Prepare(ctx, batch)
		if c.restartedSince(restarts) {
			return errRestarted
		}
		if err == nil {
			return nil
		}
		c.log.ErrorContext(ctx, "load partition watermarks; retrying", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// flush applies a planned batch, retrying store errors with backoff for as
// long as ctx runs, then queues its offsets for commit. Once ctx has ended
// (shutdown) it makes one last bounded attempt; if that fails it returns
// the error, nothing is committed and the messages come again after a
// restart.
func (c *Consumer) flush(ctx context.Context, b *Batch, msgs []kafka.Message) error {
	backoff := 100 * time.Millisecond
	// Before the first attempt: a restart in the middle of it may have
	// lost the writes made before.
	restarts := c.restartCount()
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := c.proc.Apply(actx, b)
		cancel()
		if c.restartedSince(restarts) {
			// Whatever this attempt wrote, the batches before it may be
			// gone: start over from the committed offsets.
			return errRestarted
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			c.log.ErrorContext(ctx, "apply batch at shutdown; its offsets stay uncommitted", "error", err)
			return err
		}
		c.log.ErrorContext(ctx, "apply batch to the online store; retrying", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	// Commit the last message of each partition: a Kafka commit means
	// everything before it in the partition is done.
	lastOf := map[partition]kafka.Message{}
	for _, m := range msgs {
		lastOf[partition{m.Topic, m.Partition}] = m
	}
	commits := make([]kafka.Message, 0, len(lastOf))
	for _, m := range lastOf {
		commits = append(commits, m)
	}
	c.pending = append(c.pending, pendingCommit{at: time.Now(), msgs: commits, restarts: restarts})
	return nil
}

// errRestarted is flush's answer when the store restarted under the batch.
var errRestarted = errors.New("online store restarted")

// restartCount is the store's count of restarts noticed, 0 for a store
// that does not notice them.
func (c *Consumer) restartCount() uint64 {
	if c.watch == nil {
		return 0
	}
	return c.watch.Restarts()
}

// restartedSince reports whether the store noticed a restart since it
// counted n.
func (c *Consumer) restartedSince(n uint64) bool { return c.restartCount() != n }

// rewind drops what was fetched since the committed offsets, applied or
// not, and starts over from them: the store restarted and may have lost
// any of it. The store applies again what it lost and skips what it kept.
func (c *Consumer) rewind(ctx context.Context) {
	c.log.WarnContext(ctx, "online store restarted: its last writes may be lost; dropping uncommitted offsets and resuming from the committed ones",
		"uncommitted_batches", len(c.pending))
	c.pending = c.pending[:0]
	if ctx.Err() != nil {
		return // shutting down: nothing more will be fetched
	}
	c.proc.forgetPositions()
	if r, ok := c.src.(Rewinder); ok {
		if err := r.Rewind(); err != nil {
			c.log.WarnContext(ctx, "rewind", "error", err)
		}
	} else {
		c.log.ErrorContext(ctx, "the source cannot rewind: events after its committed offsets may be missing until featurize restarts")
	}
	c.watch.Resume()
}

// pendingCommit is a batch's offsets, held back for CommitDelay.
type pendingCommit struct {
	at   time.Time
	msgs []kafka.Message
	// restarts is the store's restart count before the batch was applied.
	restarts uint64
}

// commitPending commits the offsets of batches applied at least CommitDelay
// ago; with all, it waits out the delay of the rest first (shutdown).
//
// The delay covers Redis's fsync interval: under appendfsync everysec a hard
// Redis crash loses up to a second of writes, offsets and tiles together
// (they share the entity hash). An offset committed to Kafka before its
// write was on disk would leave nothing to redeliver it; one committed after
// the delay always is.
//
// The delay alone does not do it while featurize keeps running: the lost
// writes are behind its position in the partitions. So before committing it
// asks the store whether its server restarted since the writes; if it did,
// it drops the uncommitted offsets and rewinds the source to the committed
// ones, and the store applies again what it lost (and skips what it kept).
func (c *Consumer) commitPending(ctx context.Context, all bool) {
	n := 0
	for n < len(c.pending) && (all || time.Since(c.pending[n].at) >= c.cfg.CommitDelay) {
		n++
	}
	if n == 0 {
		return
	}
	if wait := c.cfg.CommitDelay - time.Since(c.pending[n-1].at); all && wait > 0 {
		time.Sleep(wait)
	}
	if !c.storeKeptWrites(ctx, all) {
		return
	}
	var commits []kafka.Message
	for _, p := range c.pending[:n] {
		commits = append(commits, p.msgs...)
	}
	c.pending = append(c.pending[:0], c.pending[n:]...)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := c.src.CommitMessages(cctx, commits...); err != nil {
		// After a rebalance the partition may belong to another member,
		// which redelivers; the store skips what it already holds.
		c.log.Warn("commit offsets", "error", err)
	}
}

// storeKeptWrites reports whether the pending batches' writes may be
// committed: the store's server has not restarted since they were applied.
// If it has, it rewinds (at shutdown it only drops them): nothing pending
// is committed. If the store does not answer, it waits a little and
// commits nothing now.
func (c *Consumer) storeKeptWrites(ctx context.Context, shutdown bool) bool {
	if c.watch == nil {
		return true
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	err := c.watch.Ping(pctx)
	cancel()
	// Counts only grow: if the oldest batch saw the current count, all did.
	if c.restartedSince(c.pending[0].restarts) {
		if shutdown {
			c.log.WarnContext(ctx, "online store restarted: leaving the last batches uncommitted", "batches", len(c.pending))
			c.pending = c.pending[:0]
		} else {
			c.rewind(ctx)
		}
		return false
	}
	if err != nil {
		c.log.WarnContext(ctx, "online store unreachable; holding offset commits", "error", err)
		if !shutdown {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
		return false
	}
	return true
}

// Service is featurize as a process: the consumer and its health endpoints.
type Service struct {
	cfg  Config
	reg  *schemas.Registry
	st   store.Online
	log  *slog.Logger
	tel  *telemetry.Providers
	Proc *Processor
}

// Option changes how NewService builds featurize.
type Option func(*Service)

// WithTelemetry instruments featurize with p: a consumer span per
// micro-batch continuing the producers' traces (the store's Redis commands
// are its children when the store's client has p's hooks), the metrics of
// NewObserver, and the HTTP middleware and GET /metrics on the health
// endpoints' listener.
func WithTelemetry(p *telemetry.Providers) Option {
	return func(s *Service) { s.tel = p }
}

// NewService builds featurize over the definitions and the store.
func NewService(cfg Config, reg *schemas.Registry, st store.Online, log *slog.Logger, opts ...Option) (*Service, error) {
	proc, err := NewProcessor(reg, st, cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	proc.JudgeTimes(cfg.Times, nil)
	if ms, ok := st.(MarkStore); ok {
		proc.KeepMarks(ms, cfg.GroupID)
	}
	s := &Service{cfg: cfg, reg: reg, st: st, log: log, Proc: proc}
	for _, o := range opts {
		o(s)
	}
	if s.tel != nil {
		proc.Observe(NewObserver(s.tel, cfg.GroupID, proc))
	}
	return s, nil
}

// Run serves the health endpoints (and, with telemetry, GET /metrics) on l,
// makes sure the topics exist, and consumes until ctx ends; then it stops
// fetching, flushes, commits and closes the reader.
func (s *Service) Run(ctx context.Context, l net.Listener) error {
	topics := s.Proc.Topics()
	mux := http.NewServeMux()
	s.tel.Mount(mux)
	httpx.Health(mux, func(ctx context.Context) error {
		if err := s.st.Ping(ctx); err != nil {
			return fmt.Errorf("online store: %w", err)
		}
		return s.cfg.Kafka.CheckTopics(ctx, topics)
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, s.Proc.Stats.Snapshot())
	})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpx.Serve(gctx, l, s.tel.Middleware(httpx.Recover(s.log, mux)), 5*time.Second) })
	g.Go(func() error {
		if err := waitForTopics(gctx, s.cfg.Kafka, topics, s.log); err != nil {
			return nil // shutting down before Kafka was ever reachable
		}
		reader := NewGroupReader(s.cfg, topics)
		err := NewConsumer(s.cfg, reader, s.Proc, s.log).Run(gctx)
		if cerr := reader.Close(); cerr != nil && err == nil {
			s.log.Warn("close consumer", "error", cerr)
		}
		st := &s.Proc.Stats
		s.log.Info("featurize stopped", "messages", st.Messages.Load(), "applied", st.Applied.Load(),
			"duplicates", st.Duplicates.Load(), "late", st.Late.Load(), "undecodable", st.Undecodable.Load(),
			"rejected_time", st.RejectedTime.Load())
		return err
	})
	return g.Wait()
}

// waitForTopics creates missing topics, retrying until Kafka answers.
func waitForTopics(ctx context.Context, kc broker.Config, topics []string, log *slog.Logger) error {
	backoff := 200 * time.Millisecond
	for {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := kc.EnsureTopics(tctx, topics)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn("kafka not ready; retrying", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
