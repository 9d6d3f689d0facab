package featurize

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// changedRegistry loads schemas/example with each old → new replacement
// made in its text.
func changedRegistry(tb testing.TB, replace ...string) *schemas.Registry {
	tb.Helper()
	src := filepath.Join(testenv.RepoRoot(tb), "schemas", "example", "transactions.yaml")
	text, err := os.ReadFile(src)
	require.NoError(tb, err)
	s := string(text)
	for i := 0; i < len(replace); i += 2 {
		require.Contains(tb, s, replace[i])
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	dir := tb.TempDir()
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "transactions.yaml"), []byte(s), 0o644))
	reg, err := schemas.Load(dir)
	require.NoError(tb, err)
	return reg
}

// adopt records the generations of reg's views as featurize's prologue
// does when it starts (cli.deployed).
func adopt(tb testing.TB, st *store.Redis, reg *schemas.Registry) []store.Gen {
	tb.Helper()
	var want []store.GenWant
	for _, name := range reg.ViewNames() {
		l, err := aggregate.NewLayout(reg.Views[name])
		require.NoError(tb, err)
		want = append(want, store.GenWant{View: name, Fingerprint: l.Fingerprint})
	}
	gens, err := st.Adopt(context.Background(), want)
	require.NoError(tb, err)
	return gens
}

// publish writes n more example transactions after the fixture's, and adds
// them to its events.
func (f *fixture) publish(t *testing.T, n int) {
	ev := f.reg.Events["transaction"]
	rng := rand.New(rand.NewPCG(uint64(len(f.evs)), 9))
	base := f.evs[len(f.evs)-1].Time + 1000
	topic := f.cfg.Kafka.Topic("transaction")
	var msgs []kafka.Message
	for i := range n {
		j := len(f.evs)
		raw := fmt.Sprintf(`{"txn_id":"t%d","user_id":"u%d","merchant_id":"m%d","amount":%d.25,"items":%d,"ts":%d}`,
			j, rng.IntN(20), rng.IntN(5), rng.IntN(100), rng.IntN(4), base+int64(i)*1000)
		e, err := events.Decode(ev, []byte(raw))
		require.NoError(t, err)
		f.evs = append(f.evs, e)
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(e.Key()), Value: e.AppendJSON(nil)})
	}
	f.valid = f.evs
	w := f.cfg.Kafka.NewWriter()
	defer w.Close()
	require.NoError(t, w.WriteMessages(context.Background(), msgs...))
}

