package aggregate

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

const randomSchema = `
events:
  e:
    key: k
    timestamp: ts
    fields: {k: string, i: int, f: float, s: string, b: bool, t: timestamp}
feature_views:
  v:
    source: e
    entity: k
    features:
%s
`

// randomView declares a view with random windows and hops over every
// aggregation and field type.
func randomView(tb testing.TB, rng *rand.Rand) *schemas.View {
	tb.Helper()
	type spec struct {
		agg   schemas.Agg
		field string
	}
	specs := []spec{
		{schemas.Count, ""}, {schemas.Count, "f"},
		{schemas.Sum, "i"}, {schemas.Sum, "f"},
		{schemas.Mean, "i"}, {schemas.Mean, "f"},
		{schemas.Min, "i"}, {schemas.Min, "f"}, {schemas.Min, "t"},
		{schemas.Max, "i"}, {schemas.Max, "f"}, {schemas.Max, "t"},
		{schemas.Stddev, "f"}, {schemas.Stddev, "i"},
		{schemas.Last, "s"}, {schemas.Last, "b"}, {schemas.Last, "i"}, {schemas.Last, "f"}, {schemas.Last, "t"},
	}
	hops := []int64{7, 10, 60, 100, 1000}
	var b strings.Builder
	for i, s := range specs {
		hop := hops[rng.IntN(len(hops))]
		window := hop * int64(1+rng.IntN(12))
		if rng.IntN(3) == 0 {
			window += int64(rng.IntN(int(hop))) // windows need not be multiples of the hop
		}
		field := ""
		if s.field != "" {
			field = ", field: " + s.field
		}
		fmt.Fprintf(&b, "      f%d: {agg: %s%s, window: %dms, hop: %dms}\n", i, s.agg, field, window, hop)
	}
	reg, err := schemas.Parse("random.yaml", []byte(fmt.Sprintf(randomSchema, b.String())))
	require.NoError(tb, err)
	return reg.Views["v"]
}

func randomEvents(tb testing.TB, rng *rand.Rand, ev *schemas.Event, n int, span int64) []events.Event {
	tb.Helper()
	out := make([]events.Event, n)
	// A third of the sets hold extreme values too: ints over the whole
	// int64 range, whose sums leave int64 and come back, and floats near
	// the largest float64, whose sums overflow.
	extreme := rng.IntN(3) == 0
	for j := range out {
		e := events.Event{Type: ev, Time: rng.Int64N(span) - span/4, Values: make([]events.Value, len(ev.Fields))}
		if rng.IntN(4) == 0 && j > 0 {
			e.Time = out[rng.IntN(j)].Time // equal times exercise the tie-break of last
		}
		for _, f := range ev.Fields {
			if !f.Required && rng.IntN(5) == 0 {
				continue // absent
			}
			var v events.Value
			switch f.Type {
			case schemas.String:
				v = events.Value{Kind: events.String, S: fmt.Sprintf("s%d\"é", rng.IntN(20))}
			case schemas.Int:
				v = events.Value{Kind: events.Int, I: rng.Int64N(2000) - 1000}
				if extreme && rng.IntN(2) == 0 {
					v.I = int64(rng.Uint64()) // any int64, both extremes included
					if rng.IntN(8) == 0 {
						v.I = []int64{math.MaxInt64, math.MinInt64, 1 << 53, 1<<53 + 1}[rng.IntN(4)]
					}
				}
			case schemas.Float:
				v = events.Value{Kind: events.Float, F: math.Round(rng.NormFloat64()*1e4) / 100}
				if extreme && rng.IntN(3) == 0 {
					v.F = 1e307 * (1 + rng.Float64()*16)
				}
			case schemas.Bool:
				v = events.Value{Kind: events.Bool, B: rng.IntN(2) == 0}
			case schemas.Timestamp:
				v = events.Value{Kind: events.Time, I: 1_700_000_000_000 + rng.Int64N(1e9)}
			}
			e.Values[f.Index] = v
		}
		e.Values[0] = events.Value{Kind: events.String, S: "x"}
		e.Values[ev.Fields[len(ev.Fields)-1].Index] = events.Value{Kind: events.Time, I: e.Time}
		out[j] = e
	}
	return out
}

