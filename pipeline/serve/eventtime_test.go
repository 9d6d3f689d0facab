package serve

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/stretchr/testify/require"
)

// asOfTransactions: u_a has three events on 2024-05-31, two in the minute
// from 10:00 (the finest hop of user_spend is a minute); u_f has one before
// now and one two minutes after now (a producer clock slightly ahead); u_z
// only one after now.
var asOfTransactions = []string{
	`{"txn_id":"a1","user_id":"u_a","ts":"2024-05-31T10:00:10Z","amount":1.0}`,
	`{"txn_id":"a2","user_id":"u_a","ts":"2024-05-31T10:00:50Z","amount":2.0}`,
	`{"txn_id":"a3","user_id":"u_a","ts":"2024-05-31T10:03:00Z","amount":4.0}`,
	`{"txn_id":"f1","user_id":"u_f","ts":"2024-05-31T23:50:00Z","amount":8.0}`,
	`{"txn_id":"f2","user_id":"u_f","ts":"2024-06-01T00:02:00Z","amount":16.0}`,
	`{"txn_id":"z1","user_id":"u_z","ts":"2024-06-01T00:02:00Z","amount":32.0}`,
}

func asOfServer(tb testing.TB) string {
	tb.Helper()
	reg := testenv.Registry(tb)
	st := redisStore(tb)
	load(tb, reg, st, "transaction", asOfTransactions)
	_, base := newServer(tb, reg, st, testConfig())
	return base
}

// TestAsOfEventTime: event_time in an answer is the newest event at or
// before the answer's at, null when there is none (the status stays
// PRESENT when the entity has state); exact unless at's own minute holds a
// later event, where it is the newest event of the minutes before.
func TestAsOfEventTime(t *testing.T) {
	base := asOfServer(t)
	for _, tc := range []struct {
		name, entity, at, status, eventTime, count string
	}{
		{"now, after every event", "u_a", "", "PRESENT", `"2024-05-31T10:03:00.000Z"`, "0"},
		{"after the newest event", "u_a", "2024-05-31T10:05:00Z", "PRESENT", `"2024-05-31T10:03:00.000Z"`, "3"},
		{"at the newest event", "u_a", "2024-05-31T10:03:00Z", "PRESENT", `"2024-05-31T10:03:00.000Z"`, "3"},
		{"at a tile end before the newest", "u_a", "2024-05-31T10:02:59.999Z", "PRESENT", `"2024-05-31T10:00:50.000Z"`, "2"},
		{"own minute empty", "u_a", "2024-05-31T10:01:30Z", "PRESENT", `"2024-05-31T10:00:50.000Z"`, "2"},
		{"after both events of a minute", "u_a", "2024-05-31T10:00:55Z", "PRESENT", `"2024-05-31T10:00:50.000Z"`, "2"},
		// The minute of 10:00 is taken whole, for the count as for the
		// time: 10:00:50 is in it but later than at, so the time comes from
		// the minutes before, which are empty.
		{"between two events of a minute", "u_a", "2024-05-31T10:00:30Z", "PRESENT", "null", "2"},
		{"before every event", "u_a", "2024-05-31T09:59:59.999Z", "PRESENT", "null", "0"},
		{"now, a later event ahead of the clock", "u_f", "", "PRESENT", `"2024-05-31T23:50:00.000Z"`, "1"},
		{"now, only an event ahead of the clock", "u_z", "", "PRESENT", "null", "0"},
		{"unknown entity", "nobody", "2024-05-31T10:05:00Z", "NOT_FOUND", "null", "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/features/user_spend/" + tc.entity + "?features=txn_count_1h"
			if tc.at != "" {
				path += "&at=" + tc.at
			}
			a := get(t, base+path)
			requireOK(t, a)
			o := decodeObject(t, a.body)
			require.Equal(t, `"`+tc.status+`"`, o.text(t, "status"))
			require.Equal(t, tc.eventTime, o.text(t, "event_time"))
			requireFeatures(t, o.object(t, "features"), []feature{exact("txn_count_1h", tc.count)})
		})
	}
}

// TestAsOfEventTimeBatch: the batch answer, in JSON and in Arrow, gives each
// row the newest event at or before the request's at.
func TestAsOfEventTimeBatch(t *testing.T) {
	base := asOfServer(t)
	body := `{"entities":["u_a","u_f","nobody","u_a"],"at":"2024-05-31T10:02:59.999Z"}`
	want := []struct{ status, eventTime string }{
		{"PRESENT", `"2024-05-31T10:00:50.000Z"`},
		{"PRESENT", "null"}, // u_f has state, but no event yet at 10:02
		{"NOT_FOUND", "null"},
		{"PRESENT", `"2024-05-31T10:00:50.000Z"`},
	}
	a := post(t, base+"/v1/features/user_spend", body)
	requireOK(t, a)
	rows := decodeObject(t, a.body).array(t, "rows")
	require.Len(t, rows, len(want))
	for i, w := range want {
		row := decodeObject(t, rows[i])
		require.Equal(t, `"`+w.status+`"`, row.text(t, "status"), "row %d", i)
		require.Equal(t, w.eventTime, row.text(t, "event_time"), "row %d", i)
	}

	_, col := postArrow(t, base+"/v1/features/user_spend", body)
	et := col("event_time").(*array.Timestamp)
	require.Equal(t, len(want), et.Len())
	for i, w := range want {
		if w.eventTime == "null" {
			require.True(t, et.IsNull(i), "row %d", i)
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, strings.Trim(w.eventTime, `"`))
		require.NoError(t, err)
		require.False(t, et.IsNull(i), "row %d", i)
		require.Equal(t, tm.UnixMilli(), int64(et.Value(i)), "row %d", i)
	}
	// u_f has state: its features are answered, with no event time.
	cnt := col("txn_count_1h").(*array.Int64)
	require.False(t, cnt.IsNull(1))
	require.Equal(t, int64(0), cnt.Value(1))
}

// TestAsOfEventTimeFeast: Feast looks up as of now, where an event ahead of
// the clock is not yet the newest; with no event at or before now the time
// is Feast's epoch, also for an entity that has state (PRESENT).
func TestAsOfEventTimeFeast(t *testing.T) {
	base := asOfServer(t)
	const present, notFound = `"PRESENT"`, `"NOT_FOUND"`
	a := post(t, base+"/get-online-features",
		`{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_a","u_f","u_z","nobody"]}}`)
	requireFeast(t, a, []string{"user_id", "txn_count_1h"}, []feastColumnWant{
		{[]string{`"u_a"`, `"u_f"`, `"u_z"`, `"nobody"`}, []string{present, present, present, present}, []string{epoch, epoch, epoch, epoch}},
		{[]string{"0", "1", "0", "null"}, []string{present, present, present, notFound},
			[]string{`"2024-05-31T10:03:00Z"`, `"2024-05-31T23:50:00Z"`, epoch, epoch}},
	})
}
