package registry

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/schemas"
)

const base = `
events:
  tx:
    key: user
    timestamp: ts
    id: txn
    fields: {txn: string, user: string, amount: float, items: int, note: string}
    required: [txn, user]
feature_views:
  spend:
    source: tx
    entity: user
    features:
      n_1h: {agg: count, window: 1h, hop: 1m}
      amount_sum_1d: {agg: sum, field: amount, window: 1d}
`

func form(tb testing.TB, yaml string) Form {
	tb.Helper()
	reg, err := schemas.Parse("defs.yaml", []byte(yaml))
	require.NoError(tb, err)
	return Of(reg)
}

// TestSameMeaningSameVersion: layout, comments, order and spelled-out
// defaults do not change the version; a change of meaning does.
func TestSameMeaningSameVersion(t *testing.T) {
	v := form(t, base).Version()
	require.Len(t, v, 12)
	same := `
# the same, written otherwise
feature_views:
  spend:
    entity: user
    source: tx
    max_lateness: 1d          # the default: the largest window
    features:
      amount_sum_1d:
        agg: sum
        field: amount
        window: 24h
        hop: 1h               # the default hop of a 1d window
      n_1h: {window: 60m, agg: count, hop: 60s}
events:
  tx:
    fields:
      note: string
      items: int
      amount: float
      user: string
      txn: string
    required: [user, txn]
    timestamp: ts
    key: user
    id: txn
`
	require.Equal(t, string(form(t, base).JSON()), string(form(t, same).JSON()))
	require.Equal(t, v, form(t, same).Version())

	for name, changed := range map[string]string{
		"a window":       strings.Replace(base, "window: 1d", "window: 2d", 1),
		"an aggregation": strings.Replace(base, "agg: sum", "agg: mean", 1),
		"a field type":   strings.Replace(base, "note: string", "note: int", 1),
		"a feature":      base + "      n_1d: {agg: count, window: 1d}\n",
		"the ttl":        strings.Replace(base, "    entity: user\n", "    entity: user\n    ttl: 30d\n", 1),
	} {
		require.NotEqual(t, v, form(t, changed).Version(), name)
	}

	back, err := Parse(form(t, base).JSON())
	require.NoError(t, err)
	require.Equal(t, form(t, base), back)
	_, err = Parse([]byte(`{"events":{}}`))
	require.ErrorContains(t, err, "want the members events and views")
	_, err = Parse([]byte(`nope`))
	require.ErrorContains(t, err, "deployed definitions")
}

func TestEventChanges(t *testing.T) {
	for _, tc := range []struct {
		name       string
		from, to   string // replacements applied to base
		what       string
		compatible bool
	}{
		{"optional field added", "note: string", "note: string, tag: string", "optional field tag added", true},
		{"required field added", "required: [txn, user]", "required: [txn, user, amount]", "field amount made required", false},
		{"new required field", "note: string}\n    required: [txn, user]", "note: string, tag: string}\n    required: [txn, user, tag]", "required field tag added", false},
		{"retyped", "items: int", "items: float", "field items retyped int -> float", false},
		{"retyped, read by no feature", "note: string", "note: int", "field note retyped string -> int", false},
		{"removed", ", note: string", "", "field note removed", true},
		{"made optional", "required: [txn, user]", "required: [user]", "field txn made optional", true},
		{"event time moved", "timestamp: ts", "timestamp: at", "event time moved from field ts to at", false},
		{"key moved", "key: user", "key: txn", "Kafka key moved from field user to txn", true},
		{"id dropped", "    id: txn\n", "", "id txn within 86400000 ms -> (none) within 0 ms", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := strings.Replace(base, tc.from, tc.to, 1)
			require.NotEqual(t, base, to, "the replacement applies")
			cs := EventChanges(form(t, base), form(t, to))
			var found *EventChange
			for i := range cs {
				if strings.Contains(cs[i].What, tc.what) {
					found = &cs[i]
				}
			}
			require.NotNil(t, found, "%v", cs)
			require.Equal(t, tc.compatible, found.Compatible, "%v", found)
			err := CheckEvents(form(t, base), form(t, to))
			if tc.compatible {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.what)
			require.Contains(t, err.Error(), "messages already in Kafka would no longer decode")
			require.NotEmpty(t, found.Advice, "an incompatible change says what to do")
		})
	}
	require.Empty(t, EventChanges(form(t, base), form(t, base)))
	require.NoError(t, CheckEvents(form(t, base), form(t, base)))
}
