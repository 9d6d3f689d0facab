package backfill

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOptionsValidate(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("featurize backfill", flag.ContinueOnError)
	o.RegisterFlags(fs)
	err := o.Validate()
	require.EqualError(t, err, "--events is required: one or more event files, after --events or after the flags\n"+
		"--spine is required: the file of rows (an entity and a time) to compute features for\n"+
		"--out is required: the output file (.parquet, .arrow, .feather, .arrows or .csv)", "every missing one, at once")

	require.NoError(t, fs.Parse([]string{"--events", "e.ndjson", "--spine", "s.csv", "--out", "o.parquet", "--view", "a", "--view", "b"}))
	require.NoError(t, o.Validate())
	require.Equal(t, []string{"a", "b"}, o.Views)

	o.MaxErrors = -1
	require.ErrorContains(t, o.Validate(), "--max-errors is negative")
}