// bruteForce computes a feature straight from the window formula, sharing no
// code with the tiles: floor((t-w)/h)*h <= e <= hi.
func bruteForce(f schemas.Feature, evs []events.Event, t, hi int64) (events.Value, Status) {
	lo := int64(math.Floor(float64(t-f.Window)/float64(f.Hop))) * f.Hop
	var xs []float64
	var is []int64 // the values of an int or timestamp field, exactly
	var lastT int64
	var lastV string
	var lastVal events.Value
	count := 0
	for _, e := range evs {
		if e.Time < lo || e.Time > hi {
			continue
		}
		if f.Field == "" {
			count++
			continue
		}
		v := e.Get(f.Field)
		if !v.Present() {
			continue
		}
		count++
		xs = append(xs, v.Float())
		if v.Kind == events.Int || v.Kind == events.Time {
			is = append(is, v.I)
		}
		text := string(v.AppendJSON(nil))
		if len(xs) == 1 || e.Time > lastT || (e.Time == lastT && text > lastV) {
			lastT, lastV, lastVal = e.Time, text, v
		}
	}
	exact := f.FieldType == schemas.Int || f.FieldType == schemas.Timestamp
	// The exact sum of an integer field, in arbitrary precision.
	bigSum := new(big.Int)
	for _, x := range is {
		bigSum.Add(bigSum, big.NewInt(x))
	}
	floatSum := 0.0
	for _, x := range xs {
		floatSum += x
	}
	overflowed := !exact && math.IsInf(floatSum, 0)
	switch f.Agg {
	case schemas.Count:
		return events.Value{Kind: events.Int, I: int64(count)}, OK
	case schemas.Sum:
		if exact {
			if !bigSum.IsInt64() {
				return events.Value{}, Overflow
			}
			return events.Value{Kind: events.Int, I: bigSum.Int64()}, OK
		}
		if overflowed {
			return events.Value{}, Overflow
		}
		return events.Value{Kind: events.Float, F: floatSum}, OK
	}
	if len(xs) == 0 {
		return events.Value{}, OK
	}
	kind := map[schemas.FieldType]events.Kind{schemas.Int: events.Int, schemas.Float: events.Float, schemas.Timestamp: events.Time}[f.FieldType]
	switch f.Agg {
	case schemas.Mean, schemas.Stddev:
		if overflowed {
			return events.Value{}, Overflow
		}
		mean := floatSum / float64(len(xs))
		if exact {
			q, _ := new(big.Rat).SetFrac(bigSum, big.NewInt(int64(len(is)))).Float64()
			mean = q
		}
		if f.Agg == schemas.Mean {
			return events.Value{Kind: events.Float, F: mean}, OK
		}
		ss := 0.0
		for _, x := range xs {
			ss += (x - mean) * (x - mean)
		}
		if math.IsInf(ss, 0) {
			return events.Value{}, Overflow
		}
		return events.Value{Kind: events.Float, F: math.Sqrt(ss / float64(len(xs)))}, OK
	case schemas.Min, schemas.Max:
		if exact {
			m := is[0]
			for _, x := range is {
				if (f.Agg == schemas.Min && x < m) || (f.Agg == schemas.Max && x > m) {
					m = x
				}
			}
			return events.Value{Kind: kind, I: m}, OK
		}
		m := xs[0]
		for _, x := range xs {
			if (f.Agg == schemas.Min && x < m) || (f.Agg == schemas.Max && x > m) {
				m = x
			}
		}
		return events.Value{Kind: kind, F: m}, OK
	case schemas.Last:
		return lastVal, OK
	}
	panic("unreachable")
}

// requireSameValue compares a value and its status with the brute force's.
func requireSameValue(tb testing.TB, want events.Value, wantStatus Status, got events.Value, gotStatus Status, msg string) {
	tb.Helper()
	require.Equal(tb, wantStatus, gotStatus, "%s: status (want %+v, got %+v)", msg, want, got)
	require.Equal(tb, want.Kind, got.Kind, "%s: kind (want %+v, got %+v)", msg, want, got)
	if want.Kind == events.Float {
		tol := 1e-9 * math.Max(1, math.Abs(want.F))
		require.InDelta(tb, want.F, got.F, tol, msg)
		return
	}
	require.Equal(tb, want, got, msg)
}

func TestTilesMatchBruteForce(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 99))
		v := randomView(t, rng)
		l, err := NewLayout(v)
		require.NoError(t, err)
		evs := randomEvents(t, rng, v.Source, 1+rng.IntN(300), 20_000)

		// Build in random chunks in random order, as micro-batches and
		// redeliveries would, round-tripping every tile through the packed
		// form.
		all := buildTiles(t, rng, l, evs)
		st := all.State()
		require.Equal(t, len(evs), all.Events)

		for range 60 {
			at := rng.Int64N(30_000) - 8_000
			for i, f := range v.Features {
				// The tile holding `at` is taken whole: the formula holds
				// with its upper bound at the tile's end, which is `at`
				// itself whenever no later event lies in that tile.
				tileEnd := (FloorDiv(at, f.Hop)+1)*f.Hop - 1
				want, wantStatus := bruteForce(f, evs, at, tileEnd)
				got, status := l.Value(st, i, at)
				msg := fmt.Sprintf("seed %d feature %s (%s %s w=%d h=%d) at %d", seed, f.Name, f.Agg, f.Field, f.Window, f.Hop, at)
				requireSameValue(t, want, wantStatus, got, status, msg)
				if !anyIn(evs, at+1, tileEnd) {
					want, wantStatus := bruteForce(f, evs, at, at)
					requireSameValue(t, want, wantStatus, got, status, "exact lookup: "+msg)
				}
			}
		}
	}
}