// TestCatchUpRecomputesAChangedView: definitions A run over a stream; then
// B widens a window of user_spend (a new layout: recomputed) and leaves
// merchant_activity as it was, and featurize restarts on B while events
// keep coming. user_spend reads PENDING until its catch-up has applied
// every partition up to its boundary, then equals tiles built in memory
// from every event (nothing missed, nothing counted twice); merchant_activity
// keeps its generation and is served throughout.
func TestCatchUpRecomputesAChangedView(t *testing.T) {
	f := newFixture(t, 3000)
	total := int64(len(f.evs) + 2*((len(f.evs)+49)/50))
	// Without ids, so that only offsets keep an event from counting twice.
	noIDs := []string{"id: txn_id", "# id: txn_id", "dedupe_window: 1h", "# dedupe_window: 1h"}
	f.reg = changedRegistry(t, noIDs...)
	before := adopt(t, f.st, f.reg)
	f.run(t, total)
	f.requireServed(t)

	// Widening a window within the tiles kept keeps the layout, so the
	// state: instant.
	widen := []string{"amount_sum_24h: {agg: sum,    field: amount, window: 24h, hop: 10m}",
		"amount_sum_24h: {agg: sum,    field: amount, window: 48h, hop: 10m}"}
	a, err := aggregate.NewLayout(f.reg.Views["user_spend"])
	require.NoError(t, err)
	w, err := aggregate.NewLayout(changedRegistry(t, append(noIDs, widen...)...).Views["user_spend"])
	require.NoError(t, err)
	require.Equal(t, a.Fingerprint, w.Fingerprint)

	// A new statistic of amount at 1m is a new layout: recomputed.
	f.reg = changedRegistry(t, append(append(noIDs, widen...), "items_min_1h:", "amount_min_1h:  {agg: min,    field: amount, window: 1h,  hop: 1m}\n      items_min_1h:")...)
	after := adopt(t, f.st, f.reg)
	byView := map[string]store.Gen{}
	for i, g := range after {
		byView[g.View] = g
		if g.View == "merchant_activity" {
			require.Equal(t, before[i], g, "an unchanged view keeps its generation")
		}
	}
	require.Equal(t, store.GenCatchingUp, byView["user_spend"].State)
	require.NotEqual(t, before[0].ID, byView["user_spend"].ID)

	// Another replica of B claimed the boundaries at the end of the
	// stream, and this one resumes from half-way (its last commits were
	// lost): the live path must leave what it reads up to the boundaries
	// to the catch-up, or it counts them twice.
	topic := f.cfg.Kafka.Topic("transaction")
	spans, err := f.cfg.Kafka.Spans(context.Background(), []string{topic}, false)
	require.NoError(t, err)
	commit := &kafka.OffsetCommitRequest{GroupID: f.cfg.GroupID, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for _, p := range spans[topic] {
		_, err := f.st.ClaimBoundary(context.Background(), byView["user_spend"], fmt.Sprintf("%s/%d", topic, p.Partition), p.Last-1)
		require.NoError(t, err)
		commit.Topics[topic] = append(commit.Topics[topic], kafka.OffsetCommit{Partition: p.Partition, Offset: (p.First + p.Last) / 2})
	}
	_, err = f.cfg.Kafka.Client().OffsetCommit(context.Background(), commit)
	require.NoError(t, err)

	f.cfg.CatchUpRate = 1500 // a couple of seconds: the live path runs meanwhile
	svc, err := NewService(f.cfg, f.reg, f.st, quiet())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, l) }()

	f.publish(t, 600) // live: after the boundaries
	spend, err := aggregate.NewLayout(f.reg.Views["user_spend"])
	require.NoError(t, err)
	sawPending := false
	deadline := time.After(90 * time.Second)
	for {
		gens, err := f.st.Generations(ctx)
		require.NoError(t, err)
		if gens["user_spend"].Live() {
			break
		}
		require.NoError(t, f.st.FollowGens(ctx))
		st, err := f.st.Read(ctx, spend, []string{"u1"})
		require.NoError(t, err)
		if !gens["user_spend"].Live() && st[0].Pending {
			v, status := spend.Value(st[0], 0, 0)
			require.Equal(t, aggregate.Pending, status)
			require.False(t, v.Present())
			sawPending = true
		}
		select {
		case err := <-done:
			t.Fatalf("featurize stopped during the catch-up: %v", err)
		case <-deadline:
			t.Fatalf("user_spend not live after 90s: %+v", svc.CatchUps())
		case <-time.After(100 * time.Millisecond):
		}
	}
	require.True(t, sawPending, "user_spend read PENDING while catching up")
	progress := svc.CatchUps()
	require.Len(t, progress, 1)
	require.Equal(t, "user_spend", progress[0].View)
	require.Positive(t, progress[0].Applied)
	t.Logf("catch-up: %+v", progress[0])

	// The live path read the second half again, then the new events.
	for svc.Proc.Stats.Messages.Load() < 600+total/2-3 {
		select {
		case <-deadline:
			t.Fatalf("featurize consumed %d messages, not the %d new ones and half the old", svc.Proc.Stats.Messages.Load(), 600+total/2)
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, f.st.FollowGens(context.Background()))
	f.requireServed(t)
	require.Positive(t, svc.Proc.Stats.Deferred.Load(), "the live path left what is before the boundaries to the catch-up")
}

// start runs a featurize service on reg in the background; the channel
// gets what Run returns.
func (f *fixture) start(t *testing.T, reg *schemas.Registry) (*Service, context.CancelFunc, <-chan error) {
	svc, err := NewService(f.cfg, reg, f.st, quiet())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, l) }()
	t.Cleanup(cancel)
	return svc, cancel, done
}

