package serve

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// feastColumnWant is one expected result of Feast's answer, each element
// as JSON text.
type feastColumnWant struct {
	values, statuses, timestamps []string
}

// requireFeast checks a Feast answer field by field.
func requireFeast(t *testing.T, a answer, names []string, cols []feastColumnWant) {
	t.Helper()
	requireOK(t, a)
	o := decodeObject(t, a.body)
	require.Equal(t, []string{"metadata", "results"}, o.keys)
	meta := o.object(t, "metadata")
	require.Equal(t, []string{"feature_names"}, meta.keys)
	var gotNames []string
	require.NoError(t, json.Unmarshal(meta.m["feature_names"], &gotNames))
	require.Equal(t, names, gotNames)
	results := o.array(t, "results")
	require.Len(t, results, len(cols))
	for i, want := range cols {
		r := decodeObject(t, results[i])
		require.Equal(t, []string{"values", "statuses", "event_timestamps"}, r.keys, "result %d", i)
		require.Equal(t, want.values, texts(r.array(t, "values")), "values of result %d (%s)", i, names[i])
		require.Equal(t, want.statuses, texts(r.array(t, "statuses")), "statuses of result %d (%s)", i, names[i])
		require.Equal(t, want.timestamps, texts(r.array(t, "event_timestamps")), "event_timestamps of result %d (%s)", i, names[i])
	}
}

const epoch = `"1970-01-01T00:00:00Z"`