func anyIn(evs []events.Event, lo, hi int64) bool {
	for _, e := range evs {
		if e.Time >= lo && e.Time <= hi {
			return true
		}
	}
	return false
}

func TestEmptyWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	v := randomView(t, rng)
	l, err := NewLayout(v)
	require.NoError(t, err)
	for i, f := range v.Features {
		got, status := l.Value(&State{}, i, 1000)
		require.Equal(t, OK, status, "an empty window is no overflow")
		switch f.Agg {
		case schemas.Count:
			require.Equal(t, events.Value{Kind: events.Int}, got)
		case schemas.Sum:
			require.True(t, got.Present(), "sum of an empty window is 0")
			require.Zero(t, got.Float())
		default:
			require.False(t, got.Present(), "%s of an empty window is null", f.Agg)
		}
	}
}

func TestDecodePackedRejectsGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	l, err := NewLayout(randomView(t, rng))
	require.NoError(t, err)
	tl := l.NewTiles()
	evs := randomEvents(t, rng, l.View.Source, 5, 1000)
	for i := range evs {
		tl.Add(&evs[i])
	}
	good := string(l.AppendPacked(nil, 0, tl.Tiles()[0].Accs))
	for _, bad := range []string{"", good + "\x1f1", "x" + good, strings.Repeat("\x1f", 3)} {
		_, err := l.DecodePacked(0, bad)
		require.Error(t, err, "%q", bad)
	}
	_, err = l.DecodePacked(len(l.Groups), good)
	require.Error(t, err)
}

func TestFloorDiv(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {-1, 60000, -1}} {
		require.Equal(t, c.want, FloorDiv(c.a, c.b), "%d/%d", c.a, c.b)
	}
}

func benchLayout(b *testing.B) (*Layout, []events.Event) {
	reg := testenv.Registry(b)
	l, err := NewLayout(reg.Views["user_spend"])
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 1))
	evs := make([]events.Event, 1000)
	for i := range evs {
		raw := fmt.Sprintf(`{"txn_id":"t%d","user_id":"u1","merchant_id":"m%d","amount":%d.5,"items":%d,"ts":%d}`,
			i, rng.IntN(50), rng.IntN(300), rng.IntN(5), 1_717_000_000_000+int64(i)*60_000)
		evs[i], err = events.Decode(l.View.Source, []byte(raw))
		require.NoError(b, err)
	}
	return l, evs
}

// BenchmarkTileUpdate folds one event into an entity's tiles (every group
// of the example user_spend view), as featurize does per event and view; an
// entity gets a few events per micro-batch.
func BenchmarkTileUpdate(b *testing.B) {
	l, evs := benchLayout(b)
	t := l.NewTiles()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%8 == 0 {
			t = l.NewTiles()
		}
		t.Add(&evs[i%len(evs)])
	}
}

// BenchmarkTileMerge computes every feature of user_spend as of a time from
// a week of tiles, as serve does per entity after reading them.
func BenchmarkTileMerge(b *testing.B) {
	l, evs := benchLayout(b)
	t := l.NewTiles()
	for i := range evs {
		t.Add(&evs[i])
	}
	st := t.State()
	at := evs[len(evs)-1].Time
	b.ReportAllocs()
	for b.Loop() {
		for i := range l.View.Features {
			_, _ = l.Value(st, i, at)
		}
	}
}

