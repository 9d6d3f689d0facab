package serve

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// TestViews: GET /v1/views lists the views and features serve answers with
// their definitions, its version and the deployed one, and says which
// features featurize does not compute because it runs other definitions.
func TestViews(t *testing.T) {
	reg := testenv.Registry(t)
	st := redisStore(t)
	_, base := newServer(t, reg, st, testConfig())
	type answer struct {
		Version    string  `json:"version"`
		Deployed   *string `json:"deployed_version"`
		DeployedAt *string `json:"deployed_at"`
		Views      []struct {
			Name, Source, Entity, TTL string
			MaxLateness               string `json:"max_lateness"`
			Features                  []struct {
				Name, Agg, Type, Window, Hop, State, Detail string
				Field                                       *string
				Progress                                    *store.CatchUpProgress
				WindowMS                                    int64 `json:"window_ms"`
				HopMS                                       int64 `json:"hop_ms"`
			}
		}
	}
	getViews := func() answer {
		a := get(t, base+"/v1/views")
		requireOK(t, a)
		var got answer
		require.NoError(t, json.Unmarshal(a.body, &got), "%s", a.body)
		return got
	}
	mine := registry.Of(reg).Version()

	got := getViews()
	require.Equal(t, mine, got.Version)
	require.Nil(t, got.Deployed, "nothing recorded")
	require.Len(t, got.Views, 2)
	us := got.Views[1]
	require.Equal(t, "user_spend", us.Name)
	require.Equal(t, "transaction", us.Source)
	require.Equal(t, "user_id", us.Entity)
	require.Equal(t, "8d", us.TTL)
	require.Equal(t, "1h", us.MaxLateness)
	require.Len(t, us.Features, len(reg.Views["user_spend"].Features))
	f := us.Features[1]
	require.Equal(t, "amount_sum_24h", f.Name)
	require.Equal(t, "sum", f.Agg)
	require.Equal(t, "amount", *f.Field)
	require.Equal(t, "float", f.Type)
	require.Equal(t, "1d", f.Window)
	require.Equal(t, int64(86_400_000), f.WindowMS)
	require.Equal(t, "10m", f.Hop)
	require.Equal(t, int64(600_000), f.HopMS)
	require.Equal(t, "live", f.State)
	require.Nil(t, us.Features[0].Field, "a plain count reads no field")
	require.Equal(t, "int", us.Features[0].Type)

	// featurize runs these definitions.
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	require.NoError(t, st.Record(context.Background(), registry.Of(reg), t0))
	got = getViews()
	require.Equal(t, mine, *got.Deployed)
	require.Equal(t, "2026-12-01T10:00:00Z", *got.DeployedAt)
	for _, v := range got.Views {
		for _, f := range v.Features {
			require.Equal(t, "live", f.State, "%s.%s", v.Name, f.Name)
			require.Empty(t, f.Detail)
		}
	}

	// featurize runs definitions where user_spend has one more feature.
	other, err := schemas.Load(testenv.RepoRoot(t) + "/schemas/example")
	require.NoError(t, err)
	uv := other.Views["user_spend"]
	uv.Features = append(uv.Features, schemas.Feature{Name: "txn_count_2h", Agg: schemas.Count, Window: 7_200_000, Hop: 120_000})
	theirs := registry.Of(other)
	require.NoError(t, st.Record(context.Background(), theirs, t0))
	got = getViews()
	require.Equal(t, theirs.Version(), *got.Deployed)
	for _, v := range got.Views {
		for _, f := range v.Features {
			if v.Name == "merchant_activity" {
				require.Equal(t, "live", f.State)
				continue
			}
			require.Equal(t, "not computed", f.State)
			require.Contains(t, f.Detail, "define view user_spend otherwise")
			require.Contains(t, f.Detail, theirs.Version())
		}
	}

	// With generations: featurize on theirs keeps user_spend under another
	// layout, so serve's is not computed, and its lookups are PENDING.
	ctx := context.Background()
	gensOf := func(r *schemas.Registry) []store.GenWant {
		var want []store.GenWant
		for _, name := range r.ViewNames() {
			l, err := aggregate.NewLayout(r.Views[name])
			require.NoError(t, err)
			want = append(want, store.GenWant{View: name, Fingerprint: l.Fingerprint})
		}
		return want
	}
	_, err = st.Adopt(ctx, gensOf(other))
	require.NoError(t, err)
	got = getViews()
	for _, f := range got.Views[1].Features {
		require.Equal(t, "not computed", f.State)
		require.Contains(t, f.Detail, "another layout")
	}
	require.Equal(t, "live", got.Views[0].Features[0].State)

	// featurize on serve's definitions again: user_spend catches up.
	require.NoError(t, st.Record(ctx, registry.Of(reg), t0))
	gens, err := st.Adopt(ctx, gensOf(reg))
	require.NoError(t, err)
	require.Equal(t, store.GenCatchingUp, gens[1].State)
	require.NoError(t, st.SetProgress(ctx, gens[1], store.CatchUpProgress{View: "user_spend", Generation: gens[1].ID, Partitions: 3, Done: 1, Remaining: 1234}))
	require.NoError(t, st.FollowGens(ctx))
	got = getViews()
	for _, f := range got.Views[1].Features {
		require.Equal(t, "catching up", f.State)
		require.NotNil(t, f.Progress)
		require.Equal(t, int64(1234), f.Progress.Remaining)
	}
	one := get(t, base+"/v1/features/user_spend/u1")
	requireOK(t, one)
	var row struct {
		Status        string
		Features      map[string]any
		FeatureStatus map[string]string `json:"feature_status"`
	}
	require.NoError(t, json.Unmarshal(one.body, &row), "%s", one.body)
	require.Equal(t, "PENDING", row.Status)
	require.Len(t, row.FeatureStatus, len(reg.Views["user_spend"].Features))
	for name, v := range row.Features {
		require.Nil(t, v, name)
		require.Equal(t, "PENDING", row.FeatureStatus[name])
	}
	feast := post(t, base+"/get-online-features", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u1"]}}`)
	requireOK(t, feast)
	require.Contains(t, string(feast.body), `"statuses":["NOT_FOUND"]`)

	// Caught up: live, read again.
	live, err := st.GoLive(ctx, gens[1])
	require.NoError(t, err)
	require.True(t, live)
	require.NoError(t, st.FollowGens(ctx))
	require.Equal(t, "live", getViews().Views[1].Features[0].State)
	one = get(t, base+"/v1/features/user_spend/u1")
	requireOK(t, one)
	require.NotContains(t, string(one.body), "PENDING")

	// A deploy without user_spend leaves its last generation, which nobody
	// updates any more: not computed.
	dropped, err := schemas.Load(testenv.RepoRoot(t) + "/schemas/example")
	require.NoError(t, err)
	delete(dropped.Views, "user_spend")
	require.NoError(t, st.Record(ctx, registry.Of(dropped), t0))
	for _, f := range getViews().Views[1].Features {
		require.Equal(t, "not computed", f.State)
		require.Contains(t, f.Detail, "have no view user_spend")
	}
}
