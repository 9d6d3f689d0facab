package featurize

// rebuild.go owns recomputing the online store from the events Kafka still
// retains (featurize rebuild).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/schemas"
)

// Rebuilder is what a rebuild needs of the online store besides Online:
// forgetting the saved watermarks, and optionally the views' state.
type Rebuilder interface {
	store.Online // applying, watermarks and restarts, as the consumer does
	// ClearMarks forgets a topic's saved watermarks for a consumer group.
	ClearMarks(ctx context.Context, group, topic string) error
	// ClearView deletes every entity's state of a view's generation and
	// returns how many entities went.
	ClearView(ctx context.Context, view, gen string) (int64, error)
}

// renewer is a store with generations (store.Redis): a rebuild that clears
// a view gives it a new live generation, since the rebuild itself applies
// every retained event to it.
type renewer interface {
	GenOf(l *aggregate.Layout) (store.Gen, bool)
	Adopt(ctx context.Context, want []store.GenWant) ([]store.Gen, error)
}

var _ Rebuilder = (*store.Redis)(nil)

// RebuildOptions says how to rebuild.
type RebuildOptions struct {
	// Clear deletes the views' online state first. Without it, entities
	// that survived keep what they have (their saved offsets skip it) and
	// the others are recomputed.
	Clear bool
}

// Rebuild recomputes the online store from the events Kafka still holds:
// it resets the consumer group to the earliest retained offsets, forgets
// the saved watermarks (they belong to later offsets), consumes until it
// has caught up with the end offsets seen at its start, commits and returns.
// The group must have no other active member.
func Rebuild(ctx context.Context, cfg Config, reg *schemas.Registry, st Rebuilder, opt RebuildOptions, log *slog.Logger) (map[string]int64, error) {
	if opt.Clear {
		if err := clearViews(ctx, st, reg, log); err != nil {
			return nil, err
		}
	}
	proc, err := NewProcessor(reg, st, cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	proc.JudgeTimes(cfg.Times, nil)
	proc.KeepMarks(cfg.GroupID)
	topics := proc.Topics()
	if err := cfg.Kafka.EnsureTopics(ctx, topics); err != nil {
		return nil, err
	}
	ends, err := resetToEarliest(ctx, cfg.Kafka, cfg.GroupID, topics)
	if err != nil {
		return nil, err
	}
	if err := clearMarks(ctx, st, cfg.GroupID, topics); err != nil {
		return nil, err
	}
	total := int64(0)
	for _, e := range ends {
		total += e.last - e.first
	}
	log.Info("rebuilding from the earliest retained offsets", "group", cfg.GroupID, "messages", total)
	before := st.Restarts()
	caughtUp, err := replayToEnds(ctx, cfg, proc, topics, ends, log)
	if !caughtUp {
		return nil, err
	}
	if err == nil && st.Restarts() != before {
		// The progress that said "caught up" may include writes the
		// restart lost.
		err = errors.New("redis restarted during the rebuild and may have lost part of it: run the rebuild again")
	}
	return proc.Stats.Snapshot(), err
}

// clearMarks forgets the group's saved watermarks of topics.
func clearMarks(ctx context.Context, st Rebuilder, group string, topics []string) error {
	for _, t := range topics {
		if err := st.ClearMarks(ctx, group, t); err != nil {
			return err
		}
	}
	return nil
}

// clearViews deletes every entity's state of the views and, with
// generations, gives each a new live one: the rebuild applies every
// retained event to it, so there is nothing to catch up.
func clearViews(ctx context.Context, st Rebuilder, reg *schemas.Registry, log *slog.Logger) error {
	rn, gens := st.(renewer)
	var want []store.GenWant
	for _, name := range reg.ViewNames() {
		l, err := aggregate.NewLayout(reg.Views[name])
		if err != nil {
			return err
		}
		id := l.Fingerprint
		if gens {
			if g, ok := rn.GenOf(l); ok {
				id = g.ID
			}
			want = append(want, store.GenWant{View: name, Fingerprint: l.Fingerprint, Renew: true})
		}
		n, err := st.ClearView(ctx, name, id)
		if err != nil {
			return err
		}
		log.Info("cleared online state", "view", name, "generation", id, "keys", n)
	}
	if gens {
		if _, err := rn.Adopt(ctx, want); err != nil {
			return err
		}
	}
	return nil
}

// replayToEnds runs a consumer of the group into proc until proc has applied
// every partition up to ends, then stops it, which applies and commits what
// it holds. It reports false, with the reason, if the consumer stopped
// first (ctx ended).
func replayToEnds(ctx context.Context, cfg Config, proc *Processor, topics []string, ends map[partition]span, log *slog.Logger) (bool, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reader := NewGroupReader(cfg, topics)
	done := make(chan error, 1)
	go func() { done <- NewConsumer(cfg, reader, proc, log).Run(rctx) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !proc.caughtUp(ends) {
		select {
		case err := <-done:
			_ = reader.Close()
			if err == nil {
				err = ctx.Err()
			}
			return false, fmt.Errorf("rebuild stopped before catching up: %w", err)
		case <-tick.C:
		}
	}
	cancel()
	err := <-done
	if cerr := reader.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return true, err
}

// span is a partition's retained offsets when the rebuild started.
type span struct{ first, last int64 }

// resetToEarliest commits the earliest retained offset of every partition
// for the group and returns each partition's span.
func resetToEarliest(ctx context.Context, kc broker.Config, group string, topics []string) (map[partition]span, error) {
	spans, err := kc.Spans(ctx, topics, false)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	ends := map[partition]span{}
	commit := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for topic, parts := range spans {
		for _, p := range parts {
			ends[partition{topic, p.Partition}] = span{p.First, p.Last}
			commit.Topics[topic] = append(commit.Topics[topic], kafka.OffsetCommit{Partition: p.Partition, Offset: p.First})
		}
	}
	cres, err := kc.Client().OffsetCommit(ctx, commit)
	if err != nil {
		return nil, fmt.Errorf("rebuild: reset offsets of group %s: %w", group, err)
	}
	for topic, parts := range cres.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("rebuild: reset offsets of group %s on %s/%d (stop every featurize of the group first): %w", group, topic, p.Partition, p.Error)
			}
		}
	}
	return ends, nil
}

// caughtUp reports whether the processor has applied every partition up to
// the end offsets seen when the rebuild started.
func (p *Processor) caughtUp(ends map[partition]span) bool {
	p.progress.Lock()
	defer p.progress.Unlock()
	for pk, e := range ends {
		if e.last <= e.first {
			continue // nothing retained
		}
		if ps := p.parts[pk]; ps == nil || ps.appliedBelow < e.last {
			return false
		}
	}
	return true
}
