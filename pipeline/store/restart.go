package store

// restart.go owns noticing a Redis server that restarted (and may have lost
// its last second of writes) and fencing writes until featurize rewinds.

import (
	"bufio"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// restartWatch notices a Redis server that started after the store was
// opened. Such a server reloaded its data from disk, and under appendfsync
// everysec the last second of acknowledged writes may not have been there:
// featurize must then redeliver what it has not committed to Kafka yet.
//
// Every new connection asks INFO server for the server's run id and uptime
// (connections are pooled, so this is rare). A run id seen for the first
// time whose server started after the watch did is a restart. It needs no
// address: a cluster's nodes have distinct run ids, and a node that was
// running when the store opened started before it.
type restartWatch struct {
	opened   time.Time
	now      func() time.Time
	restarts atomic.Uint64
	// fence makes a restart refuse every new connection until Resume:
	// a write planned against the lost state must not land on the
	// restarted server (see Redis.FenceRestarts).
	fence, fenced atomic.Bool

	mu   sync.Mutex
	seen map[string]bool // run ids already judged
}

func newRestartWatch(now func() time.Time) *restartWatch {
	return &restartWatch{opened: now(), now: now, seen: map[string]bool{}}
}

// startSlack absorbs uptime's one-second resolution and clock steps: a
// server up when the store opened is never taken for a restarted one.
const startSlack = 2 * time.Second

// ErrRestarted is the error of a store fenced after its server restarted,
// until Resume.
var ErrRestarted = errors.New("redis restarted since the last write and may have lost it; writes wait for featurize to rewind")

// onConnect is the go-redis OnConnect hook. It fails the connection only
// when fenced: a server that refuses INFO (an ACL) just goes unwatched.
func (w *restartWatch) onConnect(ctx context.Context, cn *redis.Conn) error {
	info, err := cn.Info(ctx, "server").Result()
	if err == nil {
		if runID, uptime, ok := parseServerInfo(info); ok {
			w.judge(runID, uptime)
		}
	}
	if w.fenced.Load() {
		return ErrRestarted
	}
	return nil
}

// judge records a server's run id and uptime as just seen.
func (w *restartWatch) judge(runID string, uptime time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[runID] {
		return
	}
	w.seen[runID] = true
	if w.now().Add(-uptime).After(w.opened.Add(startSlack)) {
		if w.fence.Load() {
			w.fenced.Store(true)
		}
		w.restarts.Add(1)
	}
}

// parseServerInfo reads run_id and uptime_in_seconds from INFO server.
func parseServerInfo(info string) (runID string, uptime time.Duration, ok bool) {
	var haveUp bool
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, found := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !found {
			continue
		}
		switch k {
		case "run_id":
			runID = v
		case "uptime_in_seconds":
			s, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", 0, false
			}
			uptime, haveUp = time.Duration(s)*time.Second, true
		}
	}
	return runID, uptime, runID != "" && haveUp
}

// FenceRestarts implements Online: from the moment the store notices a
// restart until Resume, it refuses every command on a new connection (with
// ErrRestarted). featurize needs it: a batch planned before the restart and
// applied after it would land on a state that lost the batches before it,
// and the per-entity offsets would then skip those batches when
// redelivered. Connections dialed before the restart all died with it, so
// nothing reaches the restarted server. It reports false for a store made
// by NewRedis, which does not notice restarts. Serve does not fence.
func (r *Redis) FenceRestarts() bool {
	if r.watch == nil {
		return false
	}
	r.watch.fence.Store(true)
	return true
}

// Resume implements Online: it lifts the fence of a noticed restart, once
// the caller has dropped everything it planned before it.
func (r *Redis) Resume() {
	if r.watch != nil {
		r.watch.fenced.Store(false)
	}
}

// Restarts implements Online. It counts the Redis servers that started
// after the store was opened by Config.Open: restarts (or nodes added later), whose data may
// lack the writes of their last second before a crash. It stays 0 for a
// store made by NewRedis.
func (r *Redis) Restarts() uint64 {
	if r.watch == nil {
		return 0
	}
	return r.watch.restarts.Load()
}
