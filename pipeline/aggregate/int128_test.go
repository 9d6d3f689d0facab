package aggregate

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// TestInt128MatchesBigInt sums random int64s in random order and checks
// every partial sum's text, float and int64 fit against math/big.
func TestInt128MatchesBigInt(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		var s Int128
		want := new(big.Int)
		for range 1 + rng.IntN(50) {
			x := int64(rng.Uint64())
			if rng.IntN(4) == 0 {
				x = []int64{math.MaxInt64, math.MinInt64, -1, 0}[rng.IntN(4)]
			}
			s = s.Add(Int128Of(x))
			want.Add(want, big.NewInt(x))
			require.Equal(t, want.String(), string(s.Append(nil)))
			i, ok := s.Int64()
			require.Equal(t, want.IsInt64(), ok)
			if ok {
				require.Equal(t, want.Int64(), i)
			}
			wf, _ := new(big.Float).SetInt(want).Float64()
			require.Equal(t, wf, s.Float())
			back, err := ParseInt128(want.String())
			require.NoError(t, err)
			require.Equal(t, s, back)
		}
	}
}

func TestParseInt128(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for an error
	}{
		{"0", "0"},
		{"-9223372036854775808", "-9223372036854775808"},
		{"18446744073709551616", "18446744073709551616"},
		{"-170141183460469231731687303715884105728", "-170141183460469231731687303715884105728"},
		{"170141183460469231731687303715884105728", ""}, // 2^127
		// Sums of integer columns stored before they were exact.
		{"1.234567e+06", "1234567"},
		{"9.223372036854776e+18", "9223372036854775808"},
		{"1.5", ""},
		{"NaN", ""},
		{"+Inf", ""},
		{"x", ""},
	} {
		got, err := ParseInt128(tc.in)
		if tc.want == "" {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, string(got.Append(nil)), tc.in)
	}
}

// TestProbeValues are the values the adversarial probe of #13 found wrong:
// ints that float64 rounds, and float sums that overflow.
func TestProbeValues(t *testing.T) {
	reg, err := schemas.Parse("probe.yaml", []byte(`
events:
  e:
    key: k
    timestamp: ts
    fields: {k: string, i: int, f: float, ts: timestamp}
feature_views:
  v:
    source: e
    entity: k
    features:
      i_min: {agg: min, field: i, window: 1h}
      i_max: {agg: max, field: i, window: 1h}
      i_sum: {agg: sum, field: i, window: 1h}
      i_mean: {agg: mean, field: i, window: 1h}
      f_sum: {agg: sum, field: f, window: 1h}
      f_mean: {agg: mean, field: f, window: 1h}
      f_std: {agg: stddev, field: f, window: 1h}
      f_max: {agg: max, field: f, window: 1h}
`))
	require.NoError(t, err)
	l, err := NewLayout(reg.Views["v"])
	require.NoError(t, err)
	src := reg.Events["e"]
	event := func(i int64, f float64) *events.Event {
		vals := make([]events.Value, len(src.Fields))
		set := func(name string, v events.Value) {
			fd, ok := src.Field(name)
			require.True(t, ok, name)
			vals[fd.Index] = v
		}
		set("k", events.Value{Kind: events.String, S: "x"})
		set("i", events.Value{Kind: events.Int, I: i})
		set("f", events.Value{Kind: events.Float, F: f})
		set("ts", events.Value{Kind: events.Time, I: 1000})
		return &events.Event{Type: src, Time: 1000, Values: vals}
	}
	value := func(tl *Tiles, name string) (events.Value, Status) {
		i, ok := l.FeatureIndex(name)
		require.True(t, ok, name)
		// Through the packed form, as the store keeps it.
		st := tl.State()
		for g := range st.Groups {
			for k := range st.Groups[g] {
				accs, err := l.DecodePacked(g, string(l.AppendPacked(nil, g, st.Groups[g][k].Accs)))
				require.NoError(t, err)
				st.Groups[g][k].Accs = accs
			}
		}
		return l.Value(st, i, 2000)
	}

	tl := l.NewTiles()
	tl.Add(event(math.MaxInt64, math.MaxFloat64))
	tl.Add(event(9007199254740993, math.MaxFloat64))
	for name, want := range map[string]events.Value{
		"i_min": {Kind: events.Int, I: 9007199254740993},
		"i_max": {Kind: events.Int, I: math.MaxInt64},
		"f_max": {Kind: events.Float, F: math.MaxFloat64},
	} {
		got, status := value(tl, name)
		require.Equal(t, OK, status, name)
		require.Equal(t, want, got, name)
	}
	for _, name := range []string{"i_sum", "f_sum", "f_mean", "f_std"} {
		got, status := value(tl, name)
		require.Equal(t, Overflow, status, name)
		require.False(t, got.Present(), name)
	}
	// The mean of ints comes from the exact sum: no overflow.
	got, status := value(tl, "i_mean")
	require.Equal(t, OK, status)
	require.Equal(t, (float64(math.MaxInt64)+9007199254740993)/2, got.F)

	// A sum that leaves int64 and comes back is exact.
	tl.Add(event(math.MinInt64, -math.MaxFloat64))
	got, status = value(tl, "i_sum")
	require.Equal(t, OK, status)
	require.Equal(t, events.Value{Kind: events.Int, I: 9007199254740993 - 1}, got)
}

// TestDecodeStateOfEarlierVersions reads a tile packed before integer
// columns were exact: their sums, mins and maxes were float text.
func TestDecodeStateOfEarlierVersions(t *testing.T) {
	reg, err := schemas.Parse("old.yaml", []byte(`
events:
  e:
    key: k
    timestamp: ts
    fields: {k: string, i: int, ts: timestamp}
feature_views:
  v:
    source: e
    entity: k
    features:
      i_sum: {agg: sum, field: i, window: 1h}
      i_min: {agg: min, field: i, window: 1h}
      i_max: {agg: max, field: i, window: 1h}
`))
	require.NoError(t, err)
	l, err := NewLayout(reg.Views["v"])
	require.NoError(t, err)
	require.Len(t, l.Groups, 1)
	// The count column (n, newest time), then i's (n, sum, min, max).
	accs, err := l.DecodePacked(0, "3\x1f1000\x1f3\x1f1.234567e+06\x1f-5\x1f1.2345e+06")
	require.NoError(t, err)
	for name, want := range map[string]int64{"i_sum": 1234567, "i_min": -5, "i_max": 1234500} {
		i, _ := l.FeatureIndex(name)
		got, status := l.Value(&State{Found: true, EventTime: 1000, Groups: [][]Tile{{{Index: 0, Accs: accs}}}}, i, 1000)
		require.Equal(t, OK, status)
		require.Equal(t, events.Value{Kind: events.Int, I: want}, got, name)
	}
}
