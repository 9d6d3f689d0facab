package schemas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const validEvent = `
events:
  transaction:
    key: user_id
    timestamp: ts
    fields: {user_id: string, merchant_id: string, amount: float, items: int, ok: bool, seen: timestamp}
    required: [user_id, amount]
`

func TestLoadExample(t *testing.T) {
	reg, err := Load("example")
	require.NoError(t, err)
	ev := reg.Events["transaction"]
	require.NotNil(t, ev)
	ts, ok := ev.Field("ts")
	require.True(t, ok, "the timestamp field is declared implicitly")
	require.Equal(t, Timestamp, ts.Type)
	require.True(t, ts.Required)
	v := reg.Views["user_spend"]
	require.Equal(t, "user_id", v.Entity)
	require.Equal(t, int64(3_600_000), v.MaxLateness)
	require.Equal(t, int64(8*24*3_600_000), v.TTL)
	f, ok := v.Feature("amount_sum_24h")
	require.True(t, ok)
	require.Equal(t, Feature{Name: "amount_sum_24h", Agg: Sum, Field: "amount", FieldType: Float, Window: 86_400_000, Hop: 600_000}, f)
	m := reg.Views["merchant_activity"]
	require.Equal(t, m.MaxWindow(), m.MaxLateness, "max_lateness defaults to the largest window")
	require.Equal(t, m.MaxWindow()+m.MaxHop(), m.TTL, "ttl defaults to largest window + largest hop")
	c, _ := m.Feature("txn_count_24h")
	require.Equal(t, int64(3_600_000), c.Hop, "a 24h window hops by 1h by default")
	require.Equal(t, []*View{m, v}, reg.ViewsOf("transaction"))
}

