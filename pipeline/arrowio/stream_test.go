package arrowio

import (
	"bytes"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

func TestWriteStream(t *testing.T) {
	cols := []Column{
		{Name: "txn_count_1h", Type: schemas.Int},
		{Name: "amount_mean_7d", Type: schemas.Float},
		{Name: "last_merchant", Type: schemas.String},
		{Name: "card_present_last", Type: schemas.Bool},
		{Name: "last_seen", Type: schemas.Timestamp},
	}
	entities := []string{"u_1", "u_2", "ü_3"}
	found := []bool{true, false, true}
	eventTimes := []int64{1717027202123, 0, -5}
	values := [][]events.Value{
		{integer(3), {}, integer(-1)},
		{flt(2.5), {}, integer(4)}, // an int in a float column becomes 4.0
		{str("m_1"), {}, str("")},
		{boolean(true), {}, boolean(false)},
		{ms(1717027202000), {}, {}},
	}
	var buf bytes.Buffer
	require.NoError(t, writeStream(&buf, "user_id", entities, found, eventTimes, cols, values, checkedMem(t)))

	r, err := ipc.NewReader(&buf)
	require.NoError(t, err)
	defer r.Release()
	sc := r.Schema()
	var names []string
	var types []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
		types = append(types, f.Type.String())
	}
	require.Equal(t, []string{"user_id", "event_time", "txn_count_1h", "amount_mean_7d", "last_merchant", "card_present_last", "last_seen"}, names)
	require.Equal(t, []string{"utf8", "timestamp[ms, tz=UTC]", "int64", "float64", "utf8", "bool", "timestamp[ms, tz=UTC]"}, types)

	require.True(t, r.Next())
	rec := r.Record()
	require.EqualValues(t, 3, rec.NumRows())
	require.Equal(t, entities, stringsOf(rec.Column(0)))
	ts := rec.Column(1).(*array.Timestamp)
	require.Equal(t, arrow.Timestamp(1717027202123), ts.Value(0))
	require.True(t, ts.IsNull(1))
	require.Equal(t, arrow.Timestamp(-5), ts.Value(2))

	counts := rec.Column(2).(*array.Int64)
	require.Equal(t, []int64{3, 0, -1}, counts.Int64Values())
	require.True(t, counts.IsNull(1))
	require.False(t, counts.IsNull(0) || counts.IsNull(2))
	means := rec.Column(3).(*array.Float64)
	require.Equal(t, 2.5, means.Value(0))
	require.True(t, means.IsNull(1))
	require.Equal(t, 4.0, means.Value(2))
	merchants := rec.Column(4).(*array.String)
	require.Equal(t, "m_1", merchants.Value(0))
	require.True(t, merchants.IsNull(1))
	require.False(t, merchants.IsNull(2), "an empty string is not a null")
	bools := rec.Column(5).(*array.Boolean)
	require.True(t, bools.Value(0))
	require.True(t, bools.IsNull(1))
	require.False(t, bools.Value(2))
	seen := rec.Column(6).(*array.Timestamp)
	require.Equal(t, arrow.Timestamp(1717027202000), seen.Value(0))
	require.True(t, seen.IsNull(1) && seen.IsNull(2))

	require.False(t, r.Next())
	require.NoError(t, r.Err())
}

func stringsOf(a arrow.Array) []string {
	s := a.(*array.String)
	out := make([]string, s.Len())
	for i := range out {
		out[i] = s.Value(i)
	}
	return out
}

func TestWriteStreamEmptyAndLarge(t *testing.T) {
	cols := []Column{{Name: "n", Type: schemas.Int}}
	t.Run("empty", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, writeStream(&buf, "id", nil, nil, nil, cols, [][]events.Value{nil}, checkedMem(t)))
		r, err := ipc.NewReader(&buf)
		require.NoError(t, err)
		defer r.Release()
		require.Equal(t, 3, len(r.Schema().Fields()))
		require.False(t, r.Next())
		require.NoError(t, r.Err())
	})
	t.Run("several records", func(t *testing.T) {
		n := 150_000
		entities := make([]string, n)
		found := make([]bool, n)
		times := make([]int64, n)
		vals := make([]events.Value, n)
		for i := range entities {
			entities[i] = "e"
			found[i] = i%2 == 0
			times[i] = int64(i)
			vals[i] = integer(int64(i))
		}
		var buf bytes.Buffer
		require.NoError(t, writeStream(&buf, "id", entities, found, times, cols, [][]events.Value{vals}, checkedMem(t)))
		r, err := ipc.NewReader(&buf)
		require.NoError(t, err)
		defer r.Release()
		total := 0
		for r.Next() {
			rec := r.Record()
			require.LessOrEqual(t, rec.NumRows(), int64(defaultRowsPerGroup))
			n := rec.Column(2).(*array.Int64)
			for i := 0; i < n.Len(); i++ {
				require.EqualValues(t, total+i, n.Value(i))
			}
			total += int(rec.NumRows())
		}
		require.NoError(t, r.Err())
		require.Equal(t, n, total)
	})
}

func TestWriteStreamErrors(t *testing.T) {
	cols := []Column{{Name: "n", Type: schemas.Int}}
	var buf bytes.Buffer
	err := WriteStream(&buf, "id", []string{"a"}, []bool{true, false}, []int64{1}, cols, [][]events.Value{{{}}})
	require.ErrorContains(t, err, "1 entities, 2 found flags and 1 event times")
	err = WriteStream(&buf, "id", []string{"a"}, []bool{true}, []int64{1}, cols, nil)
	require.ErrorContains(t, err, "1 feature columns but values for 0")
	err = WriteStream(&buf, "id", []string{"a"}, []bool{true}, []int64{1}, cols, [][]events.Value{{}})
	require.ErrorContains(t, err, "column n has 0 values for 1 entities")
	err = WriteStream(&buf, "id", []string{"a"}, []bool{true}, []int64{1}, cols, [][]events.Value{{flt(1.5)}})
	require.ErrorContains(t, err, "column n, row 0: a float value cannot go in a column of type int")
}
