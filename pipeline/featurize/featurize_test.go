package featurize

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type fixture struct {
	reg    *schemas.Registry
	st     *store.Redis
	prefix string
	cfg    Config
	evs    []events.Event
	valid  []events.Event // what featurize must apply (valid, not late)
}

// newFixture publishes a stream of example transactions, out of order, with
// undecodable messages among them, to a fresh topic.
func newFixture(t *testing.T, n int) *fixture {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	prefix := testenv.Unique("featurize-test:")
	f := &fixture{reg: reg, st: store.NewRedis(rc, prefix), prefix: prefix}
	f.cfg = defaultConfig(t)
	f.cfg.Kafka.Brokers = testenv.Kafka(t)
	f.cfg.Kafka.TopicPrefix = testenv.Unique("featurize-test.")
	f.cfg.Kafka.Partitions = 3
	f.cfg.GroupID = testenv.Unique("group-")
	f.cfg.BatchSize = 97 // odd, so batches straddle entities and partitions
	f.cfg.CommitDelay = 100 * time.Millisecond
	require.NoError(t, f.cfg.Validate())

	ev := reg.Events["transaction"]
	rng := rand.New(rand.NewPCG(7, 7))
	base := int64(1_717_000_000_000)
	for i := range n {
		// Up to 20 minutes out of order: within user_spend's 1h lateness.
		ts := base + int64(i)*1000 - rng.Int64N(20*60*1000)
		raw := fmt.Sprintf(`{"txn_id":"t%d","user_id":"u%d","merchant_id":"m%d","amount":%d.5,"items":%d,"ts":%d}`,
			i, rng.IntN(20), rng.IntN(5), rng.IntN(100), rng.IntN(4), ts)
		e, err := events.Decode(ev, []byte(raw))
		require.NoError(t, err)
		f.evs = append(f.evs, e)
	}
	f.valid = f.evs

	ctx := context.Background()
	topic := f.cfg.Kafka.Topic("transaction")
	require.NoError(t, f.cfg.Kafka.EnsureTopics(ctx, []string{topic}))
	w := f.cfg.Kafka.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	var msgs []kafka.Message
	for i := range f.evs {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(f.evs[i].Key()), Value: f.evs[i].AppendJSON(nil)})
		if i%50 == 0 {
			// Written by another tool: must be counted and skipped.
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte("u1"), Value: []byte(`not json`)},
				kafka.Message{Topic: topic, Key: []byte("u2"), Value: []byte(`{"user_id":"u2","amount":"12","ts":1}`)})
		}
	}
	require.NoError(t, w.WriteMessages(ctx, msgs...))
	return f
}

// defaultConfig is the configuration with every flag at its default.
func defaultConfig(tb testing.TB) Config {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(tb, fs.Parse(nil))
	return c
}

