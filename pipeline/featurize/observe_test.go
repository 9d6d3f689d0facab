package featurize

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestLagBookForgetsPartitionsItNoLongerFetches: a partition that moved to
// another member in a rebalance must stop being reported, or the largest
// lag over members would show its old backlog forever.
func TestLagBookForgetsPartitionsItNoLongerFetches(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	book := &lagBook{parts: map[partition]lagEntry{}, now: func() time.Time { return now }}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m := mp.Meter("test")
	_, err := m.Int64ObservableGauge("lag", metric.WithInt64Callback(book.observe))
	require.NoError(t, err)
	_, err = m.Float64ObservableGauge("last", metric.WithFloat64Callback(book.observeLastBatch))
	require.NoError(t, err)
	collect := func() (map[string]int64, float64) {
		t.Helper()
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		lags, last := map[string]int64{}, -1.0
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				switch d := mt.Data.(type) {
				case metricdata.Gauge[int64]:
					for _, p := range d.DataPoints {
						topic, _ := p.Attributes.Value(attribute.Key("topic"))
						part, _ := p.Attributes.Value(attribute.Key("partition"))
						lags[topic.AsString()+"/"+part.AsString()] = p.Value
					}
				case metricdata.Gauge[float64]:
					last = d.DataPoints[0].Value
				}
			}
		}
		return lags, last
	}
	msg := func(part int, off, hwm int64) kafka.Message {
		return kafka.Message{Topic: "t", Partition: part, Offset: off, HighWaterMark: hwm}
	}

	lags, last := collect()
	require.Empty(t, lags)
	require.Zero(t, last, "no batch yet")
	book.fetched([]kafka.Message{msg(0, 10, 100), msg(1, 5, 6), msg(0, 20, 100)})
	book.batchDone(now)
	lags, last = collect()
	require.Equal(t, map[string]int64{"t/0": 79, "t/1": 0}, lags, "after each partition's last message")
	require.Equal(t, float64(now.Unix()), last)

	// Partition 1 went elsewhere; partition 0 keeps coming.
	now = now.Add(lagStale / 2)
	book.fetched([]kafka.Message{msg(0, 99, 100)})
	now = now.Add(lagStale/2 + time.Second)
	lags, _ = collect()
	require.Equal(t, map[string]int64{"t/0": 0}, lags)
}
