package serve

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/stretchr/testify/require"
)

// TestBatchAsArrowStream asks for the batch answer as an Arrow IPC stream
// and reads it back with the Arrow reader: one row per entity in request
// order, typed columns, nulls where the window is empty or the entity
// unknown, the same values as the JSON answer.
func TestBatchAsArrowStream(t *testing.T) {
	reg := testenv.Registry(t)
	st := redisStore(t)
	load(t, reg, st, "transaction", transactions)
	_, base := newServer(t, reg, st, testConfig())

	req, err := http.NewRequest(http.MethodPost, base+"/v1/features/user_spend",
		strings.NewReader(`{"entities":["u_1","nobody"],"at":"2024-06-01T03:00:00Z"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.apache.arrow.stream")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, ArrowStream, res.Header.Get("Content-Type"))
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)

	r, err := ipc.NewReader(bytes.NewReader(body))
	require.NoError(t, err)
	defer r.Release()
	names := []string{}
	for _, f := range r.Schema().Fields() {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"user_id", "event_time", "txn_count_1h", "amount_sum_24h", "amount_mean_7d",
		"amount_max_1h", "items_min_1h", "amount_std_24h", "last_merchant", "feature_status"}, names)
	require.True(t, r.Next())
	rec := r.Record()
	require.Equal(t, int64(2), rec.NumRows())
	col := func(name string) arrow.Array {
		idx := r.Schema().FieldIndices(name)
		require.Len(t, idx, 1, name)
		return rec.Column(idx[0])
	}
	require.Equal(t, "u_1", col("user_id").(*array.String).Value(0))
	require.Equal(t, "nobody", col("user_id").(*array.String).Value(1))

	et := col("event_time").(*array.Timestamp)
	require.Equal(t, arrow.Millisecond, et.DataType().(*arrow.TimestampType).Unit)
	want, _ := time.Parse(time.RFC3339Nano, "2024-05-31T23:50:00.250Z")
	require.Equal(t, want.UnixMilli(), int64(et.Value(0)))
	require.True(t, et.IsNull(1), "an unknown entity has no event time")

	// u_1 three hours after its events: the hour is empty, the day is not.
	require.Equal(t, int64(0), col("txn_count_1h").(*array.Int64).Value(0))
	require.InDelta(t, 40.0, col("amount_sum_24h").(*array.Float64).Value(0), 1e-9)
	require.InDelta(t, 35.0, col("amount_mean_7d").(*array.Float64).Value(0), 1e-9)
	require.True(t, col("amount_max_1h").IsNull(0), "empty window: null")
	require.True(t, col("items_min_1h").IsNull(0))
	require.InDelta(t, pstdev(10, 25.5, 4.5), col("amount_std_24h").(*array.Float64).Value(0), 1e-9)
	require.Equal(t, "m_a", col("last_merchant").(*array.String).Value(0))
	require.True(t, col("feature_status").IsNull(0), "ordinary values have no statuses")
	for _, name := range names[2:] {
		require.True(t, col(name).IsNull(1), "%s of an unknown entity is null", name)
	}
	require.False(t, r.Next())
}
