package backfill

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// BenchmarkBackfill computes a training set from FRESHET_BENCH_EVENTS and
// FRESHET_BENCH_SPINE (files written by `go run ./bench/gen`); it is
// skipped without them.
func BenchmarkBackfill(b *testing.B) {
	evs, spine := os.Getenv("FRESHET_BENCH_EVENTS"), os.Getenv("FRESHET_BENCH_SPINE")
	if evs == "" || spine == "" {
		b.Skip("set FRESHET_BENCH_EVENTS and FRESHET_BENCH_SPINE (go run ./bench/gen)")
	}
	reg := testenv.Registry(b)
	for b.Loop() {
		sum, err := Run(context.Background(), reg, Options{Events: []string{evs}, Spine: spine, Out: filepath.Join(b.TempDir(), "out.parquet"), TempDir: b.TempDir()})
		require.NoError(b, err)
		b.ReportMetric(float64(sum.Events)/sum.Elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(sum.SpineRows)/sum.Elapsed.Seconds(), "spine-rows/s")
	}
}
