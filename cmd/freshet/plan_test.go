package main_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// TestPlan runs `freshet plan` against a Redis where the example
// definitions are deployed and a Kafka holding a few events, for a change of
// every kind the plan names, an incompatible one, and --json.
func TestPlan(t *testing.T) {
	ctx := context.Background()
	url, c := testenv.Redis(t)
	prefix := testenv.Unique("freshet-plan:")
	topics := testenv.Unique("plan") + "."
	brokers := testenv.Kafka(t)
	deployed := registry.Of(testenv.Registry(t))
	require.NoError(t, store.NewRedis(c, prefix).Record(ctx, deployed, time.Now()))

	// A few events, so that the topic holds history.
	kc := broker.Config{Brokers: brokers, TopicPrefix: topics, Partitions: 2, Replication: 1}
	require.NoError(t, kc.EnsureTopics(ctx, []string{kc.Topic("transaction")}))
	w := kc.NewWriter()
	now := time.Now()
	var msgs []kafka.Message
	for i := range 20 {
		msgs = append(msgs, kafka.Message{Topic: kc.Topic("transaction"), Key: []byte{byte('a' + i%5)}, Value: []byte(`{}`), Time: now.Add(-time.Hour)})
	}
	require.NoError(t, w.WriteMessages(ctx, msgs...))
	require.NoError(t, w.Close())

	example, err := os.ReadFile(filepath.Join(root, "schemas", "example", "transactions.yaml"))
	require.NoError(t, err)
	write := func(text string) string {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "defs.yaml"), []byte(text), 0o600))
		_, err := schemas.Load(dir)
		require.NoError(t, err, "the test's definitions load")
		return dir
	}
	change := func(text string, pairs ...string) string {
		for i := 0; i < len(pairs); i += 2 {
			require.Contains(t, text, pairs[i])
			text = strings.Replace(text, pairs[i], pairs[i+1], 1)
		}
		return text
	}
	b := change(string(example),
		"card_present: bool", "card_present: bool\n      coupon: string", // an optional field
		"      items_min_1h:   {agg: min,    field: items,  window: 1h,  hop: 1m}\n", "", // removed
		"amount_mean_7d: {agg: mean,   field: amount, window: 7d,", "amount_mean_7d: {agg: mean,   field: amount, window: 14d,", // widened
		"      txn_count_1h:   {agg: count,  window: 1h,  hop: 1m}\n",
		"      txn_count_1h:   {agg: count,  window: 1h,  hop: 1m}\n      amount_min_1h: {agg: min, field: amount, window: 1h, hop: 1m}\n      txn_count_2h: {agg: count, window: 2h, hop: 2m}\n")
	env := []string{"FRESHET_REDIS_URL=" + url, "FRESHET_REDIS_PREFIX=" + prefix,
		"FRESHET_KAFKA_BROKERS=" + strings.Join(brokers, ","), "FRESHET_TOPIC_PREFIX=" + topics}

	r := run(t, "freshet plan --schemas "+write(b), env...)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	t.Log(r.stdout)
	for _, want := range []string{
		"against the deployed version " + deployed.Version(),
		"event transaction: optional field coupon added",
		"user_spend: changed",
		"+ amount_min_1h",
		"+ txn_count_2h",
		"- items_min_1h",
		"~ amount_mean_7d",
		"changed: window 7d -> 14d",
		"= txn_count_1h",
		"its tile layout changes: featurize recomputes the view from the earliest offsets kafka retains",
		"features answer PENDING until it has caught up",
		"retains all 20 events ever written",
		"merchant_activity: unchanged",
		"summary: 1 changed, 1 unchanged; 1 recomputed from kafka; 0 incompatible event change(s)",
	} {
		require.Contains(t, r.stdout, want)
	}

	r = run(t, "freshet plan --json --schemas "+write(b), env...)
	require.Equal(t, 0, r.code, r.stderr)
	var rep registry.Report
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	require.Equal(t, deployed.Version(), *rep.Deployed)
	require.Len(t, rep.Views, 2)
	us := rep.Views[1]
	require.Equal(t, "user_spend", us.Name)
	require.True(t, us.Afresh)
	require.True(t, us.Recomputed)
	require.Equal(t, int64(14*86_400_000+3_600_000), us.NeedsMS)
	require.True(t, us.History.Retained)
	require.Equal(t, int64(20), us.History.Messages)
	require.Empty(t, rep.Problems)

	// With generations recorded (featurize started on the deployed
	// definitions), the plan judges by layouts: a window widened within the
	// tiles kept keeps the state, a new statistic does not.
	var want []store.GenWant
	reg := testenv.Registry(t)
	for _, name := range reg.ViewNames() {
		l, err := aggregate.NewLayout(reg.Views[name])
		require.NoError(t, err)
		want = append(want, store.GenWant{View: name, Fingerprint: l.Fingerprint})
	}
	_, err = store.NewRedis(c, prefix).Adopt(ctx, want)
	require.NoError(t, err)
	wider := change(string(example), "amount_sum_24h: {agg: sum,    field: amount, window: 24h,", "amount_sum_24h: {agg: sum,    field: amount, window: 48h,")
	r = run(t, "freshet plan --schemas "+write(wider), env...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "changed: window 1d -> 2d")
	require.Contains(t, r.stdout, "same tile layout: state kept; changed and added features are exact from the first lookup (instant)")
	require.Contains(t, r.stdout, "summary: 1 changed, 1 unchanged; 0 incompatible")
	r = run(t, "freshet plan --schemas "+write(b), env...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "its tile layout changes: featurize recomputes the view")

	// Retyping a field is refused, listed, exit 1.
	bad := change(string(example), "items: int", "items: float")
	r = run(t, "freshet plan --schemas "+write(bad), env...)
	require.Equal(t, 1, r.code, r.stdout)
	require.Contains(t, r.stdout, "problem: event transaction: field items retyped int -> float: incompatible (messages in Kafka hold it as int; add a field of another name)")
	require.Contains(t, r.stderr, "plan: 1 problem(s), listed above")
}