// BenchmarkTileCodec packs and unpacks a tile as the store writes and reads it.
func BenchmarkTileCodec(b *testing.B) {
	l, evs := benchLayout(b)
	t := l.NewTiles()
	t.Add(&evs[0])
	tl := t.Tiles()[len(t.Tiles())-1]
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = l.AppendPacked(buf[:0], tl.Group, tl.Accs)
		if _, err := l.DecodePacked(tl.Group, string(buf)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTimelineMatchesBruteForce replays events in time order and reads every
// feature as of times between them, as a backfill does: exact values, also
// after old tiles fell off the front.
func TestTimelineMatchesBruteForce(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		v := randomView(t, rng)
		l, err := NewLayout(v)
		require.NoError(t, err)
		evs := randomEvents(t, rng, v.Source, 1+rng.IntN(400), 200_000)
		slices.SortStableFunc(evs, func(a, b events.Event) int { return cmp.Compare(a.Time, b.Time) })
		tl := l.NewTimeline()
		for i := range evs {
			require.NoError(t, tl.Add(&evs[i]))
			if i+1 < len(evs) && evs[i+1].Time == evs[i].Time {
				continue // read once every event at this time is in
			}
			// Any time from this event up to (not including) the next.
			at := evs[i].Time
			if i+1 < len(evs) {
				at += rng.Int64N(evs[i+1].Time - evs[i].Time)
			}
			for fi, f := range v.Features {
				want, wantStatus := bruteForce(f, evs[:i+1], at, at)
				got, status := l.Value(tl.State(), fi, at)
				requireSameValue(t, want, wantStatus, got, status, fmt.Sprintf("seed %d %s at %d", seed, f.Name, at))
			}
		}
		for gi, g := range l.Groups {
			require.LessOrEqual(t, int64(len(tl.State().Groups[gi])), g.Reach+1, "tiles past the group's largest window are dropped")
		}
	}
	l, err := NewLayout(randomView(t, rand.New(rand.NewPCG(1, 1))))
	require.NoError(t, err)
	tl := l.NewTimeline()
	evs := randomEvents(t, rand.New(rand.NewPCG(1, 1)), l.View.Source, 2, 10)
	evs[0].Time, evs[1].Time = 5, 4
	require.NoError(t, tl.Add(&evs[0]))
	require.Error(t, tl.Add(&evs[1]), "out of order")
}

// buildTiles builds the tiles of evs as featurize and the store do: in
// random chunks, each tile packed and unpacked, merged in any order.
func buildTiles(tb testing.TB, rng *rand.Rand, l *Layout, evs []events.Event) *Tiles {
	tb.Helper()
	perm := rng.Perm(len(evs))
	all := l.NewTiles()
	for len(perm) > 0 {
		n := 1 + rng.IntN(len(perm))
		chunk := l.NewTiles()
		for _, j := range perm[:n] {
			chunk.Add(&evs[j])
		}
		perm = perm[n:]
		// Through the index: Tiles is chunk's own slice, and a range
		// variable would be a copy, leaving the merge below unpacked tiles.
		tiles := chunk.Tiles()
		for i := range tiles {
			tl := &tiles[i]
			accs, err := l.DecodePacked(tl.Group, string(l.AppendPacked(nil, tl.Group, tl.Accs)))
			require.NoError(tb, err)
			tl.Accs = accs
		}
		all.Merge(chunk)
	}
	return all
}

// newestAtOrBeforeBrute is the newest event time at or before at, straight
// from the events.
func newestAtOrBeforeBrute(evs []events.Event, at int64) (int64, bool) {
	var best int64
	ok := false
	for _, e := range evs {
		if e.Time <= at && (!ok || e.Time > best) {
			best, ok = e.Time, true
		}
	}
	return best, ok
}

// finestHop is the smallest hop of the view's features, read from the
// definition rather than from the layout under test.
func finestHop(v *schemas.View) int64 {
	h := v.Features[0].Hop
	for _, f := range v.Features {
		h = min(h, f.Hop)
	}
	return h
}

// TestEventTimeMatchesBruteForce: the newest event at or before a time,
// from tiles built in any split and order and round-tripped through the
// packed form, equals the newest event time <= at of the event list at
// the end of every tile of the finest hop and wherever at's own tile holds
// nothing later than at; otherwise it is the newest event of the tiles
// entirely before at's own, as documented.
func TestEventTimeMatchesBruteForce(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 17))
		v := randomView(t, rng)
		l, err := NewLayout(v)
		require.NoError(t, err)
		evs := randomEvents(t, rng, v.Source, 1+rng.IntN(200), 20_000)
		st := buildTiles(t, rng, l, evs).State()
		newest, _ := newestAtOrBeforeBrute(evs, math.MaxInt64)
		require.Equal(t, newest, st.EventTime)
		hop := finestHop(v)

		// At tile ends (k·hop − 1): always exact.
		for k := FloorDiv(-6_000, hop); k*hop-1 <= 16_000; k++ {
			at := k*hop - 1
			want, wantOK := newestAtOrBeforeBrute(evs, at)
			got, ok := l.EventTime(st, at)
			require.Equal(t, wantOK, ok, "seed %d at %d (hop %d)", seed, at, hop)
			require.Equal(t, want, got, "seed %d at %d (hop %d)", seed, at, hop)
		}
		// At arbitrary times, event times and their neighbours.
		var ats []int64
		for range 200 {
			ats = append(ats, rng.Int64N(30_000)-8_000)
		}
		for _, e := range evs[:min(len(evs), 50)] {
			ats = append(ats, e.Time-1, e.Time, e.Time+1)
		}
		for _, at := range ats {
			start := FloorDiv(at, hop) * hop
			want, wantOK := newestAtOrBeforeBrute(evs, at)
			if anyIn(evs, at+1, start+hop-1) {
				// at's own tile holds a later event: the newest of the
				// tiles entirely before it.
				want, wantOK = newestAtOrBeforeBrute(evs, start-1)
			}
			got, ok := l.EventTime(st, at)
			require.Equal(t, wantOK, ok, "seed %d at %d (hop %d)", seed, at, hop)
			require.Equal(t, want, got, "seed %d at %d (hop %d)", seed, at, hop)
			if wantOK {
				require.LessOrEqual(t, got, at, "never an event later than at")
			}
		}
	}
}

