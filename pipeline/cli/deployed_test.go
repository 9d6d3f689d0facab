package cli

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// TestDeployedDefinitions: featurize records what it runs; a compatible
// change is recorded in turn; an incompatible event change stops every
// service before it touches anything, naming the field and what to do, and
// leaves the deployed version as it was.
func TestDeployedDefinitions(t *testing.T) {
	ctx := context.Background()
	_, c := testenv.Redis(t)
	st := store.NewRedis(c, testenv.Unique("freshet-test:"))
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	parse := func(yaml string) *schemas.Registry {
		reg, err := schemas.Parse("defs.yaml", []byte(yaml))
		require.NoError(t, err)
		return reg
	}
	const a = `
events:
  tx:
    key: user
    timestamp: ts
    fields: {user: string, amount: float}
feature_views:
  spend:
    source: tx
    entity: user
    features:
      amount_sum_1h: {agg: sum, field: amount, window: 1h}
`
	require.NoError(t, deployed(ctx, st, parse(a), false, log), "serve with nothing deployed")
	_, ok, err := st.Deployed(ctx)
	require.NoError(t, err)
	require.False(t, ok, "serve records nothing")

	require.NoError(t, deployed(ctx, st, parse(a), true, log))
	d, ok, err := st.Deployed(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	b := strings.Replace(a, "amount: float}", "amount: float, note: string}", 1) // an optional field
	require.NoError(t, deployed(ctx, st, parse(b), false, log))
	require.Contains(t, logs.String(), "definitions differ from the deployed ones")
	require.NoError(t, deployed(ctx, st, parse(b), true, log))
	db, _, err := st.Deployed(ctx)
	require.NoError(t, err)
	require.NotEqual(t, d.Version, db.Version)

	bad := strings.Replace(b, "amount: float", "amount: int", 1)
	for _, writes := range []bool{false, true} {
		err := deployed(ctx, st, parse(bad), writes, log)
		require.Error(t, err)
		t.Log(err)
		require.Contains(t, err.Error(), "event tx: field amount retyped float -> int: incompatible")
		require.Contains(t, err.Error(), "add a field of another name")
		require.Contains(t, err.Error(), "deployed: version "+db.Version)
	}
	after, _, err := st.Deployed(ctx)
	require.NoError(t, err)
	require.Equal(t, db.Version, after.Version, "a refused change is not recorded")
}