// run runs a featurize service until it has consumed want messages.
func (f *fixture) run(t *testing.T, want int64) *Service {
	svc, err := NewService(f.cfg, f.reg, f.st, quiet())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, l) }()
	deadline := time.After(60 * time.Second)
	for svc.Proc.Stats.Messages.Load() < want {
		select {
		case err := <-done:
			t.Fatalf("featurize stopped early: %v", err)
		case <-deadline:
			t.Fatalf("featurize consumed %d of %d messages in 60s", svc.Proc.Stats.Messages.Load(), want)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	require.NoError(t, <-done)
	return svc
}

// requireServed compares the store with tiles built in memory from the
// events that must have been applied, at the newest event time and later.
func (f *fixture) requireServed(t *testing.T) {
	ctx := context.Background()
	for _, v := range f.reg.ViewsOf("transaction") {
		l, err := aggregate.NewLayout(v)
		require.NoError(t, err)
		want := map[string]*aggregate.Tiles{}
		var ents []string
		for i := range f.valid {
			ent := f.valid[i].Values[l.EntityIndex()]
			if !ent.Present() {
				continue
			}
			if want[ent.Text()] == nil {
				want[ent.Text()] = l.NewTiles()
				ents = append(ents, ent.Text())
			}
			want[ent.Text()].Add(&f.valid[i])
		}
		got, err := f.st.Read(ctx, l, ents)
		require.NoError(t, err)
		for i, ent := range ents {
			ws := want[ent].State()
			require.Equal(t, ws.EventTime, got[i].EventTime, "%s %s", v.Name, ent)
			for _, at := range []int64{ws.EventTime, ws.EventTime + 30*60*1000, ws.EventTime + 3*3600*1000} {
				for fi, feat := range v.Features {
					w, wst := l.Value(ws, fi, at)
					g, gst := l.Value(got[i], fi, at)
					require.Equal(t, wst, gst, "status")
					require.Equal(t, w.Kind, g.Kind, "%s %s %s at %d", v.Name, ent, feat.Name, at)
					require.InDelta(t, w.Float(), g.Float(), 1e-6, "%s %s %s at %d", v.Name, ent, feat.Name, at)
					require.Equal(t, w.S, g.S)
					require.Equal(t, w.B, g.B)
				}
			}
		}
	}
}

func TestFeaturizeAppliesEveryEventOnce(t *testing.T) {
	f := newFixture(t, 2000)
	total := int64(len(f.evs) + 2*((len(f.evs)+49)/50))
	svc := f.run(t, total)
	st := &svc.Proc.Stats
	require.Equal(t, int64(2*((len(f.evs)+49)/50)), st.Undecodable.Load())
	require.Zero(t, st.Late.Load())
	// Two views; merchant_id is always present here.
	require.Equal(t, int64(2*len(f.evs)), st.Applied.Load())
	f.requireServed(t)

	// A second group re-reads the whole topic: a Redis that already holds
	// every update must change nothing.
	f.cfg.GroupID = testenv.Unique("group-again-")
	svc = f.run(t, total)
	require.Zero(t, svc.Proc.Stats.Applied.Load())
	require.Equal(t, int64(2*len(f.evs)), svc.Proc.Stats.Duplicates.Load())
	f.requireServed(t)
}

// fakeSource replays messages and records commits, for the loop's logic.
type fakeSource struct {
	mu      sync.Mutex
	msgs    []kafka.Message
	next    int
	commits []kafka.Message
}

func (s *fakeSource) committed() []kafka.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]kafka.Message(nil), s.commits...)
}

func (s *fakeSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	if s.next < len(s.msgs) {
		s.next++
		return s.msgs[s.next-1], nil
	}
	<-ctx.Done()
	return kafka.Message{}, ctx.Err()
}

func (s *fakeSource) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, msgs...)
	return nil
}

func (s *fakeSource) Close() error { return nil }

func TestLatenessIsJudgedPerPartitionInEventTime(t *testing.T) {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	kc := defaultConfig(t).Kafka
	p, err := NewProcessor(reg, store.NewRedis(rc, testenv.Unique("late-test:")), kc, quiet())
	require.NoError(t, err)
	topic := kc.Topic("transaction")
	msg := func(part int, off int64, ts string) kafka.Message {
		return kafka.Message{Topic: topic, Partition: part, Offset: off,
			Value: []byte(`{"txn_id":"x","user_id":"u","merchant_id":"m","amount":1,"ts":"` + ts + `"}`)}
	}
	// 2019 events: lateness is measured against the partition's highest
	// event time, never the wall clock.
	b := p.Plan(context.Background(), []kafka.Message{
		msg(0, 0, "2019-01-02T12:00:00Z"),
		msg(0, 1, "2019-01-02T10:30:00Z"), // 1.5h late: dropped by user_spend (1h), kept by merchant_activity (24h)
		msg(1, 0, "2019-01-02T09:00:00Z"), // another partition: its own watermark
		msg(0, 2, "2019-01-01T00:00:00Z"), // 36h late: dropped by both
	})
	late := map[string]int64{}
	for _, o := range b.Outcomes() {
		late[o.View] = o.Late
	}
	require.Equal(t, map[string]int64{"user_spend": 2, "merchant_activity": 1}, late)
	require.NoError(t, p.Apply(context.Background(), b))
	require.Equal(t, int64(5), p.Stats.Applied.Load())
	require.Equal(t, int64(3), p.Stats.Late.Load())
	applied := map[string]int64{}
	for _, o := range b.Outcomes() {
		applied[o.View] = o.Applied
	}
	require.Equal(t, map[string]int64{"user_spend": 2, "merchant_activity": 3}, applied)
	var times []int64
	b.EachApplied(func(_ int, t int64) { times = append(times, t) })
	require.Len(t, times, 5)
}

