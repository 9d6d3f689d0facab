package featurize

// consumer.go owns the consume loop: fetch a micro-batch, prepare, plan and
// apply it, and commit its offsets once it has been in the store for
// CommitDelay; and the fence around it: a store whose server restarted
// makes the loop drop what is uncommitted and rewind the source.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/pipeline/retry"
	"github.com/freshet-ml/freshet/pipeline/store"
)

// Source is where featurize reads events: a consumer group. *kafka.Reader
// is one. The consumer calls it from one goroutine.
type Source interface {
	// FetchMessage blocks until a message or ctx's end. Per partition,
	// offsets increase, except that after a rebalance or a rewind a
	// partition may start again from its committed offset.
	FetchMessage(ctx context.Context) (kafka.Message, error)
	// CommitMessages marks everything up to each message's offset in its
	// partition as done: the group resumes after it.
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	// Close leaves the group.
	Close() error
}

var _ Source = (*kafka.Reader)(nil)

// Rewinder is a Source that can forget what it fetched and resume every
// partition from its committed offset. A Source that is not one leaves a
// store restart unrepaired until featurize restarts.
type Rewinder interface {
	// Rewind drops every message fetched and not committed; the next
	// fetch of each partition starts at its committed offset.
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

var (
	_ Source   = (*GroupReader)(nil)
	_ Rewinder = (*GroupReader)(nil)
)

// NewGroupReader opens a GroupReader on topics (see NewReader).
func NewGroupReader(cfg Config, topics []string) *GroupReader {
	return &GroupReader{Reader: NewReader(cfg, topics), cfg: cfg, topics: topics}
}

// Rewind implements Rewinder. Not safe to call concurrently with
// FetchMessage.
func (g *GroupReader) Rewind() error {
	err := g.Reader.Close()
	g.Reader = NewReader(g.cfg, g.topics)
	if err != nil {
		return fmt.Errorf("leave the group: %w", err)
	}
	return nil
}

// NewReader opens the consumer group on topics: explicit commits only,
// starting from the earliest offset for a new group.
func NewReader(cfg Config, topics []string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           cfg.Kafka.Brokers,
		Dialer:            cfg.Kafka.Dialer(), // TLS and SASL
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

// Consumer runs the fetch → prepare → plan → apply → commit loop of one
// Source into one Processor's store. It commits a batch's offsets only
// after the store applied the whole batch, and only once the batch has been
// there for CommitDelay with the store's server not restarted since.
type Consumer struct {
	cfg  Config
	src  Source
	proc *Processor
	st   store.Online // the processor's: restarts, fence and Ping
	log  *slog.Logger
	obs  Observer
	// watching is whether the store notices restarts (FenceRestarts): if
	// it does, every commit first pings it to make its count current.
	watching bool
	pending  []pendingCommit // oldest first
}

// A ConsumerOption changes how NewConsumer builds a Consumer.
type ConsumerOption func(*Consumer)

// WithObserver makes the consumer report every micro-batch to obs
// (NewObserver makes the OpenTelemetry one). Without it nothing is
// observed.
func WithObserver(obs Observer) ConsumerOption {
	return func(c *Consumer) {
		if obs != nil {
			c.obs = obs
		}
	}
}

// NewConsumer returns a consumer of src feeding proc. It fences the
// processor's store against restarts (store.Online.FenceRestarts): from a
// noticed restart on, writes fail until the consumer has rewound.
func NewConsumer(cfg Config, src Source, proc *Processor, log *slog.Logger, opts ...ConsumerOption) *Consumer {
	c := &Consumer{cfg: cfg, src: src, proc: proc, st: proc.store, log: log, obs: noObserver{}}
	for _, o := range opts {
		o(c)
	}
	c.watching = c.st.FenceRestarts()
	return c
}

// Run consumes until ctx ends, then finishes the batch in hand (apply and
// commit, within a few seconds) and returns nil.
func (c *Consumer) Run(ctx context.Context) error {
	batch := make([]kafka.Message, 0, c.cfg.BatchSize)
	var backoff retry.Backoff
	for {
		batch = batch[:0]
		fetchErr := c.fill(ctx, &batch)
		if len(batch) > 0 {
			bctx := c.obs.BatchStart(ctx, batch)
			var b *Batch
			err := c.prepare(bctx, batch) // the watermarks of resumed partitions
			if err == nil {
				b = c.proc.Plan(bctx, batch)  // decode, judge lateness, coalesce
				err = c.flush(bctx, b, batch) // apply, skipping what is applied; queue the offsets
			}
			c.obs.BatchEnd(bctx, batch, b, err)
			if errors.Is(err, errRestarted) {
				c.rewind(ctx) // the store may have lost batches before this one
				continue
			}
			if b == nil && err != nil {
				c.commitPending(ctx, true)
				return nil // shutting down before the batch could be judged
			}
		}
		c.commitPending(ctx, ctx.Err() != nil)
		if fetchErr == nil {
			backoff.Reset()
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		// Kafka unreachable or the group rebalancing: the reader keeps
		// reconnecting, so keep fetching rather than exit.
		c.log.Warn("fetch from kafka; retrying", "error", fetchErr, "backoff", backoff.Delay())
		if backoff.Wait(ctx) != nil {
			c.commitPending(ctx, true)
			return nil
		}
	}
}

// fill fetches until the batch is full, BatchWait has passed since its first
// message, the oldest pending commit is due, or ctx ends.
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

// prepare loads watermarks for the batch (Processor.Prepare), retrying
// store errors until ctx ends (its error) or the store restarts
// (errRestarted: the batch must be dropped).
func (c *Consumer) prepare(ctx context.Context, batch []kafka.Message) error {
	var backoff retry.Backoff
	restarts := c.st.Restarts()
	for {
		err := c.proc.Prepare(ctx, batch)
		if c.restartedSince(restarts) {
			return errRestarted
		}
		if err == nil {
			return nil
		}
		c.log.ErrorContext(ctx, "load partition watermarks; retrying", "error", err, "backoff", backoff.Delay())
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
	}
}

// flush applies a planned batch (Processor.Apply), retrying store errors
// with backoff for as long as ctx runs, then queues its offsets for commit.
// Once ctx has ended (shutdown) it makes one last bounded attempt; if that
// fails it returns the error, nothing is committed and the messages come
// again after a restart. If the store restarted under the batch it returns
// errRestarted and queues nothing.
func (c *Consumer) flush(ctx context.Context, b *Batch, msgs []kafka.Message) error {
	var backoff retry.Backoff
	// Before the first attempt: a restart in the middle of it may have
	// lost the writes made before.
	restarts := c.st.Restarts()
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
		c.log.ErrorContext(ctx, "apply batch to the online store; retrying", "error", err, "backoff", backoff.Delay())
		_ = backoff.Wait(ctx) // at ctx's end, the next attempt is the last
	}
	c.pending = append(c.pending, pendingCommit{at: time.Now(), msgs: lastPerPartition(msgs), restarts: restarts})
	return nil
}

// lastPerPartition returns the last message of each partition of msgs: a
// Kafka commit means everything before it in the partition is done.
func lastPerPartition(msgs []kafka.Message) []kafka.Message {
	lastOf := map[partition]kafka.Message{}
	for _, m := range msgs {
		lastOf[partition{m.Topic, m.Partition}] = m
	}
	commits := make([]kafka.Message, 0, len(lastOf))
	for _, m := range lastOf {
		commits = append(commits, m)
	}
	return commits
}

// errRestarted is prepare's and flush's answer when the store restarted
// under the batch.
var errRestarted = errors.New("online store restarted")

// restartedSince reports whether the store noticed a restart since it
// counted n.
func (c *Consumer) restartedSince(n uint64) bool { return c.st.Restarts() != n }

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
	c.st.Resume()
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
// commits nothing now. A store that does not notice restarts is not asked.
func (c *Consumer) storeKeptWrites(ctx context.Context, shutdown bool) bool {
	if !c.watching {
		return true
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	err := c.st.Ping(pctx)
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
