package retry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{First: time.Millisecond, Max: 5 * time.Millisecond}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Delay())
		require.NoError(t, b.Wait(context.Background()))
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{ms, 2 * ms, 4 * ms, 5 * ms, 5 * ms}, got)
	b.Reset()
	require.Equal(t, ms, b.Delay())
}

func TestBackoffDefaults(t *testing.T) {
	var b Backoff
	require.Equal(t, 100*time.Millisecond, b.Delay())
}

func TestBackoffStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{First: time.Hour}
	require.ErrorIs(t, b.Wait(ctx), context.Canceled)
}