func TestConsumerCommitsLastOffsetPerPartitionAfterApply(t *testing.T) {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	cfg := defaultConfig(t)
	cfg.BatchSize = 4
	p, err := NewProcessor(reg, store.NewRedis(rc, testenv.Unique("commit-test:")), cfg.Kafka, quiet())
	require.NoError(t, err)
	topic := cfg.Kafka.Topic("transaction")
	src := &fakeSource{}
	for i := range 10 {
		src.msgs = append(src.msgs, kafka.Message{Topic: topic, Partition: i % 2, Offset: int64(i / 2),
			Value: []byte(fmt.Sprintf(`{"txn_id":"x","user_id":"u%d","amount":1,"ts":%d}`, i, 1_717_000_000_000+i))})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- NewConsumer(cfg, src, p, quiet()).Run(ctx) }()
	for p.Stats.Messages.Load() < 10 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	// Batches of 4: {0..3}, {4..7}, {8,9}: one commit per partition each.
	var got []string
	for _, m := range src.committed() {
		got = append(got, fmt.Sprintf("%d@%d", m.Partition, m.Offset))
	}
	require.ElementsMatch(t, []string{"0@1", "1@1", "0@3", "1@3", "0@4", "1@4"}, got)
}

// txnAt is a transaction of user u at merchant m at time ts (RFC 3339), at
// an offset of a partition.
func txnAt(topic string, partition int, off int64, ts string) kafka.Message {
	// The example declares txn_id its id: one per partition and offset, so
	// that only a redelivery repeats one.
	id := fmt.Sprintf("p%d-%d", partition, off)
	return kafka.Message{Topic: topic, Partition: partition, Offset: off,
		Value: []byte(`{"txn_id":"` + id + `","user_id":"u","merchant_id":"m","amount":1,"ts":"` + ts + `"}`)}
}

// TestWatermarkSurvivesRestart: a new process that resumes a partition
// judges lateness against the watermark its predecessor saved, not against
// an empty one, so a redelivered or resumed stream is judged the same way.
func TestWatermarkSurvivesRestart(t *testing.T) {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	st := store.NewRedis(rc, testenv.Unique("marks-test:"))
	kc := defaultConfig(t).Kafka
	topic := kc.Topic("transaction")
	msg := func(off int64, ts string) kafka.Message { return txnAt(topic, 2, off, ts) }
	ctx := context.Background()
	run := func(keep bool, msgs ...kafka.Message) int64 {
		p, err := NewProcessor(reg, st, kc, quiet())
		require.NoError(t, err)
		if keep {
			p.KeepMarks("group-a")
		}
		require.NoError(t, p.Prepare(ctx, msgs))
		b := p.Plan(context.Background(), msgs)
		require.NoError(t, p.Apply(ctx, b))
		return p.Stats.Late.Load()
	}
	run(true, msg(0, "2019-01-02T12:00:00Z"))
	require.Equal(t, int64(1), run(true, msg(1, "2019-01-02T10:30:00Z")), "1.5h behind the saved mark: late for user_spend")
	require.Zero(t, run(false, msg(1, "2019-01-02T10:30:00Z")), "without saved marks a new process cannot know")
}