// TestEventTime works through the rule on hand-written cases: events at
// 10:00:10, 10:00:50 and 10:03:00 of a view whose finest hop is a minute.
func TestEventTime(t *testing.T) {
	reg, err := schemas.Parse("t.yaml", []byte(`
events:
  e:
    key: k
    timestamp: ts
    fields: {k: string, x: float}
feature_views:
  v:
    source: e
    entity: k
    features:
      x_sum_1h: {agg: sum, field: x, window: 1h, hop: 1m}
      x_max_1d: {agg: max, field: x, window: 1d, hop: 1h}
`))
	require.NoError(t, err)
	l, err := NewLayout(reg.Views["v"])
	require.NoError(t, err)
	const ten = int64(1_717_236_000_000) // 2024-06-01T10:00:00Z
	const s, m = int64(1000), int64(60_000)
	tiles := l.NewTiles()
	for _, ms := range []int64{ten + 10*s, ten + 50*s, ten + 3*m} {
		ev, err := events.Decode(l.View.Source, []byte(fmt.Sprintf(`{"k":"a","x":1.5,"ts":%d}`, ms)))
		require.NoError(t, err)
		tiles.Add(&ev)
	}
	st := tiles.State()
	for _, tc := range []struct {
		name string
		at   int64
		want int64
		ok   bool
	}{
		{"after the newest event", ten + 5*m, ten + 3*m, true},
		{"at the newest event", ten + 3*m, ten + 3*m, true},
		{"tile end before the newest", ten + 3*m - 1, ten + 50*s, true},
		{"own tile empty", ten + 2*m + 30*s, ten + 50*s, true},
		{"after both events of the tile", ten + 55*s, ten + 50*s, true},
		{"at an event, none later in its tile", ten + 50*s, ten + 50*s, true},
		{"between two events of one tile: the tiles before it", ten + 30*s, 0, false},
		{"at the first event, a later one in its tile", ten + 10*s, 0, false},
		{"before every event", ten - 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := l.EventTime(st, tc.at)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
	_, ok := l.EventTime(&State{}, ten)
	require.False(t, ok, "no state: no event time")
	_, ok = l.EventTime(nil, ten)
	require.False(t, ok)
}

// TestEveryGroupKeepsEventTime: each group's first column is the plain
// count with the newest event time, count features included or not, and
// a count feature still reads it.
func TestEveryGroupKeepsEventTime(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 5))
		v := randomView(t, rng)
		l, err := NewLayout(v)
		require.NoError(t, err)
		for _, g := range l.Groups {
			require.Equal(t, "", g.Columns[0].Field, "hop %d", g.Hop)
			require.True(t, g.Columns[0].Time, "hop %d", g.Hop)
			require.Equal(t, "ae", g.Ops()[:2], "hop %d: N, then the time", g.Hop)
			for _, c := range g.Columns[1:] {
				require.False(t, c.Time, "only the plain count keeps the time")
			}
		}
	}
	// An empty tile packs an empty time and reads back as empty.
	l, err := NewLayout(randomView(t, rand.New(rand.NewPCG(1, 1))))
	require.NoError(t, err)
	accs := make([]Acc, len(l.Groups[0].Columns))
	got, err := l.DecodePacked(0, string(l.AppendPacked(nil, 0, accs)))
	require.NoError(t, err)
	require.Equal(t, accs, got)
	_, err = l.DecodePacked(0, "1\x1fnot-a-time"+string(l.AppendPacked(nil, 0, accs))[1:])
	require.Error(t, err, "a time that is not an integer")
}
