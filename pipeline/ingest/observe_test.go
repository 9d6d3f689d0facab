package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// recordingWriter is a messageWriter that keeps what it is given and
// answers err.
type recordingWriter struct {
	got []kafka.Message
	err error
}

func (w *recordingWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.got = append(w.got, msgs...)
	return w.err
}

// TestObservedWriter: observation adds headers and metrics around the
// write it wraps, and changes nothing else: the same messages reach the
// writer, and its error comes back as it was.
func TestObservedWriter(t *testing.T) {
	plain := &recordingWriter{}
	require.Same(t, plain, observeWrites(plain, nil), "without telemetry, no wrapper")

	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "ingest-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	next := &recordingWriter{}
	w := observeWrites(next, tel)
	msgs := []kafka.Message{{Topic: "t", Key: []byte("k1"), Value: []byte("v1")}, {Topic: "t", Key: []byte("k2"), Value: []byte("value2")}}
	require.NoError(t, w.WriteMessages(ctx, msgs...))
	next.err = errors.New("no leader")
	require.Equal(t, next.err, w.WriteMessages(ctx, msgs[:1]...))
	next.err = nil
	require.NoError(t, w.WriteMessages(ctx), "no messages: nothing to observe")

	want := append(msgs[:2:2], msgs[0]) // both writes
	require.Len(t, next.got, len(want))
	for i, m := range next.got {
		require.Equal(t, want[i].Key, m.Key)
		require.Equal(t, want[i].Value, m.Value)
		_, ok := telemetry.IngestTime(m.Headers)
		require.True(t, ok, "message %d carries the acceptance time", i)
	}

	mux := http.NewServeMux()
	tel.Mount(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range []string{
		`freshet_ingest_kafka_write_duration_seconds_count{outcome="ok",topic="t"} 1`,
		`freshet_ingest_kafka_write_duration_seconds_count{outcome="error",topic="t"} 1`,
		`freshet_ingest_kafka_write_events_sum{topic="t"} 3`,
		`freshet_ingest_kafka_write_bytes_sum{topic="t"} 16`,
	} {
		require.Contains(t, rec.Body.String(), line)
	}
}
