package project

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/devmode"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

func TestInitWritesAValidProject(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	written, err := Init(dir)
	require.NoError(t, err)
	require.Len(t, written, len(Files))

	reg, err := schemas.Load(dir)
	require.NoError(t, err, "freshet validate accepts it")
	require.ElementsMatch(t, []string{"customer_orders", "category_demand"}, reg.ViewNames())

	// Every sample line is a valid order with a plausible time; the README
	// names the customer of the last one (the freshest after a rebase).
	f, err := os.Open(filepath.Join(dir, "events.ndjson"))
	require.NoError(t, err)
	defer f.Close()
	rule := events.DefaultTimeRule()
	now := time.Now().UnixMilli()
	var last events.Event
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev, err := rule.Decode(reg.Events["order"], sc.Bytes(), now)
		require.NoError(t, err, "line %d: %s", n+1, sc.Text())
		require.True(t, n == 0 || ev.Time > last.Time, "in time order")
		last = ev
		n++
	}
	require.NoError(t, sc.Err())
	require.Equal(t, sampleEvents, n)
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), "freshet dev --schemas "+dir)
	require.Contains(t, string(readme), "/v1/features/customer_orders/"+last.Key())
	require.NotContains(t, string(readme), "{{")

	// Again: refused, naming what exists, nothing changed.
	before, err := os.ReadFile(filepath.Join(dir, "features.yaml"))
	require.NoError(t, err)
	_, err = Init(dir)
	require.ErrorContains(t, err, filepath.Join(dir, "features.yaml"))
	require.ErrorContains(t, err, "already exist")
	after, err := os.ReadFile(filepath.Join(dir, "features.yaml"))
	require.NoError(t, err)
	require.Equal(t, before, after)

	// The sample is the same every time.
	a, _ := sampleOrders()
	b, _ := sampleOrders()
	require.True(t, bytes.Equal(a, b))
}

// TestInitProjectRunsInDevMode: `freshet dev --schemas DIR` serves a new
// project, the sample and its event type found in DIR.
func TestInitProjectRunsInDevMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	_, err := Init(dir)
	require.NoError(t, err)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	cfg := devmode.Config{Schemas: dir, KafkaPort: testenv.FreePort(t), RedisPort: testenv.FreePort(t),
		IngestAddr: addr(), FeaturizeAddr: addr(), ServeAddr: addr()}
	ctx, cancel := context.WithCancel(context.Background())
	var out testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- devmode.Run(ctx, cfg, &out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Try:") {
		require.True(t, time.Now().Before(deadline), "no welcome after 60s:\n%s", out.String())
		time.Sleep(50 * time.Millisecond)
	}
	_, customer := sampleOrders()
	res, err := http.Get("http://" + cfg.ServeAddr + "/v1/features/customer_orders/" + customer)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var body struct {
		Status   string
		Features map[string]any
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, "PRESENT", body.Status)
	require.NotZero(t, body.Features["orders_1h"], "the last order was moved to now")
}
