package serve

import (
	"encoding/json"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// bigTransactions overflow every sum of the example views: two amounts of
// the largest float64, and items whose int sum leaves int64. Their mins and
// maxes fit, and must be exact.
var bigTransactions = []string{
	`{"txn_id":"b1","user_id":"u_big","ts":"2024-05-31T23:40:00Z","amount":1.7976931348623157e308,"merchant_id":"m_big","items":9223372036854775807}`,
	`{"txn_id":"b2","user_id":"u_big","ts":"2024-05-31T23:41:00Z","amount":1.7976931348623157e308,"merchant_id":"m_big","items":9007199254740993}`,
}

// TestOverflowIsNotAnEmptyWindow: a value beyond its type is null with the
// status OVERFLOW (INVALID on the Feast endpoint), never mistaken for an
// empty window, and never wrapped; the other features of the row and other
// entities are served as usual.
func TestOverflowIsNotAnEmptyWindow(t *testing.T) {
	reg := testenv.Registry(t)
	st := redisStore(t)
	load(t, reg, st, "transaction", append(append([]string{}, transactions...), bigTransactions...))
	_, base := newServer(t, reg, st, testConfig())
	const at = "2024-05-31T23:59:00Z"

	t.Run("native", func(t *testing.T) {
		a := get(t, base+"/v1/features/user_spend/u_big?at="+at)
		requireOK(t, a)
		var got struct {
			Features      map[string]json.RawMessage `json:"features"`
			FeatureStatus map[string]string          `json:"feature_status"`
		}
		require.NoError(t, json.Unmarshal(a.body, &got), "%s", a.body)
		require.Equal(t, map[string]string{"amount_sum_24h": "OVERFLOW", "amount_mean_7d": "OVERFLOW", "amount_std_24h": "OVERFLOW"}, got.FeatureStatus)
		for name := range got.FeatureStatus {
			require.Equal(t, "null", string(got.Features[name]), "%s is null", name)
		}
		require.Equal(t, "9007199254740993", string(got.Features["items_min_1h"]), "exact, not rounded through float64")
		require.Equal(t, "1.7976931348623157e+308", string(got.Features["amount_max_1h"]))
		require.Equal(t, "2", string(got.Features["txn_count_1h"]))

		a = get(t, base+"/v1/features/merchant_activity/m_big?at="+at)
		requireOK(t, a)
		require.Contains(t, string(a.body), `"items_sum_1h":null`)
		require.Contains(t, string(a.body), `"feature_status":{"amount_sum_1h":"OVERFLOW","items_sum_1h":"OVERFLOW"}`)

		a = get(t, base+"/v1/features/user_spend/u_1?at="+at)
		requireOK(t, a)
		require.NotContains(t, string(a.body), "feature_status", "ordinary values carry no statuses")
	})

	t.Run("batch", func(t *testing.T) {
		a := post(t, base+"/v1/features/merchant_activity", `{"entities":["m_a","m_big"],"at":"`+at+`"}`)
		requireOK(t, a)
		var got struct {
			Rows []map[string]json.RawMessage `json:"rows"`
		}
		require.NoError(t, json.Unmarshal(a.body, &got))
		require.Len(t, got.Rows, 2)
		require.NotContains(t, got.Rows[0], "feature_status")
		require.JSONEq(t, `{"amount_sum_1h":"OVERFLOW","items_sum_1h":"OVERFLOW"}`, string(got.Rows[1]["feature_status"]))
	})

	t.Run("feast", func(t *testing.T) {
		const present, invalid = `"PRESENT"`, `"INVALID"`
		a := post(t, base+"/get-online-features", `{"features":["merchant_activity:items_sum_1h","merchant_activity:txn_count_24h"],
			"entities":{"merchant_id":["m_big","m_a"]}}`)
		requireOK(t, a)
		o := decodeObject(t, a.body)
		results := o.array(t, "results")
		require.Len(t, results, 3)
		sum := decodeObject(t, results[1])
		require.Equal(t, []string{"null", "5"}, texts(sum.array(t, "values")))
		require.Equal(t, []string{invalid, present}, texts(sum.array(t, "statuses")))
		count := decodeObject(t, results[2])
		require.Equal(t, []string{"2", "2"}, texts(count.array(t, "values")))
		require.Equal(t, []string{present, present}, texts(count.array(t, "statuses")))
	})

	t.Run("arrow", func(t *testing.T) {
		_, col := postArrow(t, base+"/v1/features/user_spend", `{"entities":["u_big","u_1"],"at":"`+at+`"}`)
		fs := col("feature_status").(*array.String)
		require.JSONEq(t, `{"amount_sum_24h":"OVERFLOW","amount_mean_7d":"OVERFLOW","amount_std_24h":"OVERFLOW"}`, fs.Value(0))
		require.True(t, fs.IsNull(1))
		sum := col("amount_sum_24h")
		require.True(t, sum.IsNull(0))
		require.False(t, sum.IsNull(1))
		require.Equal(t, int64(9007199254740993), col("items_min_1h").(*array.Int64).Value(0))
	})
}
