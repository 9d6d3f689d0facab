package devmode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// syncBuffer is an io.Writer safe to read while Run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDevModeServesLiveFeatures(t *testing.T) {
	root := testenv.RepoRoot(t)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	cfg := Config{
		Schemas: filepath.Join(root, "schemas", "example"), Sample: filepath.Join(root, "schemas", "example", "events.ndjson"),
		Event: "transaction", KafkaPort: testenv.FreePort(t), RedisPort: testenv.FreePort(t),
		IngestAddr: addr(), FeaturizeAddr: addr(), ServeAddr: addr(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Try:") {
		require.True(t, time.Now().Before(deadline), "no welcome after 60s; output:\n%s", out.String())
		time.Sleep(50 * time.Millisecond)
	}
	// The printed lookup works as printed.
	var path string
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "curl" && strings.Contains(f[2], "/v1/features/") {
			path = f[2]
		}
	}
	require.NotEmpty(t, path, out.String())
	res, err := http.Get("http://" + path)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var body struct {
		Status   string                     `json:"status"`
		Features map[string]json.RawMessage `json:"features"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, "PRESENT", body.Status)
	// The sample was moved to the present: the latest events fall in the
	// 1h window now.
	require.NotEqual(t, "0", string(body.Features["txn_count_1h"]))
	cancel()
	require.NoError(t, <-done)
}

func TestRebase(t *testing.T) {
	reg, err := schemas.Parse("t.yaml", []byte("events:\n  e:\n    key: k\n    timestamp: ts\n    fields: {k: string}\n"))
	require.NoError(t, err)
	typ := reg.Events["e"]
	mk := func(ts int64) events.Event {
		e, err := events.Decode(typ, []byte(fmt.Sprintf(`{"k":"a","ts":%d}`, ts)))
		require.NoError(t, err)
		return e
	}
	got := Rebase([]events.Event{mk(1000), mk(5000), mk(3000)}, 100_000)
	for i, want := range []int64{96_000, 100_000, 98_000} {
		require.Equal(t, want, got[i].Time)
		require.Equal(t, want, got[i].Get("ts").I, "the timestamp field moves with the event time")
	}
}
