package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// TestRecordAndReadDeployed: nothing recorded reads as not found; a
// recorded form reads back whole as the current version, keeps the time it
// was first deployed when recorded again, and earlier versions stay.
func TestRecordAndReadDeployed(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		_, ok, err := r.Deployed(ctx)
		require.NoError(t, err)
		require.False(t, ok)

		a := registry.Of(testenv.Registry(t))
		t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		require.NoError(t, r.Record(ctx, a, t0))
		d, ok, err := r.Deployed(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, Deployment{Version: a.Version(), Form: a, At: t0}, d)

		reg, err := schemas.Parse("b.yaml", []byte(strings.Replace(exampleYAML(t), "items: int", "items: int\n      gift: bool", 1)))
		require.NoError(t, err)
		b := registry.Of(reg)
		require.NotEqual(t, a.Version(), b.Version())
		require.NoError(t, r.Record(ctx, b, t0.Add(time.Hour)))
		require.NoError(t, r.Record(ctx, a, t0.Add(2*time.Hour))) // a rollback
		d, _, err = r.Deployed(ctx)
		require.NoError(t, err)
		require.Equal(t, a.Version(), d.Version)
		require.Equal(t, t0, d.At, "first deployed then, not when recorded again")
		h, err := r.client.HGetAll(ctx, r.prefix+registryKey).Result()
		require.NoError(t, err)
		require.Contains(t, h, "v:"+b.Version(), "earlier versions are kept")
	})
}

// exampleYAML is the example definitions' text.
func exampleYAML(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(tb), "schemas", "example", "transactions.yaml"))
	require.NoError(tb, err)
	return string(b)
}
