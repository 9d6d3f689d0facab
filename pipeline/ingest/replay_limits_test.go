package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestReplayOversizeLine: an NDJSON line over arrowio.MaxRowBytes is an
// invalid row whose start goes to the rejects file, and the rows after it
// are published.
func TestReplayOversizeLine(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	t.Chdir(t.TempDir())
	big := `{"txn_id":"` + strings.Repeat("x", 17<<20) + `"}`
	rows := []string{gzipRows[0], big, gzipRows[1]}
	require.NoError(t, os.WriteFile("big.ndjson", []byte(strings.Join(rows, "\n")), 0o644))

	cfg := kafkaConfig(brokers)
	ensureTopics(t, cfg, reg)
	var stderr bytes.Buffer
	sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), ReplayOptions{
		Event: "transaction", MaxErrors: 1, Rejects: "rejects.txt", Files: []string{"big.ndjson"}, Stderr: &stderr,
	})
	require.NoError(t, err)
	require.Equal(t, 2, sum.Published)
	require.Equal(t, 1, sum.Invalid)
	require.Contains(t, stderr.String(), "big.ndjson:2: line is over the 16 MiB limit of one event; is it one event per line?\n")
	rejects, err := os.ReadFile("rejects.txt")
	require.NoError(t, err)
	reason, text, ok := strings.Cut(strings.TrimSuffix(string(rejects), "\n"), "\t")
	require.True(t, ok)
	require.Equal(t, "big.ndjson:2: line is over the 16 MiB limit of one event; is it one event per line?", reason)
	require.True(t, strings.HasPrefix(text, `{"txn_id":"xxx`) && strings.HasSuffix(text, "x…"), "%.40s", text)
	require.Less(t, len(text), 2<<10)
}

// TestReplayFatalErrorPublishesNothing: a file that cannot be read to its
// end (here a decompression bomb after valid rows) fails the replay before
// anything, of any file, is published.
func TestReplayFatalErrorPublishesNothing(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	writeReplayFiles(t)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, err := zw.Write([]byte(strings.Join(gzipRows, "\n") + "\n"))
	require.NoError(t, err)
	block := append(bytes.Repeat([]byte{'x'}, 1<<20), '\n') // invalid rows
	for range 200 {
		_, err := zw.Write(block)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile("bomb.ndjson.gz", buf.Bytes(), 0o644))

	cfg := kafkaConfig(brokers)
	ensureTopics(t, cfg, reg)
	sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), ReplayOptions{
		Event: "transaction", MaxErrors: 1000, Files: []string{"a.ndjson", "bomb.ndjson.gz"},
	})
	require.ErrorContains(t, err, "replay: nothing was published: read bomb.ndjson.gz: bomb.ndjson.gz:")
	require.ErrorContains(t, err, "a decompression bomb or a corrupt file")
	require.Zero(t, sum.Published)
	for _, msgs := range readTopic(t, cfg, cfg.Topic("transaction")) {
		require.Empty(t, msgs)
	}
}
