package backfill

import (
	"cmp"
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/arrowio"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

func writeFile(tb testing.TB, path, text string) string {
	require.NoError(tb, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// readCSV returns the output rows as maps from column to cell.
func readCSV(tb testing.TB, path string) []map[string]string {
	f, err := os.Open(path)
	require.NoError(tb, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(tb, err)
	var out []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			m[c] = rec[i]
		}
		out = append(out, m)
	}
	return out
}

// TestHandComputed checks a few values worked out by hand, with events out
// of order in the file and a label column passing through.
func TestHandComputed(t *testing.T) {
	dir := t.TempDir()
	evs := writeFile(t, filepath.Join(dir, "events.ndjson"), strings.Join([]string{
		`{"txn_id":"t3","user_id":"u1","merchant_id":"m1","amount":30.0,"items":3,"ts":"2024-01-01T10:40:00Z"}`,
		`{"txn_id":"t1","user_id":"u1","merchant_id":"m1","amount":10.0,"items":1,"ts":"2024-01-01T10:00:00Z"}`,
		`{"txn_id":"t2","user_id":"u1","merchant_id":"m2","amount":20.0,"items":2,"ts":"2024-01-01T10:20:00Z"}`,
		`not json`,
		`{"txn_id":"t4","user_id":"u2","amount":5.5,"ts":"2024-01-01T10:30:00Z"}`,
	}, "\n")+"\n")
	spine := writeFile(t, filepath.Join(dir, "spine.csv"), "user_id,ts,label\n"+
		"u1,2024-01-01T10:30:00Z,1\n"+ // t1, t2 only: t3 is later
		"u1,2024-01-01T12:10:00Z,0\n"+ // 1h windows empty again
		"u2,2024-01-01T10:29:59.999Z,1\n"+ // one ms before u2's only event
		"u3,2024-01-01T11:00:00Z,0\n") // never seen
	out := filepath.Join(dir, "out.csv")
	var stderr strings.Builder
	sum, err := Run(context.Background(), testenv.Registry(t), Options{Events: []string{evs}, Spine: spine, Out: out,
		Views: []string{"user_spend"}, MaxErrors: 1, Stderr: &stderr})
	require.NoError(t, err)
	require.Equal(t, 4, sum.Events)
	require.Equal(t, 1, sum.Invalid)
	require.Contains(t, stderr.String(), "events.ndjson:4")

	rows := readCSV(t, out)
	require.Len(t, rows, 4)
	require.Equal(t, []string{"1", "0", "1", "0"}, []string{rows[0]["label"], rows[1]["label"], rows[2]["label"], rows[3]["label"]}, "spine order and columns kept")
	r := rows[0]
	require.Equal(t, "2", r["user_spend__txn_count_1h"])
	require.Equal(t, "30", strings.TrimSuffix(strings.TrimSuffix(r["user_spend__amount_sum_24h"], ".0"), ".00"))
	require.Equal(t, "20", strings.TrimSuffix(r["user_spend__amount_max_1h"], ".0"))
	require.Equal(t, "1", r["user_spend__items_min_1h"])
	require.Equal(t, "m2", r["user_spend__last_merchant"])
	std, err := strconv.ParseFloat(r["user_spend__amount_std_24h"], 64)
	require.NoError(t, err)
	require.InDelta(t, 5.0, std, 1e-9)
	r = rows[1]
	require.Equal(t, "0", r["user_spend__txn_count_1h"])
	require.Equal(t, "", r["user_spend__amount_max_1h"], "empty window: null")
	require.Equal(t, "m1", r["user_spend__last_merchant"], "t3, the latest, within 7d")
	r = rows[2]
	require.Equal(t, "0", r["user_spend__txn_count_1h"], "an event 1ms later never leaks in")
	require.Equal(t, "", r["user_spend__last_merchant"])
	require.Equal(t, "0", rows[3]["user_spend__txn_count_1h"])
}

// TestOverflowCounted: a value beyond its type is null in the output, never
// wrapped, and counted per column in the summary; exact ints stay exact.
func TestOverflowCounted(t *testing.T) {
	dir := t.TempDir()
	evs := writeFile(t, filepath.Join(dir, "events.ndjson"), strings.Join([]string{
		`{"txn_id":"t1","user_id":"u1","merchant_id":"m1","amount":1.7976931348623157e308,"items":9223372036854775807,"ts":"2024-01-01T10:00:00Z"}`,
		`{"txn_id":"t2","user_id":"u1","merchant_id":"m1","amount":1.7976931348623157e308,"items":9007199254740993,"ts":"2024-01-01T10:10:00Z"}`,
	}, "\n")+"\n")
	spine := writeFile(t, filepath.Join(dir, "spine.csv"), "user_id,merchant_id,ts\n"+
		"u1,m1,2024-01-01T10:05:00Z\n"+ // one event: nothing overflows
		"u1,m1,2024-01-01T10:20:00Z\n") // both
	out := filepath.Join(dir, "out.csv")
	var stderr strings.Builder
	sum, err := Run(context.Background(), testenv.Registry(t), Options{Events: []string{evs}, Spine: spine, Out: out, Stderr: &stderr})
	require.NoError(t, err)
	require.Equal(t, map[string]int{
		"user_spend__amount_sum_24h": 1, "user_spend__amount_mean_7d": 1, "user_spend__amount_std_24h": 1,
		"merchant_activity__amount_sum_1h": 1, "merchant_activity__items_sum_1h": 1,
	}, sum.Overflow)
	require.Contains(t, stderr.String(), "5 values overflowed their type and are null (")
	rows := readCSV(t, out)
	require.Len(t, rows, 2)
	require.Equal(t, "9223372036854775807", rows[0]["merchant_activity__items_sum_1h"])
	require.Equal(t, "", rows[1]["merchant_activity__items_sum_1h"])
	require.Equal(t, "9007199254740993", rows[1]["user_spend__items_min_1h"])
	require.Equal(t, "", rows[1]["user_spend__amount_sum_24h"])
	require.Equal(t, "2", rows[1]["user_spend__txn_count_1h"])
}

// TestIDSetForgetsPastTheWindow: the ids a backfill remembers stay within
// the dedupe window of the walk, however long the history, and a repeat
// within the window is still caught after a prune.
func TestIDSetForgetsPastTheWindow(t *testing.T) {
	reg := testenv.Registry(t)
	typ := reg.Events["transaction"]
	s := newIDSet(typ)
	require.NotNil(t, s)
	ev := func(id string, at int64) *events.Event {
		e, err := events.Decode(typ, []byte(fmt.Sprintf(`{"txn_id":%q,"user_id":"u","amount":1.0,"ts":%d}`, id, at)))
		require.NoError(t, err)
		return &e
	}
	base := int64(1_717_000_000_000)
	const n = 150_000
	step := typ.DedupeWindow / 1000 // 1000 ids per window
	most := 0
	for i := range n {
		at := base + int64(i)*step
		require.False(t, s.seen("u", ev(fmt.Sprint(i), at)), "id %d is new", i)
		if i >= 10 {
			require.True(t, s.seen("u", ev(fmt.Sprint(i-10), at)), "id %d was applied within the window", i-10)
		}
		most = max(most, len(s.applied))
	}
	require.Less(t, most, 3*(1<<16), "bounded by the window (1000 ids) and the prune threshold, not by %d events", n)
	require.True(t, s.seen("u", ev(fmt.Sprint(n-1), base+int64(n-1)*step+typ.DedupeWindow)), "at the window's edge: still a repeat")
	require.False(t, s.seen("u", ev(fmt.Sprint(n-2), base+int64(n-2)*step+typ.DedupeWindow+1)), "past it: counted again")
	require.False(t, s.seen("v", ev(fmt.Sprint(n-1), base+int64(n-1)*step)), "ids are per entity")
	require.Nil(t, newIDSet(&schemas.Event{Name: "no_id"}), "no id declared: nothing to remember")
}

func TestTooManyInvalid(t *testing.T) {
	dir := t.TempDir()
	evs := writeFile(t, filepath.Join(dir, "events.ndjson"), "{}\n{\"txn_id\":1}\n")
	spine := writeFile(t, filepath.Join(dir, "spine.csv"), "user_id,ts\nu1,2024-01-01T00:00:00Z\n")
	_, err := Run(context.Background(), testenv.Registry(t), Options{Events: []string{evs}, Spine: spine, Out: filepath.Join(dir, "o.csv"), Rejects: filepath.Join(dir, "rejects.txt"), Views: []string{"user_spend"}})
	var tm *TooManyInvalidError
	require.ErrorAs(t, err, &tm)
	require.Equal(t, 2, tm.Invalid)
	rejects, err := os.ReadFile(filepath.Join(dir, "rejects.txt"))
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(rejects), "\n"))
}