// waitFor polls cond every 50ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRollingDeploy: a featurize on definitions A and one on B share the
// consumer group, as in the middle of a rolling deploy. B's deploy gives
// user_spend a new generation: A, whose writes would no longer be read
// and whose events B's catch-up boundaries count on, stops by itself
// with a clear error instead of consuming on; it never touches B's keys.
// B catches up and serves every view exactly, while events keep coming.
func TestRollingDeploy(t *testing.T) {
	f := newFixture(t, 2000)
	total := int64(len(f.evs) + 2*((len(f.evs)+49)/50))
	noIDs := []string{"id: txn_id", "# id: txn_id", "dedupe_window: 1h", "# dedupe_window: 1h"}
	regA := changedRegistry(t, noIDs...)
	regB := changedRegistry(t, append(noIDs, "items_min_1h:", "amount_min_1h:  {agg: min,    field: amount, window: 1h,  hop: 1m}\n      items_min_1h:")...)
	f.cfg.CommitDelay = 0
	adopt(t, f.st, regA)
	a, _, doneA := f.start(t, regA)
	waitFor(t, 60*time.Second, "A consumes the stream", func() bool { return a.Proc.Stats.Messages.Load() >= total })

	adopt(t, f.st, regB)
	f.cfg.CatchUpRate = 2000
	b, stopB, doneB := f.start(t, regB)
	f.reg = regB
	f.publish(t, 300)
	select {
	case err := <-doneA:
		require.ErrorIs(t, err, errRetired)
		require.ErrorContains(t, err, "view user_spend")
		require.ErrorContains(t, err, "run it with the deployed definitions")
	case <-time.After(15 * time.Second):
		t.Fatal("featurize on A kept running after B's deploy retired its user_spend")
	}
	f.publish(t, 300)
	waitFor(t, 90*time.Second, "user_spend goes live", func() bool {
		gens, err := f.st.Generations(context.Background())
		require.NoError(t, err)
		return gens["user_spend"].Live()
	})
	waitFor(t, 60*time.Second, "B consumes the new events", func() bool {
		return a.Proc.Stats.Messages.Load()+b.Proc.Stats.Messages.Load() >= total+600
	})
	stopB()
	require.NoError(t, <-doneB)
	require.NoError(t, f.st.FollowGens(context.Background()))
	f.requireServed(t)
}

// TestBoundedSource: a catch-up hands over a partition's messages up to
// its limit, holds the first one past a limit that may still move (until
// it moves), and drops those past a final one (the live path's).
func TestBoundedSource(t *testing.T) {
	var msgs []kafka.Message
	for p := range 2 {
		for off := range int64(6) {
			msgs = append(msgs, kafka.Message{Topic: "t", Partition: p, Offset: off})
		}
	}
	inner := &gatedSource{msgs: msgs, limit: len(msgs)}
	var limits atomic.Pointer[map[int]limit]
	limits.Store(&map[int]limit{0: {offset: 2, final: true}, 1: {offset: 3, final: false}})
	src := &boundedSource{inner: inner, limits: &limits}
	fetch := func(d time.Duration) (kafka.Message, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return src.FetchMessage(ctx)
	}
	var got []string
	for range 7 { // partition 0: 0..2 (3..5 dropped); partition 1: 0..3
		m, err := fetch(time.Second)
		require.NoError(t, err)
		got = append(got, fmt.Sprintf("%d/%d", m.Partition, m.Offset))
	}
	require.Equal(t, []string{"0/0", "0/1", "0/2", "1/0", "1/1", "1/2", "1/3"}, got)
	_, err := fetch(300 * time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded, "1/4 is past a limit that may move: held")
	limits.Store(&map[int]limit{0: {offset: 2, final: true}, 1: {offset: 4, final: true}})
	m, err := fetch(time.Second)
	require.NoError(t, err)
	require.Equal(t, int64(4), m.Offset, "the held message, once its limit moved")
	require.Equal(t, 1, m.Partition)
	_, err = fetch(300 * time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded, "1/5 is past a final limit: dropped, and nothing follows")
}