// TestImplausibleTimeCannotPoisonAPartition: an event a year ahead of the
// clock, or in microseconds, written to Kafka by a producer other than
// ingest, used to move its partition's watermark to the far future, after
// which every later event of the partition, other users' too, was dropped
// as late. Now such events are counted as rejected_time and skipped, the
// watermark stays with the clock, and every other event is applied.
func TestImplausibleTimeCannotPoisonAPartition(t *testing.T) {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	st := store.NewRedis(rc, testenv.Unique("poison-test:"))
	kc := defaultConfig(t).Kafka
	topic := kc.Topic("transaction")
	now := time.Now().Truncate(time.Hour).Add(30 * time.Minute)
	rule := events.DefaultTimeRule()
	ctx := context.Background()
	msg := func(off int64, user string, ts int64) kafka.Message {
		return kafka.Message{Topic: topic, Partition: 0, Offset: off,
			Value: fmt.Appendf(nil, `{"txn_id":"t%d","user_id":%q,"merchant_id":"m","amount":1,"ts":%d}`, off, user, ts)}
	}
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	stream := []kafka.Message{
		msg(0, "u1", ms(-20*time.Minute)),
		msg(1, "u2", now.AddDate(1, 0, 0).UnixMilli()), // a year ahead
		msg(2, "u3", now.UnixMicro()),                  // microseconds
		msg(3, "u4", now.Unix()),                       // seconds
		msg(4, "u1", ms(-10*time.Minute)),              // would have been "late" after offset 1
		msg(5, "u5", ms(-5*time.Minute)),
		msg(6, "u6", ms(4*time.Minute)), // ahead, but within the allowed skew
		msg(7, "u1", ms(-15*time.Minute)),
	}
	p, err := NewProcessor(reg, st, kc, quiet())
	require.NoError(t, err)
	p.JudgeTimes(rule, func() time.Time { return now })
	p.KeepMarks("group-p")
	require.NoError(t, p.Prepare(ctx, stream))
	b := p.Plan(ctx, stream)
	require.NoError(t, p.Apply(ctx, b))
	for _, o := range b.Outcomes() {
		require.Zero(t, o.Late, "%s: no event may be late", o.View)
		require.Equal(t, int64(3), o.RejectedTime, o.View)
		require.Equal(t, int64(5), o.Applied, o.View)
	}
	require.Equal(t, int64(3), p.Stats.RejectedTime.Load())
	require.Equal(t, int64(3), p.Stats.Snapshot()["rejected_time"])
	l, err := aggregate.NewLayout(reg.Views["user_spend"])
	require.NoError(t, err)
	states, err := st.Read(ctx, l, []string{"u1", "u2", "u3", "u4"})
	require.NoError(t, err)
	fi, _ := l.FeatureIndex("txn_count_1h")
	count, _ := l.Value(states[0], fi, now.UnixMilli())
	require.Equal(t, int64(3), count.I, "u1's three events all count")
	for _, st := range states[1:] {
		require.False(t, st.Found, "a rejected event leaves no state")
	}

	// A watermark saved far ahead by an earlier version heals: a new
	// process clamps it to its clock plus the skew on loading.
	require.NoError(t, st.SaveMarks(ctx, "group-p", topic, map[int]store.Mark{0: {Offset: 7, Time: now.UnixMicro()}}))
	q, err := NewProcessor(reg, st, kc, quiet())
	require.NoError(t, err)
	q.JudgeTimes(rule, func() time.Time { return now })
	q.KeepMarks("group-p")
	next := []kafka.Message{msg(8, "u1", ms(-30*time.Minute))}
	require.NoError(t, q.Prepare(ctx, next))
	b = q.Plan(ctx, next)
	require.NoError(t, q.Apply(ctx, b))
	require.Zero(t, q.Stats.Late.Load(), "30 minutes behind the clamped mark is within user_spend's 1h")
}

// TestRedeliveryIsCountedAsDuplicate: messages redelivered after a restart
// are judged against the watermark saved after them, so an update applied
// the first time can look late the second. It must count as a duplicate, as
// must one that was late the first time; only a message never processed
// before can be late.
func TestRedeliveryIsCountedAsDuplicate(t *testing.T) {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	st := store.NewRedis(rc, testenv.Unique("redeliver-test:"))
	kc := defaultConfig(t).Kafka
	topic := kc.Topic("transaction")
	msg := func(off int64, ts string) kafka.Message { return txnAt(topic, 1, off, ts) }
	ctx := context.Background()
	run := func(msgs ...kafka.Message) map[string]ViewOutcomes {
		p, err := NewProcessor(reg, st, kc, quiet())
		require.NoError(t, err)
		p.KeepMarks("group-r")
		require.NoError(t, p.Prepare(ctx, msgs))
		b := p.Plan(ctx, msgs)
		require.NoError(t, p.Apply(ctx, b))
		out := map[string]ViewOutcomes{}
		for _, o := range b.Outcomes() {
			name := o.View
			o.View = ""
			out[name] = o
		}
		return out
	}
	first := []kafka.Message{msg(0, "2019-01-02T10:00:00Z"), msg(1, "2019-01-02T12:00:00Z"), msg(2, "2019-01-02T10:30:00Z")}
	require.Equal(t, map[string]ViewOutcomes{
		"user_spend":        {Applied: 2, Late: 1}, // offset 2 is 1.5h behind offset 1
		"merchant_activity": {Applied: 3},
	}, run(first...))
	// A new member resumes from offset 0, before the saved mark (offset 2,
	// 12:00), and then reads a message that is new and late.
	again := append(first, msg(3, "2019-01-02T10:45:00Z"))
	require.Equal(t, map[string]ViewOutcomes{
		"user_spend":        {Duplicates: 3, Late: 1},
		"merchant_activity": {Duplicates: 3, Applied: 1},
	}, run(again...))
}

