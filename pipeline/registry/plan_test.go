package registry

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDiff(t *testing.T) {
	two := base + `  by_note:
    source: tx
    entity: note
    features:
      n_1d: {agg: count, window: 1d}
`
	for _, tc := range []struct {
		name     string
		to       string
		view     string
		change   string
		afresh   bool
		settings []string
		features map[string]string // feature -> change, for those that are not unchanged
		needsMS  int64
	}{
		{"same", base, "spend", Unchanged, false, nil, nil, 0},
		{"ttl only", strings.Replace(base, "    entity: user\n", "    entity: user\n    ttl: 30d\n", 1), "spend", Changed, false,
			[]string{"ttl 25h -> 30d"}, nil, 0},
		{"feature added", base + "      n_1d: {agg: count, window: 1d}\n", "spend", Changed, true, nil,
			map[string]string{"n_1d": Added}, 86_400_000 + 3_600_000},
		{"window widened", strings.Replace(base, "window: 1d", "window: 2d", 1), "spend", Changed, true,
			[]string{"ttl 25h -> 49h", "max_lateness 1d -> 2d"}, map[string]string{"amount_sum_1d": Changed}, 2*86_400_000 + 3_600_000},
		{"feature removed", strings.Replace(base, "      n_1h: {agg: count, window: 1h, hop: 1m}\n", "", 1), "spend", Changed, true, nil,
			map[string]string{"n_1h": Removed}, 86_400_000 + 3_600_000},
		{"entity changed", strings.Replace(base, "    entity: user", "    entity: txn", 1), "spend", Changed, true,
			[]string{"entity user -> txn"}, nil, 86_400_000 + 3_600_000},
		{"view added", two, "by_note", Added, true, nil, map[string]string{"n_1d": Added}, 86_400_000 + 3_600_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vcs := Diff(form(t, base), form(t, tc.to))
			var vc *ViewChange
			for i := range vcs {
				if vcs[i].Name == tc.view {
					vc = &vcs[i]
				}
			}
			require.NotNil(t, vc)
			require.Equal(t, tc.change, vc.Change)
			require.Equal(t, tc.afresh, vc.Afresh)
			require.Equal(t, tc.settings, vc.Settings)
			require.Equal(t, tc.needsMS, vc.NeedsMS)
			got := map[string]string{}
			for _, f := range vc.Features {
				if f.Change != Unchanged {
					got[f.Name] = f.Change
				}
			}
			if tc.features == nil {
				tc.features = map[string]string{}
			}
			require.Equal(t, tc.features, got)
		})
	}
	removed := Diff(form(t, two), form(t, base))
	require.Equal(t, Removed, removed[0].Change)
	require.Equal(t, "by_note", removed[0].Name)
	require.False(t, removed[0].Afresh)
	require.Equal(t, "tx", removed[0].Source)
}

func TestReportJudgeAndText(t *testing.T) {
	to := form(t, strings.Replace(base, "amount: float", "amount: int", 1)+"      n_1d: {agg: count, window: 1d}\n")
	from := form(t, base)
	v := from.Version()
	oldest := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	r := Report{Schemas: "defs", Version: to.Version(), Deployed: &v, Events: EventChanges(from, to), Views: Diff(from, to)}
	r.Views[0].History = &History{Topic: "freshet.events.tx", Messages: 10, Oldest: &oldest}
	r.Judge(false)
	require.Len(t, r.Problems, 2)
	require.Contains(t, r.Problems[0], "field amount retyped float -> int: incompatible")
	require.Contains(t, r.Problems[1], "view spend is recomputed from kafka, and freshet.events.tx no longer retains the 25h of history it needs")
	r.Judge(true)
	require.Len(t, r.Problems, 1, "--allow-partial accepts partial history, never an incompatible event")

	var b bytes.Buffer
	require.NoError(t, r.WriteText(&b))
	for _, want := range []string{
		"against the deployed version " + v,
		"  spend: changed",
		"    + n_1d",
		"featurize recomputes the view from the earliest offsets kafka retains",
		"retains 10 events from 2026-12-03T00:00:00Z only, less than the 25h needed: NOT retained",
		"summary: 1 changed; 1 recomputed from kafka; 1 incompatible event change(s)",
		"problem: event tx: field amount retyped",
	} {
		require.Contains(t, b.String(), want)
	}
}