// TestImplausibleTimesAreInvalidRows: an event time in microseconds or
// seconds is an invalid row saying so, as ingest refuses it, instead of an
// event that silently counts in no window.
func TestImplausibleTimesAreInvalidRows(t *testing.T) {
	dir := t.TempDir()
	ms := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	evs := writeFile(t, filepath.Join(dir, "events.ndjson"), fmt.Sprintf(
		`{"txn_id":"a","user_id":"u1","amount":1.0,"ts":%d}`+"\n"+
			`{"txn_id":"b","user_id":"u1","amount":2.0,"ts":%d}`+"\n"+
			`{"txn_id":"c","user_id":"u1","amount":3.0,"ts":%d}`+"\n", ms, ms*1000, ms/1000))
	spine := writeFile(t, filepath.Join(dir, "spine.csv"), "user_id,ts\nu1,2024-06-01T12:30:00Z\n")
	var stderr strings.Builder
	out := filepath.Join(dir, "o.csv")
	sum, err := Run(context.Background(), testenv.Registry(t), Options{Events: []string{evs}, Spine: spine, Out: out,
		Views: []string{"user_spend"}, MaxErrors: 2, Stderr: &stderr})
	require.NoError(t, err)
	require.Equal(t, 2, sum.Invalid)
	require.Contains(t, stderr.String(), "events.ndjson:2: field ts: implausible event time")
	require.Contains(t, stderr.String(), "looks like epoch microseconds")
	require.Contains(t, stderr.String(), "events.ndjson:3: field ts:")
	require.Contains(t, stderr.String(), "looks like epoch seconds")
	require.Equal(t, "1", readCSV(t, out)[0]["user_spend__txn_count_1h"])
}

