package featurize

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// gatedSource serves the messages below limit of one partition, in order;
// Rewind resumes after the last committed offset, like a group rejoin.
type gatedSource struct {
	mu      sync.Mutex
	msgs    []kafka.Message
	limit   int
	next    int
	commits []int64
	rewinds int
}

func (s *gatedSource) open(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
}

func (s *gatedSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for {
		s.mu.Lock()
		if s.next < s.limit {
			s.next++
			m := s.msgs[s.next-1]
			s.mu.Unlock()
			return m, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return kafka.Message{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (s *gatedSource) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.commits = append(s.commits, m.Offset)
	}
	return nil
}

// lastCommit is the highest offset committed, -1 for none.
func (s *gatedSource) lastCommit() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLocked()
}

func (s *gatedSource) lastLocked() int64 {
	last := int64(-1)
	for _, o := range s.commits {
		last = max(last, o)
	}
	return last
}

func (s *gatedSource) Rewind() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = int(s.lastLocked() + 1)
	s.rewinds++
	return nil
}

func (s *gatedSource) Close() error { return nil }

// TestRedisPowerLossUnderRunningFeaturize: Redis acknowledges a batch,
// then dies and comes back without it (the AOF tail that appendfsync
// everysec had not synced), while featurize keeps running and has the next
// batch in hand. featurize must neither commit the lost batch's offsets nor
// write the next batch over the rolled-back state (the entity's offset
// would then skip the lost batch when redelivered); it must start over from
// the committed offset, so that every event counts once.
func TestRedisPowerLossUnderRunningFeaturize(t *testing.T) {
	reg := testenv.Registry(t)
	port, dir := testenv.FreePort(t), t.TempDir()
	redisArgs := []string{"--save", "", "--appendonly", "yes", "--appendfsync", "everysec"}
	srv := testenv.RedisServer(t, port, dir, redisArgs...)
	cfg := defaultConfig(t)
	cfg.BatchSize, cfg.BatchWait, cfg.CommitDelay = 5, 20*time.Millisecond, 2*time.Second
	scfg := store.Config{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), Prefix: "powerloss:"}
	st, err := scfg.Open()
	require.NoError(t, err)
	opened := time.Now()
	t.Cleanup(func() { _ = st.Close() })
	bg := context.Background()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("redis-server", func() bool { return st.Ping(bg) == nil })
	p, err := NewProcessor(reg, st, cfg.Kafka, quiet())
	require.NoError(t, err)
	p.KeepMarks(cfg.GroupID)
	topic := cfg.Kafka.Topic("transaction")
	const base = int64(1_717_000_000_000)
	src := &gatedSource{}
	for i := range 15 {
		src.msgs = append(src.msgs, kafka.Message{Topic: topic, Offset: int64(i),
			Value: fmt.Appendf(nil, `{"txn_id":"t%d","user_id":"u","merchant_id":"m","amount":1,"ts":%d}`, i, base+int64(i))})
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- NewConsumer(cfg, src, p, quiet()).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Batch 1 goes in and is committed after the delay. The AOF as it is
	// now is what the power loss will leave.
	src.open(5)
	waitFor("offset 4 committed", func() bool { return src.lastCommit() == 4 })
	aofs, err := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	require.NoError(t, err)
	require.Len(t, aofs, 1)
	fi, err := os.Stat(aofs[0])
	require.NoError(t, err)
	synced := fi.Size()
	// Batch 2 is acknowledged, then lost: kill -9, the AOF cut back.
	src.open(10)
	waitFor("batch 2 applied", func() bool { return p.Stats.Batches.Load() == 2 })
	// A server that starts within 2s of the store opening could have been
	// the one it first met (uptime has a resolution of seconds).
	time.Sleep(time.Until(opened.Add(2500 * time.Millisecond)))
	require.NoError(t, srv.Process.Kill())
	_, _ = srv.Process.Wait()
	require.Equal(t, int64(4), src.lastCommit(), "batch 2 is within the commit delay")
	require.NoError(t, os.Truncate(aofs[0], synced))
	testenv.RedisServer(t, port, dir, redisArgs...)
	// Batch 3 arrives while featurize finds Redis again.
	src.open(15)
	waitFor("offset 14 committed", func() bool { return src.lastCommit() == 14 })

	var l *aggregate.Layout
	for _, v := range p.views {
		if v.View.Name == "user_spend" {
			l = v
		}
	}
	require.NotNil(t, l)
	require.Equal(t, "txn_count_1h", l.View.Features[0].Name)
	states, err := st.Read(bg, l, []string{"u"})
	require.NoError(t, err)
	count, _ := l.Value(states[0], 0, base+15)
	require.Equal(t, 15.0, count.Float(), "every event counted once")
	src.mu.Lock()
	rewinds := src.rewinds
	src.mu.Unlock()
	require.Equal(t, 1, rewinds)
	require.Equal(t, uint64(1), st.Restarts())
	require.Zero(t, p.Stats.Late.Load())
}
