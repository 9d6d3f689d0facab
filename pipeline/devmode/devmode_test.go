package devmode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

func TestDevModeServesLiveFeatures(t *testing.T) {
	root := testenv.RepoRoot(t)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	cfg := Config{
		Schemas: filepath.Join(root, "schemas", "example"), Sample: filepath.Join(root, "schemas", "example", "events.ndjson"),
		Event: "transaction", KafkaPort: testenv.FreePort(t), RedisPort: testenv.FreePort(t),
		IngestAddr: addr(), FeaturizeAddr: addr(), ServeAddr: addr(),
	}
	out := startDev(t, cfg)
	checkPrintedLookup(t, out.String())

	// History sent as if live: the 202 says featurize will drop it, and
	// dev mode's console says when it has.
	res, err := http.Post("http://"+cfg.IngestAddr+"/v1/events/transaction", "application/json",
		strings.NewReader(`{"txn_id":"old","user_id":"u_0007","merchant_id":"m_020","amount":41.5,"ts":"2024-06-01T12:00:00Z"}`))
	require.NoError(t, err)
	var ans struct {
		Accepted, Late int
		Warning        string
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&ans))
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusAccepted, res.StatusCode)
	require.Equal(t, 1, ans.Late, ans.Warning)
	require.Contains(t, ans.Warning, "featurize will drop them as late")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "featurize dropped 2 event×view update(s) as late") {
		require.True(t, time.Now().Before(deadline), "no line about the dropped event:\n%s", out.String())
		time.Sleep(50 * time.Millisecond)
	}

	// A second dev mode with the same settings finds every port taken,
	// says so and which flag moves it, and works on free ones. Its sample
	// and event type come from the definitions' directory.
	cfg.Sample, cfg.Event = "", ""
	out2 := startDev(t, cfg)
	for _, flag := range []string{"--ingest-addr", "--featurize-addr", "--serve-addr"} {
		require.Contains(t, out2.String(), "("+flag+" sets it)", out2.String())
	}
	require.Contains(t, out2.String(), "is taken (another freshet dev?)")
	checkPrintedLookup(t, out2.String())
}

// startDev runs dev mode until the test ends and waits for its welcome.
func startDev(t *testing.T, cfg Config) *testenv.Buffer {
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Try:") {
		require.True(t, time.Now().Before(deadline), "no welcome after 60s; output:\n%s", out.String())
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

// checkPrintedLookup runs the single lookup dev mode printed, as printed.
func checkPrintedLookup(t *testing.T, out string) {
	var path string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "curl" && strings.Contains(f[2], "/v1/features/") {
			path = f[2]
		}
	}
	require.NotEmpty(t, path, out)
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

// TestRebaseGivesFreshIDs: a sample sent again (a second demo run within
// the dedupe window) must not be skipped as duplicates by featurize.
func TestRebaseGivesFreshIDs(t *testing.T) {
	for _, typ := range []string{"string", "int"} {
		t.Run(typ, func(t *testing.T) {
			reg, err := schemas.Parse("t.yaml", []byte("events:\n  e:\n    key: k\n    timestamp: ts\n    id: n\n"+
				"    fields: {k: string, n: "+typ+"}\nfeature_views:\n  v:\n    source: e\n    entity: k\n"+
				"    features:\n      c: {agg: count, window: 1h}\n"))
			require.NoError(t, err)
			var sample []events.Event
			for i := range 3 {
				e, err := events.Decode(reg.Events["e"], []byte(fmt.Sprintf(`{"k":"a","n":%q,"ts":%d}`, strconv.Itoa(i), 1000*i)))
				if typ == "int" {
					e, err = events.Decode(reg.Events["e"], []byte(fmt.Sprintf(`{"k":"a","n":%d,"ts":%d}`, i, 1000*i)))
				}
				require.NoError(t, err)
				sample = append(sample, e)
			}
			seen := map[string]bool{}
			for run := range 2 {
				for _, e := range Rebase(sample, int64(100_000+run)) {
					id := e.Get("n").Text()
					require.False(t, seen[id], "id %s sent twice", id)
					seen[id] = true
				}
			}
			require.Len(t, seen, 6)
		})
	}
}

// TestReportDropped: dev mode says on its console when featurize drops
// events as late or for an implausible time, once per increase.
func TestReportDropped(t *testing.T) {
	reg := testenv.Registry(t)
	var st featurize.Stats
	out := &testenv.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reportDropped(ctx, out, &st, reg.ViewsOf("transaction"), 5*time.Millisecond) }()
	wait := func(s string) {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), s) {
			require.True(t, time.Now().Before(deadline), "no %q in:\n%s", s, out.String())
			time.Sleep(5 * time.Millisecond)
		}
	}
	st.Late.Add(3)
	wait("featurize dropped 3 event×view update(s) as late (3 in all)")
	require.Contains(t, out.String(), "user_spend 1h")
	require.Contains(t, out.String(), "--rebase-time")
	st.Late.Add(2)
	st.RejectedTime.Add(1)
	wait("featurize dropped 2 event×view update(s) as late (5 in all)")
	wait("featurize skipped 1 event(s) with an implausible time (1 in all)")
	time.Sleep(30 * time.Millisecond)
	require.Equal(t, 2, strings.Count(out.String(), "as late"), "a line per increase, not per tick:\n%s", out.String())
	cancel()
	require.NoError(t, <-done)
}

func TestListenOrFreeMovesOffATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = taken.Close() })
	l, err := listenOrFree(taken.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	require.NotEqual(t, taken.Addr().String(), l.Addr().String())
	require.False(t, sameAddr(taken.Addr().String(), l.Addr().String()))

	// An address that cannot be listened on for another reason fails.
	_, err = listenOrFree("256.0.0.1:80")
	require.Error(t, err)
}

func TestSampleDefaults(t *testing.T) {
	dir := t.TempDir()
	require.Equal(t, filepath.Join(dir, "events.ndjson"), defaultSample(dir))
	file := filepath.Join(dir, "defs.yaml")
	require.NoError(t, os.WriteFile(file, []byte("x: 1\n"), 0o644))
	require.Equal(t, filepath.Join(dir, "events.ndjson"), defaultSample(file))

	reg, err := schemas.Parse("t.yaml", []byte("events:\n  a:\n    key: k\n    timestamp: ts\n    fields: {k: string}\n  b:\n    key: k\n    timestamp: ts\n    fields: {k: string}\n"))
	require.NoError(t, err)
	_, err = sampleType(reg, Config{Schemas: "defs"})
	require.ErrorContains(t, err, "defines 2 event types (a, b): name the sample's with --event")
	_, err = sampleType(reg, Config{Schemas: "defs", Event: "c"})
	require.ErrorContains(t, err, `event "c" is not defined in defs; event types: a, b`)
	typ, err := sampleType(reg, Config{Event: "b"})
	require.NoError(t, err)
	require.Equal(t, "b", typ.Name)
}