func TestUnknownView(t *testing.T) {
	for _, tc := range []struct{ view, want string }{
		{"nope", `unknown view "nope" (views: merchant_activity, user_spend)`},
		{"user_spnd", `unknown view "user_spnd" (views: merchant_activity, user_spend); did you mean user_spend?`},
	} {
		_, err := Run(context.Background(), testenv.Registry(t), Options{Views: []string{"user_spend", tc.view}})
		require.EqualError(t, err, tc.want)
	}
}

// TestSpineLacksViewKeys: a spine without the entity column of some views
// fails before any event is read, naming every view it cannot serve, why,
// and the flags that choose; no output is written.
func TestSpineLacksViewKeys(t *testing.T) {
	dir := t.TempDir()
	evs := writeFile(t, filepath.Join(dir, "events.ndjson"),
		`{"txn_id":"t1","user_id":"u1","merchant_id":"m1","amount":10.0,"items":1,"ts":"2024-01-01T10:00:00Z"}`+"\n")
	users := writeFile(t, filepath.Join(dir, "labels.csv"), "user_id,ts,label\nu1,2024-01-01T10:30:00Z,1\n")
	both := writeFile(t, filepath.Join(dir, "both.csv"), "user_id,merchant_id,ts\nu1,m1,2024-01-01T10:30:00Z\n")
	ids := writeFile(t, filepath.Join(dir, "ids.csv"), "id,ts\nu1,2024-01-01T10:30:00Z\n")
	// NDJSON spine columns are typed from their values: merchant_id is a
	// float column, which cannot hold entities.
	floats := writeFile(t, filepath.Join(dir, "floats.ndjson"), `{"user_id":"u1","merchant_id":1.5,"ts":"2024-01-01T10:30:00Z"}`+"\n")
	for _, tc := range []struct {
		name, spine, entityColumn, want string
		views                           []string
	}{
		{name: "every view, one key missing", spine: users,
			want: "spine " + users + " has no column merchant_id for view merchant_activity (keyed by merchant_id); " +
				"choose the views to compute with --view user_spend, or name the spine's entity column with --entity-column " +
				"(spine columns: user_id, ts, label)"},
		{name: "a named view's key missing", spine: users, views: []string{"merchant_activity"},
			want: "spine " + users + " has no column merchant_id for view merchant_activity (keyed by merchant_id); " +
				"name the spine's entity column with --entity-column, or leave those views out of --view (spine columns: user_id, ts, label)"},
		{name: "every key missing", spine: ids,
			want: "spine " + ids + " has no column merchant_id for view merchant_activity (keyed by merchant_id), " +
				"no column user_id for view user_spend (keyed by user_id); name the spine's entity column with --entity-column " +
				"(spine columns: id, ts)"},
		{name: "a key of the wrong type", spine: floats,
			want: "spine " + floats + " cannot serve view merchant_activity (keyed by merchant_id): column merchant_id has type float64, " +
				"which cannot be an entity column (expected string or integer); choose the views to compute with --view user_spend, " +
				"or name the spine's entity column with --entity-column"},
		{name: "entity column missing", spine: users, entityColumn: "uid",
			want: "--entity-column uid: " + users + ": no column uid (columns: user_id, ts, label)"},
		{name: "no spine", spine: filepath.Join(dir, "missing.csv"), want: "missing.csv"},
		{name: "every key present", spine: both},
		{name: "the entity column named", spine: ids, entityColumn: "id", views: []string{"user_spend"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.csv")
			_, err := Run(context.Background(), testenv.Registry(t), Options{Events: []string{evs}, Spine: tc.spine, Out: out,
				Views: tc.views, EntityColumn: tc.entityColumn})
			if tc.want == "" {
				require.NoError(t, err)
				require.Len(t, readCSV(t, out), 1)
				return
			}
			if strings.HasPrefix(tc.want, "spine ") || strings.HasPrefix(tc.want, "--") {
				require.EqualError(t, err, tc.want)
			} else {
				require.ErrorContains(t, err, tc.want)
				require.NotContains(t, err.Error(), "cannot serve", "the file failed, not a view's column")
			}
			_, serr := os.Stat(out)
			require.ErrorIs(t, serr, os.ErrNotExist, "nothing written")
		})
	}
}