// TestRebuild loses the online state (all of it, then half the entities)
// and rebuilds it from the events Kafka retains: the result must equal what
// featurize had computed, with nothing counted twice.
func TestRebuild(t *testing.T) {
	f := newFixture(t, 1500)
	total := int64(len(f.evs) + 2*((len(f.evs)+49)/50))
	f.run(t, total)
	f.requireServed(t)
	ctx := context.Background()
	rc := f.st.Client()

	keys := func() []string {
		var out []string
		it := rc.Scan(ctx, 0, f.prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			out = append(out, it.Val())
		}
		require.NoError(t, it.Err())
		return out
	}
	for _, tc := range []struct {
		lose  string
		clear bool
	}{{"all", false}, {"half", false}, {"half", true}} {
		ks := keys()
		require.NotEmpty(t, ks)
		for i, k := range ks {
			if tc.lose == "all" || i%2 == 0 {
				require.NoError(t, rc.Del(ctx, k).Err())
			}
		}
		stats, err := Rebuild(ctx, f.cfg, f.reg, f.st, RebuildOptions{Clear: tc.clear}, quiet())
		require.NoError(t, err, tc.lose)
		require.Equal(t, total, stats["messages"], "every retained message read again (%s lost)", tc.lose)
		if tc.lose == "half" && !tc.clear {
			require.Positive(t, stats["duplicates"], "entities that survived skip what they hold")
		} else {
			require.Zero(t, stats["duplicates"])
		}
		f.requireServed(t)
	}
}

// TestCommitsWaitForTheDelay: offsets are committed only once their batch
// has been in Redis for the commit delay, and all of them at shutdown.
func TestCommitsWaitForTheDelay(t *testing.T) {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	cfg := defaultConfig(t)
	cfg.CommitDelay = 3 * time.Second
	p, err := NewProcessor(reg, store.NewRedis(rc, testenv.Unique("delay-test:")), cfg.Kafka, quiet())
	require.NoError(t, err)
	src := &fakeSource{}
	for i := range 4 {
		src.msgs = append(src.msgs, kafka.Message{Topic: cfg.Kafka.Topic("transaction"), Offset: int64(i),
			Value: []byte(fmt.Sprintf(`{"txn_id":"x","user_id":"u%d","amount":1,"ts":%d}`, i, 1_717_000_000_000+i))})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- NewConsumer(cfg, src, p, quiet()).Run(ctx) }()
	for p.Stats.Messages.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	require.Empty(t, src.committed(), "applied a moment ago: not committed yet")
	cancel()
	require.NoError(t, <-done)
	require.Len(t, src.committed(), 1, "committed at shutdown, after the delay")
	require.Equal(t, int64(3), src.committed()[0].Offset)
}

// TestRewoundPartitionInOneBatch: after a rebalance a batch can hold a
// partition's offsets 0..4 and then again 2..6; every offset must count once.
func TestRewoundPartitionInOneBatch(t *testing.T) {
	reg := testenv.Registry(t)
	_, rc := testenv.Redis(t)
	st := store.NewRedis(rc, testenv.Unique("rewind-test:"))
	kc := defaultConfig(t).Kafka
	topic := kc.Topic("transaction")
	msg := func(off int64) kafka.Message {
		return kafka.Message{Topic: topic, Offset: off,
			Value: []byte(fmt.Sprintf(`{"txn_id":"t%d","user_id":"u","merchant_id":"m","amount":1,"ts":%d}`, off, 1_717_000_000_000+off))}
	}
	var msgs []kafka.Message
	for _, off := range []int64{0, 1, 2, 3, 4, 2, 3, 4, 5, 6} {
		msgs = append(msgs, msg(off))
	}
	p, err := NewProcessor(reg, st, kc, quiet())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, p.Apply(ctx, p.Plan(ctx, msgs)))
	require.Equal(t, int64(2*7), p.Stats.Applied.Load(), "7 distinct events, 2 views")
	l, err := aggregate.NewLayout(reg.Views["user_spend"])
	require.NoError(t, err)
	states, err := st.Read(ctx, l, []string{"u"})
	require.NoError(t, err)
	i, _ := l.FeatureIndex("txn_count_1h")
	got, status := l.Value(states[0], i, 1_717_000_000_000+10)
	require.Equal(t, aggregate.OK, status)
	require.Equal(t, int64(7), got.I)
}
