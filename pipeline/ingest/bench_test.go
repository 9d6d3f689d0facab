package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/arrowio"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// benchRows is the size of the replay benchmark's Parquet file:
// FRESHET_BENCH_ROWS (5000000 for the figure in the README), else 200k.
func benchRows(tb testing.TB) int {
	if s := os.Getenv("FRESHET_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(tb, err)
		return n
	}
	return 200_000
}

// writeBenchParquet writes n example transactions to a Parquet file.
func writeBenchParquet(tb testing.TB, typ *schemas.Event, n int) (string, []events.Event) {
	path := filepath.Join(tb.TempDir(), "events.parquet")
	rng := rand.New(rand.NewPCG(1, 1))
	evs := make([]events.Event, n)
	for i := range evs {
		raw := fmt.Sprintf(`{"txn_id":"t%09d","user_id":"u%06d","merchant_id":"m%04d","amount":%d.%02d,"items":%d,"card_present":%v,"ts":%d}`,
			i, rng.IntN(100_000), rng.IntN(5_000), rng.IntN(500), rng.IntN(100), 1+rng.IntN(5), rng.IntN(2) == 0, 1_717_000_000_000+int64(i)*10)
		e, err := events.Decode(typ, []byte(raw))
		require.NoError(tb, err)
		evs[i] = e
	}
	require.NoError(tb, arrowio.WriteEvents(path, typ, evs, 64_000))
	return path, evs
}

// BenchmarkReplayParquetVsWriter replays a Parquet file into the broker and,
// in the same run, writes the same messages with kafka-go's Writer alone
// (same settings, messages built beforehand): the ratio is replay's
// overhead over the limit of the client.
func BenchmarkReplayParquetVsWriter(b *testing.B) {
	reg := testenv.Registry(b)
	typ := reg.Events["transaction"]
	n := benchRows(b)
	path, evs := writeBenchParquet(b, typ, n)
	st, err := os.Stat(path)
	require.NoError(b, err)
	brokers := testenv.Kafka(b)

	var replayRate, writerRate float64
	for b.Loop() {
		cfg := kafkaConfig(brokers)
		ensureTopics(b, cfg, reg)
		start := time.Now()
		sum, err := Replay(context.Background(), reg, newPublisher(b, cfg), ReplayOptions{Event: "transaction", Files: []string{path}})
		require.NoError(b, err)
		require.Equal(b, n, sum.Published)
		replayRate = float64(n) / time.Since(start).Seconds()

		cfg = kafkaConfig(brokers)
		ensureTopics(b, cfg, reg)
		var enc encoder
		msgs := make([]kafka.Message, n)
		for i := range evs {
			msgs[i] = enc.message(&cfg, &evs[i])
		}
		w := cfg.NewWriter()
		start = time.Now()
		for i := 0; i < n; i += DefaultBatch {
			require.NoError(b, w.WriteMessages(context.Background(), msgs[i:min(i+DefaultBatch, n)]...))
		}
		writerRate = float64(n) / time.Since(start).Seconds()
		require.NoError(b, w.Close())
	}
	b.ReportMetric(replayRate, "replay-events/s")
	b.ReportMetric(writerRate, "writer-events/s")
	b.ReportMetric(replayRate/writerRate, "ratio")
	b.ReportMetric(float64(st.Size())/1e6, "file-MB")
}