// randomEvents makes n transactions of a few users and merchants over two
// days, shuffled by up to 20 minutes.
func randomEvents(tb testing.TB, reg *schemas.Registry, n int, seed uint64) []events.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	typ := reg.Events["transaction"]
	base := int64(1_717_000_000_000)
	out := make([]events.Event, n)
	for i := range out {
		ts := base + int64(i)*(2*86_400_000/int64(n)) + rng.Int64N(20*60_000)
		merchant := ""
		if rng.IntN(8) > 0 {
			merchant = fmt.Sprintf(`"merchant_id":"m%d",`, rng.IntN(7))
		}
		raw := fmt.Sprintf(`{"txn_id":"t%d","user_id":"u%d",%s"amount":%d.%02d,"items":%d,"card_present":%v,"ts":%d}`,
			i, rng.IntN(30), merchant, rng.IntN(300), rng.IntN(100), rng.IntN(6), rng.IntN(2) == 0, ts)
		e, err := events.Decode(typ, []byte(raw))
		require.NoError(tb, err)
		out[i] = e
	}
	return out
}

// TestSpilledRunsEqualInMemory sorts the same events in memory and through
// many spilled runs: the outputs must be identical.
func TestSpilledRunsEqualInMemory(t *testing.T) {
	reg := testenv.Registry(t)
	dir := t.TempDir()
	evs := randomEvents(t, reg, 3000, 3)
	evPath := filepath.Join(dir, "events.parquet")
	require.NoError(t, arrowio.WriteEvents(evPath, reg.Events["transaction"], evs, 500))
	var spine strings.Builder
	spine.WriteString("user_id,merchant_id,ts\n")
	rng := rand.New(rand.NewPCG(4, 4))
	for range 500 {
		fmt.Fprintf(&spine, "u%d,m%d,%d\n", rng.IntN(32), rng.IntN(8), evs[0].Time+rng.Int64N(3*86_400_000))
	}
	sp := writeFile(t, filepath.Join(dir, "spine.csv"), spine.String())
	// The same events in time order take the path that sorts nothing.
	sortedEvs := slices.Clone(evs)
	slices.SortStableFunc(sortedEvs, func(a, b events.Event) int { return cmp.Compare(a.Time, b.Time) })
	sortedPath := filepath.Join(dir, "sorted.parquet")
	require.NoError(t, arrowio.WriteEvents(sortedPath, reg.Events["transaction"], sortedEvs, 500))
	var outs []string
	for i, tc := range []struct {
		path   string
		run    int
		sorted bool
	}{{evPath, 0, true}, {evPath, 97, true}, {sortedPath, 97, false}} {
		out := filepath.Join(dir, fmt.Sprintf("out-%d.csv", i))
		sum, err := Run(context.Background(), reg, Options{Events: []string{tc.path}, Spine: sp, Out: out, RunSize: tc.run, TempDir: dir})
		require.NoError(t, err)
		require.Equal(t, tc.sorted, sum.Sorted, "case %d", i)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		outs = append(outs, string(b))
	}
	require.Equal(t, outs[0], outs[1])
	require.Equal(t, outs[0], outs[2])
	require.Greater(t, strings.Count(outs[0], "\n"), 500)
}

