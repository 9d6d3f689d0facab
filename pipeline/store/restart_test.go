package store

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

func TestRestartWatchJudge(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	w := newRestartWatch(func() time.Time { return now })
	now = now.Add(time.Hour)
	for _, tc := range []struct {
		run    string
		uptime time.Duration
		want   uint64
	}{
		{"a", 2 * time.Hour, 0},          // up before the store opened
		{"b", time.Hour, 0},              // started as it opened
		{"c", time.Hour - startSlack, 0}, // within the uptime's resolution
		{"d", time.Minute, 1},            // started since: a restart
		{"d", time.Minute, 1},            // another connection to it
		{"e", 0, 2},                      // and again
		{"a", 0, 2},                      // a run id already judged
	} {
		w.judge(tc.run, tc.uptime)
		require.Equal(t, tc.want, w.restarts.Load(), "after %s up %s", tc.run, tc.uptime)
	}
}

func TestParseServerInfo(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nrun_id:5f0b2c\r\ntcp_port:6379\r\nuptime_in_seconds:93\r\n"
	id, up, ok := parseServerInfo(info)
	require.True(t, ok)
	require.Equal(t, "5f0b2c", id)
	require.Equal(t, 93*time.Second, up)
	_, _, ok = parseServerInfo("# Server\r\nrun_id:5f0b2c\r\n")
	require.False(t, ok, "no uptime")
	_, _, ok = parseServerInfo("run_id:x\r\nuptime_in_seconds:soon\r\n")
	require.False(t, ok, "bad uptime")
}

// TestRestartsCountsARestartedServer restarts a real redis-server under an
// open store: the first command after it comes back must tell.
func TestRestartsCountsARestartedServer(t *testing.T) {
	port := testenv.FreePort(t)
	dir := t.TempDir()
	start := func() *exec.Cmd { return testenv.RedisServer(t, port, dir, "--save", "", "--appendonly", "no") }
	srv := start()
	cfg := Config{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), Prefix: "restart-test:"}
	r, err := cfg.Open()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	ctx := context.Background()
	ping := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for r.Ping(ctx) != nil {
			require.True(t, time.Now().Before(deadline), "redis-server on %d does not answer", port)
			time.Sleep(20 * time.Millisecond)
		}
	}
	ping()
	require.Zero(t, r.Restarts(), "the server was up when the store opened")
	// As if the store had opened a minute ago, so that the restarted
	// server's uptime (whole seconds) cannot be taken for the first one's.
	r.watch.opened = r.watch.opened.Add(-time.Minute)
	require.NoError(t, srv.Process.Kill())
	_, _ = srv.Process.Wait()
	start()
	ping()
	require.Equal(t, uint64(1), r.Restarts())
	require.Equal(t, uint64(0), NewRedis(r.Client(), "p:").Restarts(), "a store from NewRedis does not watch")
}