func TestProblems(t *testing.T) {
	view := func(features string) string {
		return validEvent + "feature_views:\n  v:\n    source: transaction\n    entity: user_id\n    features:\n" + features
	}
	for _, tc := range []struct {
		name, yaml, key, reason string
		line                    int
	}{
		{"unknown aggregation", view("      f: {agg: median, field: amount, window: 1h}\n"), "feature_views.v.features.f.agg", `unknown aggregation "median"`, 13},
		{"field not in event", view("      f: {agg: sum, field: price, window: 1h}\n"), "feature_views.v.features.f.field", `field "price" is not a field of event "transaction"`, 13},
		{"sum over a string", view("      f: {agg: sum, field: merchant_id, window: 1h}\n"), "feature_views.v.features.f.field", "sum over string field", 13},
		{"mean over a bool", view("      f: {agg: mean, field: ok, window: 1h}\n"), "feature_views.v.features.f.field", "mean over bool field", 13},
		{"max over a string", view("      f: {agg: max, field: merchant_id, window: 1h}\n"), "feature_views.v.features.f.field", "max over string field", 13},
		{"hop larger than window", view("      f: {agg: count, window: 1h, hop: 2h}\n"), "feature_views.v.features.f.hop", "hop 2h is larger than window 1h", 13},
		{"bad duration", view("      f: {agg: count, window: 1 hour}\n"), "feature_views.v.features.f.window", `invalid duration "1 hour"`, 13},
		{"missing window", view("      f: {agg: count}\n"), "feature_views.v.features.f.window", "missing", 13},
		{"missing field", view("      f: {agg: last, window: 1h}\n"), "feature_views.v.features.f.field", "last needs a field", 13},
		{"duplicate feature", view("      f: {agg: count, window: 1h}\n      f: {agg: count, window: 2h}\n"), "feature_views.v.features.f", "duplicate key", 14},
		{"unknown key", view("      f: {agg: count, window: 1h, every: 1m}\n"), "feature_views.v.features.f.every", "unknown key", 13},
		{"unknown source", validEvent + "feature_views:\n  v:\n    source: click\n    entity: user_id\n    features:\n      f: {agg: count, window: 1h}\n", "feature_views.v.source", `unknown event "click"`, 10},
		{"entity not a field", validEvent + "feature_views:\n  v:\n    source: transaction\n    entity: shop\n    features:\n      f: {agg: count, window: 1h}\n", "feature_views.v.entity", `field "shop" is not a field`, 11},
		{"float entity", validEvent + "feature_views:\n  v:\n    source: transaction\n    entity: amount\n    features:\n      f: {agg: count, window: 1h}\n", "feature_views.v.entity", "an entity must be string or int", 11},
		{"unknown type", "events:\n  e:\n    key: k\n    timestamp: ts\n    fields: {k: string, x: decimal}\n", "events.e.fields.x", `unknown type "decimal"`, 5},
		{"key not declared", "events:\n  e:\n    key: id\n    timestamp: ts\n    fields: {k: string}\n", "events.e.key", `field "id" is not declared`, 3},
		{"required not declared", "events:\n  e:\n    key: k\n    timestamp: ts\n    fields: {k: string}\n    required: [z]\n", "events.e.required", `field "z" is not declared`, 6},
		{"timestamp of wrong type", "events:\n  e:\n    key: k\n    timestamp: ts\n    fields: {k: string, ts: int}\n", "events.e.timestamp", "must be timestamp", 4},
		{"duplicate view", view("      f: {agg: count, window: 1h}\n") + "  v:\n    source: transaction\n    entity: user_id\n    features:\n      g: {agg: count, window: 1h}\n", "feature_views.v", "duplicate key", 14},
		{"bad name", validEvent + "feature_views:\n  my-view:\n    source: transaction\n    entity: user_id\n    features:\n      f: {agg: count, window: 1h}\n", "feature_views.my-view", "view name must match", 9},
		{"top-level typo", "event:\n  e: {}\n", "event", "unknown key", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("defs.yaml", []byte(tc.yaml))
			var ps Problems
			require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
			for _, p := range ps {
				if p.Key == tc.key && strings.Contains(p.Reason, tc.reason) {
					require.Equal(t, tc.line, p.Line, "line of %s", p)
					require.Equal(t, "defs.yaml", p.File)
					return
				}
			}
			t.Fatalf("no problem at %s containing %q; got:\n%v", tc.key, tc.reason, err)
		})
	}
}

func TestProblemsAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(validEvent), 0o644))
	// A view may use an event defined in another file; an event defined
	// twice is reported with both places.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(validEvent+"feature_views:\n  v:\n    source: transaction\n    entity: user_id\n    features:\n      f: {agg: count, window: 1h}\n"), 0o644))
	_, err := Load(dir)
	require.ErrorContains(t, err, "b.yaml:3: events.transaction: duplicate event (first defined at "+filepath.Join(dir, "a.yaml")+":3)")
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"1h", 3_600_000, false}, {"7d", 7 * 86_400_000, false}, {"1d12h", 36 * 3_600_000, false},
		{"90s", 90_000, false}, {"250ms", 250, false}, {"1.5d", 36 * 3_600_000, false},
		{"", 0, true}, {"0s", 0, true}, {"-1h", 0, true}, {"1us", 0, true}, {"d", 0, true}, {"1hd", 0, true},
	} {
		got, err := ParseDuration(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	for _, ms := range []int64{1000, 10_000, 60_000, 3_600_000, 86_400_000, 90_000, 250, 5_400_000} {
		back, err := ParseDuration(FormatDuration(ms))
		require.NoError(t, err, FormatDuration(ms))
		require.Equal(t, ms, back, FormatDuration(ms))
	}
}

func TestDefaultHop(t *testing.T) {
	for w, h := range map[string]string{"1h": "5m", "24h": "1h", "7d": "1h", "30d": "1d", "10m": "10s", "5s": "1s", "500ms": "500ms"} {
		wm, _ := ParseDuration(w)
		hm, _ := ParseDuration(h)
		require.Equal(t, hm, DefaultHop(wm), "window %s", w)
	}
}