// TestOnlineOfflineConsistency applies events through featurize's online
// path into Redis and backfills the same events with a spine of tile-aligned
// times: every feature must agree.
func TestOnlineOfflineConsistency(t *testing.T) {
	reg := testenv.Registry(t)
	dir := t.TempDir()
	evs := randomEvents(t, reg, 4000, 9)
	// The example declares an id (txn_id, 1h): re-sent events, a little
	// later in the file, are skipped on both paths; an id used again 3h
	// later (beyond the window) counts on both.
	rng := rand.New(rand.NewPCG(9, 9))
	resent := 0
	for range 200 {
		i := rng.IntN(len(evs) - 60)
		evs = slices.Insert(evs, i+1+rng.IntN(50), evs[i])
		resent++
	}
	idField, ok := reg.Events["transaction"].Field("txn_id")
	require.True(t, ok)
	for range 50 {
		j := len(evs)/2 + rng.IntN(len(evs)/2)
		again := evs[j]
		again.Values = slices.Clone(again.Values)
		// The id of an event 3h or more earlier: no longer a duplicate.
		i := rng.IntN(len(evs) / 4)
		require.Greater(t, again.Time-evs[i].Time, int64(3*3_600_000))
		again.Values[idField.Index] = evs[i].Values[idField.Index]
		evs = slices.Insert(evs, j+1, again)
	}
	evPath := filepath.Join(dir, "events.arrow")
	require.NoError(t, arrowio.WriteEvents(evPath, reg.Events["transaction"], evs, 1000))

	// Online: the events as Kafka messages of one partition, in file order,
	// through featurize's plan and apply into Redis.
	_, rc := testenv.Redis(t)
	st := store.NewRedis(rc, testenv.Unique("consistency:"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kc := featurizeDefaults(t)
	p, err := featurize.NewProcessor(reg, st, kc, log)
	require.NoError(t, err)
	var msgs []kafka.Message
	for i := range evs {
		msgs = append(msgs, kafka.Message{Topic: kc.Topic("transaction"), Offset: int64(i), Value: evs[i].AppendJSON(nil)})
	}
	for i := 0; i < len(msgs); i += 700 {
		require.NoError(t, p.Apply(context.Background(), p.Plan(context.Background(), msgs[i:min(i+700, len(msgs))])))
	}
	require.Zero(t, p.Stats.Late.Load(), "the events must all be on time for the comparison to hold")
	onlineDups := p.Stats.Duplicates.Load()
	require.Positive(t, onlineDups, "featurize skipped the re-sent events")

	// Offline: a spine of every user and merchant at hour boundaries - 1ms
	// (aligned for every hop of the example views).
	var spine strings.Builder
	spine.WriteString("user_id,merchant_id,ts\n")
	var times []int64
	last := evs[len(evs)-1].Time
	for h := int64(1); h <= 60; h += 7 {
		times = append(times, (evs[0].Time/3_600_000+h)*3_600_000-1)
	}
	times = append(times, (last/3_600_000+1)*3_600_000-1)
	for _, at := range times {
		for u := range 30 {
			fmt.Fprintf(&spine, "u%d,m%d,%d\n", u, u%7, at)
		}
	}
	sp := writeFile(t, filepath.Join(dir, "spine.csv"), spine.String())
	out := filepath.Join(dir, "out.csv")
	sum, err := Run(context.Background(), reg, Options{Events: []string{evPath}, Spine: sp, Out: out})
	require.NoError(t, err)
	offlineDups := 0
	for _, n := range sum.Duplicates {
		offlineDups += n
	}
	require.Equal(t, int(onlineDups), offlineDups, "the same event×view updates skipped as duplicates (%v)", sum.Duplicates)
	require.Equal(t, resent, sum.Duplicates["user_spend"], "every re-sent event, and no event whose id came back after the window")

	compared := 0
	for _, row := range readCSV(t, out) {
		at, err := strconv.ParseInt(row["ts"], 10, 64)
		require.NoError(t, err)
		for _, v := range reg.ViewsOf("transaction") {
			l, err := aggregate.NewLayout(v)
			require.NoError(t, err)
			states, err := st.Read(context.Background(), l, []string{row[v.Entity]})
			require.NoError(t, err)
			if !states[0].Found {
				continue
			}
			for i, f := range v.Features {
				online, _ := l.Value(states[0], i, at)
				offline := row[v.Name+"__"+f.Name]
				requireCell(t, online, offline, fmt.Sprintf("%s %s %s at %d", v.Name, row[v.Entity], f.Name, at))
				compared++
			}
		}
	}
	require.Greater(t, compared, 1000)
}

// requireCell compares an online value with an output CSV cell.
func requireCell(t *testing.T, want events.Value, cell, msg string) {
	t.Helper()
	switch want.Kind {
	case events.Absent:
		require.Equal(t, "", cell, msg)
	case events.Float:
		got, err := strconv.ParseFloat(cell, 64)
		require.NoError(t, err, msg)
		require.InDelta(t, want.F, got, 1e-9*math.Max(1, math.Abs(want.F)), msg)
	case events.Int:
		require.Equal(t, strconv.FormatInt(want.I, 10), cell, msg)
	case events.String:
		require.Equal(t, want.S, cell, msg)
	case events.Bool:
		require.Equal(t, strconv.FormatBool(want.B), cell, msg)
	default:
		t.Fatalf("%s: unexpected kind %v", msg, want.Kind)
	}
}

// featurizeDefaults is featurize's Kafka settings with their defaults. (Not
// from pipeline/cli: it imports this package for `featurize backfill`.)
func featurizeDefaults(tb testing.TB) broker.Config {
	var c featurize.Config
	fs := flag.NewFlagSet("featurize", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(tb, fs.Parse(nil))
	return c.Kafka
}