func TestFeast(t *testing.T) {
	base := exampleServer(t)
	const present, notFound = `"PRESENT"`, `"NOT_FOUND"`
	u1Time, u2Time := `"2024-05-31T23:50:00.250Z"`, `"2024-05-31T23:55:00Z"`
	entityCol := feastColumnWant{
		values:     []string{`"u_1"`, `"nobody"`, `"u_2"`},
		statuses:   []string{present, present, present},
		timestamps: []string{epoch, epoch, epoch},
	}
	perEntity := []string{present, notFound, present}
	times := []string{u1Time, epoch, u2Time}
	cols := []feastColumnWant{
		entityCol,
		{[]string{"3", "null", "1"}, perEntity, times},
		{[]string{"25.5", "null", "7.0"}, perEntity, times},
		// u_2 has state but no merchant: PRESENT with a null value.
		{[]string{`"m_a"`, "null", "null"}, perEntity, times},
		{[]string{"35.0", "null", "7.0"}, perEntity, times},
	}
	for _, tc := range []struct {
		name, full string
		names      []string
	}{
		{"short names", "", []string{"user_id", "txn_count_1h", "amount_max_1h", "last_merchant", "amount_mean_7d"}},
		{"full_feature_names false", `,"full_feature_names":false`, []string{"user_id", "txn_count_1h", "amount_max_1h", "last_merchant", "amount_mean_7d"}},
		{"full_feature_names true", `,"full_feature_names":true`, []string{"user_id", "user_spend__txn_count_1h", "user_spend__amount_max_1h", "user_spend__last_merchant", "user_spend__amount_mean_7d"}},
		{"extra Feast members ignored", `,"feature_service":null,"request_context":{}`, []string{"user_id", "txn_count_1h", "amount_max_1h", "last_merchant", "amount_mean_7d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"features":["user_spend:txn_count_1h","user_spend:amount_max_1h","user_spend:last_merchant","user_spend:amount_mean_7d"],` +
				`"entities":{"user_id":["u_1","nobody","u_2"]}` + tc.full + `}`
			requireFeast(t, post(t, base+"/get-online-features", body), tc.names, cols)
		})
	}
	t.Run("no entities", func(t *testing.T) {
		a := post(t, base+"/get-online-features", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":[]}}`)
		requireFeast(t, a, []string{"user_id", "txn_count_1h"}, []feastColumnWant{{[]string{}, []string{}, []string{}}, {[]string{}, []string{}, []string{}}})
	})
}

// TestFeastViews asks for features of two views keyed by the same int
// entity: one store read per view, entity values echoed with their JSON
// type.
func TestFeastViews(t *testing.T) {
	reg := clickRegistry(t)
	st := &countingStore{Online: redisStore(t)}
	load(t, reg, st, "click", clicks)
	_, base := newServer(t, reg, st, testConfig())
	const present, notFound = `"PRESENT"`, `"NOT_FOUND"`
	perEntity := []string{present, present, notFound}
	times := []string{`"2024-05-31T23:30:00Z"`, `"2024-05-31T23:45:00Z"`, epoch}

	a := post(t, base+"/get-online-features", `{
		"features": ["clicks:clicks_1h", "pages:last_page", "clicks:dwell_sum_1h", "pages:n_sum_1d"],
		"entities": {"user": [42, "7", 99]},
		"full_feature_names": true}`)
	requireFeast(t, a, []string{"user", "clicks__clicks_1h", "pages__last_page", "clicks__dwell_sum_1h", "pages__n_sum_1d"}, []feastColumnWant{
		{[]string{"42", `"7"`, "99"}, []string{present, present, present}, []string{epoch, epoch, epoch}},
		{[]string{"2", "1", "null"}, perEntity, times},
		{[]string{`"/b"`, `"/c"`, "null"}, perEntity, times},
		{[]string{"3.5", "0.25", "null"}, perEntity, times},
		{[]string{"7", "1", "null"}, perEntity, times},
	})
	require.Equal(t, [][]string{{"42", "7", "99"}, {"42", "7", "99"}}, st.Reads(), "one read per view")
}

func TestFeastErrors(t *testing.T) {
	base := exampleServer(t)
	for _, tc := range []struct {
		name, body string
		status     int
		parts      []string
	}{
		{"feature service", `{"feature_service":"fraud","entities":{"user_id":["u_1"]}}`, 400, []string{"feature_service is not supported"}},
		{"feature service and features", `{"feature_service":"fraud","features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"]}}`, 400, []string{"feature_service is not supported"}},
		{"no features", `{"entities":{"user_id":["u_1"]}}`, 400, []string{`missing "features"`}},
		{"no entities", `{"features":["user_spend:txn_count_1h"]}`, 400, []string{`"entities" has 0 keys`}},
		{"two entity keys", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1"],"merchant_id":["m_a"]}}`, 400, []string{`"entities" has 2 keys`}},
		{"views keyed differently", `{"features":["user_spend:txn_count_1h","merchant_activity:txn_count_10m"],"entities":{"user_id":["u_1"]}}`, 400,
			[]string{`view "merchant_activity" is keyed by "merchant_id"`, `"user_id"`}},
		{"wrong entity key", `{"features":["user_spend:txn_count_1h"],"entities":{"user":["u_1"]}}`, 400, []string{`view "user_spend" is keyed by "user_id"`}},
		{"not a reference", `{"features":["txn_count_1h"],"entities":{"user_id":["u_1"]}}`, 400, []string{`feature reference "txn_count_1h" is not "view:feature"`}},
		{"unknown view", `{"features":["nope:txn_count_1h"],"entities":{"user_id":["u_1"]}}`, 404, []string{`unknown view "nope"`}},
		{"unknown feature", `{"features":["user_spend:x"],"entities":{"user_id":["u_1"]}}`, 400, []string{`unknown feature "x" in view "user_spend"`}},
		{"bad entity", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_1",2.5]}}`, 400, []string{"entities.user_id[1]", "2.5 is not an integer"}},
		{"entity values not a list", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":"u_1"}}`, 400, []string{`"entities.user_id": want a list of strings or integers, got a string`}},
		{"too many entities", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":[1,2,3,4,5,6]}}`, 400, []string{"too many entities"}},
		{"malformed", `{"features":[`, 400, []string{"invalid JSON body"}},
		{"not an object", `["user_spend:txn_count_1h"]`, 400, []string{"request body: want a JSON object, got a list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireError(t, post(t, base+"/get-online-features", tc.body), tc.status, tc.parts...)
		})
	}
}
