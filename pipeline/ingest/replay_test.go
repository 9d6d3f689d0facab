package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/arrowio"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
	"github.com/segmentio/kafka-go"
)

// replayRows is an NDJSON file of valid, invalid and blank lines.
var replayRows = []string{
	`{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":1717027202000}`,
	``,
	`{"txn_id":"t2","user_id":"u_2","amount":2,"ts":"2024-05-30T00:00:03Z"}`,
	`{"txn_id":"bad1","user_id":"u_2","amount":"2.5","ts":1717027204000}`,
	`oops, not JSON`,
	"  \t",
	`{"txn_id":"t3","user_id":"u_1","amount":3.5,"ts":1717027205000,"items":4}`,
	`{"txn_id":"bad2","user_id":"u_3"`,
	`{"txn_id":"t4","user_id":"u_3","amount":4.5,"ts":1717027206000}` + "\r",
	`{"txn_id":"t5","user_id":"u_1","amount":5.5,"ts":1717027207000}`,
}

const replayRejects = "a.ndjson:4: field amount: expected float, got string\t" + `{"txn_id":"bad1","user_id":"u_2","amount":"2.5","ts":1717027204000}` + "\n" +
	"a.ndjson:5: invalid JSON: invalid character 'o' looking for beginning of value at offset 0\toops, not JSON\n" +
	"a.ndjson:8: invalid JSON: unexpected end of input\t" + `{"txn_id":"bad2","user_id":"u_3"` + "\n"

// gzipRows is a gzipped JSONL file of valid rows, replayed after replayRows.
var gzipRows = []string{
	`{"txn_id":"t6","user_id":"u_2","amount":6.5,"ts":1717027208000}`,
	`{"txn_id":"t7","user_id":"u_1","amount":7.5,"ts":1717027209000}`,
}

// writeReplayFiles writes a.ndjson and b.jsonl.gz in a new directory, which
// becomes the working directory, so that file names in reports are short.
func writeReplayFiles(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile("a.ndjson", []byte(strings.Join(replayRows, "\n")), 0o644))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(strings.Join(gzipRows, "\n") + "\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile("b.jsonl.gz", buf.Bytes(), 0o644))
}

var summaryRE = regexp.MustCompile(`(?m)^replayed (\d+) events from (\d+) file\(s\) in \d+\.\d{3}s \(\d+ events/s\), (\d+) invalid rows$`)

func TestReplay(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	tests := []struct {
		name      string
		maxErrors int
		speed     float64
		err       string
	}{
		{name: "invalid rows within max-errors", maxErrors: 3},
		// Nothing is published, so that a re-run after fixing the rows
		// counts no event twice.
		{name: "invalid rows exceed max-errors", maxErrors: 2, err: "3 invalid rows exceed --max-errors 2: nothing was published"},
		{name: "paced", maxErrors: 3, speed: 1e9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeReplayFiles(t)
			cfg := kafkaConfig(brokers)
			ensureTopics(t, cfg, reg)
			var stderr bytes.Buffer
			sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), ReplayOptions{
				Event:     "transaction",
				Speed:     tt.speed,
				MaxErrors: tt.maxErrors,
				Rejects:   "rejects.txt",
				Files:     []string{"a.ndjson", "b.jsonl.gz"},
				Stderr:    &stderr,
				Batch:     2,
			})
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.err)
				var tooMany *TooManyInvalidError
				require.ErrorAs(t, err, &tooMany)
				require.Equal(t, TooManyInvalidError{Invalid: 3, MaxErrors: 2}, *tooMany)
			}
			published := 7
			if tt.err != "" {
				published = 0
			}
			require.Equal(t, published, sum.Published)
			require.Equal(t, 3, sum.Invalid)
			require.Positive(t, sum.Elapsed)

			rejects, err := os.ReadFile("rejects.txt")
			require.NoError(t, err)
			require.Equal(t, replayRejects, string(rejects))

			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			require.Len(t, lines, 4, stderr.String())
			for i, want := range strings.Split(strings.TrimSuffix(replayRejects, "\n"), "\n") {
				require.Equal(t, want[:strings.IndexByte(want, '\t')], lines[i])
			}
			m := summaryRE.FindStringSubmatch(lines[3])
			require.NotNil(t, m, lines[3])
			require.Equal(t, []string{strconv.Itoa(published), "2", "3"}, m[1:])

			// Each partition holds its keys' events in file order.
			want := make([][]string, testPartitions)
			ids := []struct{ txn, user string }{
				{"t1", "u_1"}, {"t2", "u_2"}, {"t3", "u_1"}, {"t4", "u_3"}, {"t5", "u_1"}, {"t6", "u_2"}, {"t7", "u_1"},
			}
			for _, id := range ids[:published] {
				p := partitionOf([]byte(id.user))
				want[p] = append(want[p], id.txn)
			}
			got := make([][]string, testPartitions)
			for p, msgs := range readTopic(t, cfg, cfg.Topic("transaction")) {
				for _, m := range msgs {
					require.Equal(t, partitionOf(m.Key), p)
					got[p] = append(got[p], txnID(t, m.Value))
				}
			}
			require.Equal(t, want, got)
		})
	}
}

func decode(t *testing.T, reg *schemas.Registry, raw string) events.Event {
	ev, err := events.Decode(reg.Events["transaction"], []byte(raw))
	require.NoError(t, err)
	return ev
}

var txnRE = regexp.MustCompile(`^\{"txn_id":"([^"]+)",`)

func txnID(t *testing.T, value []byte) string {
	m := txnRE.FindSubmatch(value)
	require.NotNil(t, m, "%s", value)
	return string(m[1])
}

func TestReplayShowsTenRejects(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	t.Chdir(t.TempDir())
	var rows []string
	for i := range 25 {
		rows = append(rows, fmt.Sprintf(`{"txn_id":"t%d","user_id":"u_1","amount":true,"ts":1717027202000}`, i))
	}
	require.NoError(t, os.WriteFile("bad.jsonl", []byte(strings.Join(rows, "\n")+"\n"), 0o644))

	tests := []struct {
		name, rejects, note string
	}{
		{"with rejects file", "rejects.txt", "further invalid rows are only written to rejects.txt"},
		{"without", "", "further invalid rows are not shown (see --rejects)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kafkaConfig(brokers)
			ensureTopics(t, cfg, reg)
			var stderr bytes.Buffer
			sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), ReplayOptions{
				Event: "transaction", MaxErrors: 100, Rejects: tt.rejects, Files: []string{"bad.jsonl"}, Stderr: &stderr,
			})
			require.NoError(t, err)
			require.Equal(t, ReplaySummary{Invalid: 25, Elapsed: sum.Elapsed}, sum)
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			require.Len(t, lines, shownRejects+2)
			for i := range shownRejects {
				require.Equal(t, fmt.Sprintf("bad.jsonl:%d: field amount: expected float, got bool", i+1), lines[i])
			}
			require.Equal(t, tt.note, lines[shownRejects])
			require.Regexp(t, summaryRE, lines[shownRejects+1])
			if tt.rejects != "" {
				b, err := os.ReadFile(tt.rejects)
				require.NoError(t, err)
				require.Equal(t, 25, bytes.Count(b, []byte("\n")))
			}
		})
	}
}

func TestReplayRefusesBeforePublishing(t *testing.T) {
	reg := testenv.Registry(t)
	t.Chdir(t.TempDir())
	require.NoError(t, os.WriteFile("a.ndjson", []byte(replayRows[0]+"\n"), 0o644))
	require.NoError(t, os.WriteFile("c.csv", []byte("txn_id\n"), 0o644))
	require.NoError(t, os.WriteFile("d.csv", []byte("txn_id,user_id,amount,ts\nt,u,1.5,2024-01-01T00:00:00Z\n"), 0o644))
	typ := reg.Events["transaction"]
	ev, err := events.Decode(typ, []byte(`{"txn_id":"t","user_id":"u","amount":1.5,"ts":1}`))
	require.NoError(t, err)
	require.NoError(t, arrowio.WriteEvents("e.parquet", typ, []events.Event{ev}, 0))
	require.NoError(t, os.WriteFile("junk.parquet", []byte("not parquet at all"), 0o644))
	require.NoError(t, os.Mkdir("dir.ndjson", 0o755))
	// Nothing listens: any attempt to publish would fail differently.
	cfg := kafkaConfig([]string{closedAddr(t)})

	tests := []struct {
		name string
		opt  ReplayOptions
		err  string
	}{
		{"unknown extension", ReplayOptions{Event: "transaction", Files: []string{"a.ndjson", "c.txt"}},
			`replay: c.txt: unsupported file format (supported: .parquet, .arrow, .feather, .arrows, .csv, .ndjson and .jsonl; .csv, .ndjson and .jsonl may be followed by .gz or .zst)`},
		{"no extension", ReplayOptions{Event: "transaction", Files: []string{"events"}},
			`replay: events: unsupported file format (supported: .parquet, .arrow, .feather, .arrows, .csv, .ndjson and .jsonl; .csv, .ndjson and .jsonl may be followed by .gz or .zst)`},
		// Columns are checked against the schema before anything is
		// published, for every file.
		{"missing required column", ReplayOptions{Event: "transaction", Files: []string{"a.ndjson", "d.csv", "c.csv"}},
			"replay: c.csv: no column for required field user_id"},
		{"corrupt parquet", ReplayOptions{Event: "transaction", Files: []string{"e.parquet", "junk.parquet"}},
			"replay: junk.parquet: not a valid Parquet file"},
		{"missing file", ReplayOptions{Event: "transaction", Files: []string{"a.ndjson", "gone.ndjson"}},
			"replay: stat gone.ndjson: no such file or directory"},
		{"directory", ReplayOptions{Event: "transaction", Files: []string{"dir.ndjson"}},
			"replay: dir.ndjson: is a directory"},
		{"no files", ReplayOptions{Event: "transaction"}, "replay: no files to replay"},
		{"no event", ReplayOptions{Files: []string{"a.ndjson"}}, "replay: --event: name the event type of the rows"},
		{"unknown event", ReplayOptions{Event: "refund", Files: []string{"a.ndjson"}}, `replay: --event: unknown event type "refund"`},
		{"negative speed", ReplayOptions{Event: "transaction", Speed: -1, Files: []string{"a.ndjson"}},
			"replay: --speed: -1, must be 0 (as fast as possible) or a positive multiple of real time"},
		{"negative max-errors", ReplayOptions{Event: "transaction", MaxErrors: -1, Files: []string{"a.ndjson"}},
			"replay: --max-errors: -1, must be at least 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			tt.opt.Stderr = &stderr
			sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), tt.opt)
			require.ErrorContains(t, err, tt.err)
			require.Equal(t, ReplaySummary{}, sum)
			require.Empty(t, stderr.String())
		})
	}
}

func TestReplayKafkaDown(t *testing.T) {
	reg := testenv.Registry(t)
	t.Chdir(t.TempDir())
	require.NoError(t, os.WriteFile("a.ndjson", []byte(strings.Join(replayRows, "\n")), 0o644))
	cfg := kafkaConfig([]string{closedAddr(t)})
	cfg.WriteTimeout = time.Second
	w := cfg.NewWriter()
	w.MaxAttempts = 1
	t.Cleanup(func() { _ = w.Close() })

	var stderr bytes.Buffer
	sum, err := Replay(context.Background(), reg, NewPublisher(cfg, w), ReplayOptions{
		Event: "transaction", MaxErrors: 10, Files: []string{"a.ndjson"}, Stderr: &stderr, Batch: 2,
	})
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "replay batch starting at a.ndjson:1: publish 2 events: "), err.Error())
	require.Zero(t, sum.Published)
	require.Regexp(t, summaryRE, stderr.String())
}

func TestReplayCancelled(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	t.Chdir(t.TempDir())
	require.NoError(t, os.WriteFile("a.ndjson", []byte(strings.Join(replayRows, "\n")), 0o644))
	cfg := kafkaConfig(brokers)
	ensureTopics(t, cfg, reg)

	// A replay whose context has ended publishes nothing and says why.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := Replay(ctx, reg, newPublisher(t, cfg), ReplayOptions{
		Event: "transaction", Speed: 1, MaxErrors: 10, Files: []string{"a.ndjson"}, Batch: 2,
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, sum.Published)
}

func TestReplayFlags(t *testing.T) {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	opt := ReplayFlags(fs)
	require.Equal(t, ReplayOptions{Stderr: os.Stderr, Batch: DefaultBatch}, *opt)
	require.NoError(t, fs.Parse([]string{"--event", "transaction", "--speed", "60", "--max-errors", "5", "--rejects", "r.txt", "a.ndjson", "b.ndjson"}))
	opt.Files = fs.Args()
	require.Equal(t, ReplayOptions{
		Event: "transaction", Speed: 60, MaxErrors: 5, Rejects: "r.txt",
		Files: []string{"a.ndjson", "b.ndjson"}, Stderr: os.Stderr, Batch: DefaultBatch,
	}, *opt)
}

func TestSendOffsets(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name  string
		times []int64 // epoch ms
		speed float64
		want  []time.Duration
	}{
		{"none", nil, 1, []time.Duration{}},
		{"real time", []int64{1000, 2000, 4500}, 1, []time.Duration{0, s, 3500 * time.Millisecond}},
		{"faster", []int64{1000, 2000, 4500}, 10, []time.Duration{0, 100 * time.Millisecond, 350 * time.Millisecond}},
		{"slower", []int64{1000, 2000}, 0.5, []time.Duration{0, 2 * s}},
		{"out of order goes at once", []int64{5000, 7000, 6000, 1000, 9000}, 2, []time.Duration{0, s, 500 * time.Millisecond, 0, 2 * s}},
		{"same time", []int64{1000, 1000, 1000}, 3, []time.Duration{0, 0, 0}},
		{"sub-millisecond", []int64{0, 1}, 3, []time.Duration{0, 333333 * time.Nanosecond}},
		{"huge span saturates", []int64{0, 1 << 62}, 1e-9, []time.Duration{0, 1<<63 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, sendOffsets(tt.times, tt.speed))
		})
	}
}

func TestReady(t *testing.T) {
	const ms = time.Millisecond
	offs := []time.Duration{0, 500 * ms, 250 * ms, 0, 1500 * ms}
	tests := []struct {
		name    string
		offs    []time.Duration
		elapsed time.Duration
		n       int
		wait    time.Duration
	}{
		{"empty", nil, 0, 0, 0},
		{"first at once", offs, 0, 1, 0},
		{"an event waits for its time", offs[1:], 100 * ms, 0, 400 * ms},
		{"out of order follow without waiting", offs, 500 * ms, 4, 0},
		{"all due", offs, 2 * time.Second, 5, 0},
		{"due exactly", offs[4:], 1500 * ms, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, wait := ready(tt.offs, tt.elapsed)
			require.Equal(t, tt.n, n)
			require.Equal(t, tt.wait, wait)
		})
	}
}

func TestPacerKeepsTheFirstEventAcrossBatches(t *testing.T) {
	reg := testenv.Registry(t)
	cfg := kafkaConfig([]string{"localhost:9092"})
	var enc encoder
	batch := func(times ...int64) batch {
		var b batch
		for _, ts := range times {
			ev := decode(t, reg, fmt.Sprintf(`{"txn_id":"t","user_id":"u","amount":1.0,"ts":%d}`, ts))
			b.msgs = append(b.msgs, enc.message(&cfg, &ev))
		}
		return b
	}
	p := pacer{speed: 2}
	require.Equal(t, []time.Duration{0, time.Second}, p.offsets(batch(10_000, 12_000).msgs))
	require.Equal(t, []time.Duration{2 * time.Second, 0}, p.offsets(batch(14_000, 9_000).msgs))
}

func BenchmarkReplayNDJSON(b *testing.B) {
	brokers := testenv.Kafka(b)
	reg := testenv.Registry(b)
	example, err := os.ReadFile(filepath.Join(testenv.RepoRoot(b), "schemas/example/events.ndjson"))
	require.NoError(b, err)
	example = append(bytes.TrimRight(example, "\n"), '\n')
	const events = 50_000
	rows := bytes.Count(example, []byte("\n"))
	data := bytes.Repeat(example, (events+rows-1)/rows)
	path := filepath.Join(b.TempDir(), "events.ndjson")
	require.NoError(b, os.WriteFile(path, data, 0o644))

	cfg := kafkaConfig(brokers)
	ensureTopics(b, cfg, reg)
	pub := newPublisher(b, cfg)
	var published int
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sum, err := Replay(context.Background(), reg, pub, ReplayOptions{
			Event: "transaction", MaxErrors: len(data), Files: []string{path},
		})
		require.NoError(b, err)
		require.Equal(b, events, sum.Published+sum.Invalid)
		published += sum.Published
	}
	b.ReportMetric(float64(published)/b.Elapsed().Seconds(), "events/s")
}

// TestReplayFormatsPublishTheSame writes the same events as NDJSON, Parquet,
// Arrow IPC file and stream, CSV and zstd NDJSON, replays each to its own
// topic and requires the same messages (keys, normalized values, partitions,
// order), hence the same features, as from NDJSON.
func TestReplayFormatsPublishTheSame(t *testing.T) {
	reg := testenv.Registry(t)
	typ := reg.Events["transaction"]
	dir := t.TempDir()
	var evs []events.Event
	lines, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "schemas", "example", "events.ndjson"))
	require.NoError(t, err)
	for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n")[:1500] {
		evs = append(evs, decode(t, reg, l))
	}
	brokers := testenv.Kafka(t)
	var want [][]kafka.Message
	for _, ext := range []string{"ndjson", "parquet", "arrow", "arrows", "csv", "ndjson.zst", "csv.gz"} {
		path := filepath.Join(dir, "events."+ext)
		require.NoError(t, arrowio.WriteEvents(path, typ, evs, 400))
		cfg := kafkaConfig(brokers)
		cfg.TopicPrefix = testenv.Unique("formats.")
		ensureTopics(t, cfg, reg)
		sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), ReplayOptions{Event: "transaction", Files: []string{path}})
		require.NoError(t, err, ext)
		require.Equal(t, len(evs), sum.Published, ext)
		got := readTopic(t, cfg, cfg.Topic("transaction"))
		if want == nil {
			want = got
			continue
		}
		require.Equal(t, len(want), len(got), ext)
		for p := range want {
			require.Len(t, got[p], len(want[p]), "%s partition %d", ext, p)
			for i := range want[p] {
				require.Equal(t, string(want[p][i].Key), string(got[p][i].Key), "%s partition %d message %d", ext, p, i)
				require.Equal(t, string(want[p][i].Value), string(got[p][i].Value), "%s partition %d message %d", ext, p, i)
			}
		}
	}
}

func TestReplayLimitAndRebaseTime(t *testing.T) {
	reg := testenv.Registry(t)
	writeReplayFiles(t)
	cfg := kafkaConfig(testenv.Kafka(t))
	ensureTopics(t, cfg, reg)
	// A real clock: Kafka refuses message times more than an hour ahead.
	now := time.Now().Truncate(time.Millisecond)
	sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), ReplayOptions{
		Event: "transaction", Files: []string{"a.ndjson", "b.jsonl.gz"}, MaxErrors: 10,
		Limit: 3, RebaseTime: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.Equal(t, 3, sum.Published, "--limit counts valid events")
	var times []int64
	for _, msgs := range readTopic(t, cfg, cfg.Topic("transaction")) {
		for _, m := range msgs {
			ev := decode(t, reg, string(m.Value))
			require.Equal(t, ev.Time, m.Time.UnixMilli(), "the message time moves with the event")
			times = append(times, ev.Time)
		}
	}
	require.Len(t, times, 3)
	slices.Sort(times)
	require.Equal(t, now.UnixMilli(), times[2], "the latest of the replayed events is now")
	// The spacing of the original events is kept.
	orig := []int64{}
	for _, l := range replayRows {
		if e, err := events.Decode(reg.Events["transaction"], []byte(l)); err == nil && len(orig) < 3 {
			orig = append(orig, e.Time)
		}
	}
	slices.Sort(orig)
	require.Equal(t, orig[1]-orig[0], times[1]-times[0])
	require.Equal(t, orig[2]-orig[1], times[2]-times[1])
}

// TestReplayWarnsOfLateRows: before publishing, a replay reads how far the
// topic's partitions already are in event time and says how many rows
// featurize will drop as late, per view; with --strict-lateness it
// publishes nothing. The expected counts are worked out here by hand from
// the partitions' known newest times.
func TestReplayWarnsOfLateRows(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	cfg := kafkaConfig(brokers)
	ensureTopics(t, cfg, reg)
	t.Chdir(t.TempDir())
	pub := newPublisher(t, cfg)
	now := time.Now().Truncate(time.Second)
	const hour = int64(3_600_000)
	live := now.UnixMilli()

	// The topic already holds a live event for u_1 only: its partition's
	// watermark is now; the other partitions are empty.
	require.NoError(t, pub.Publish(context.Background(), []events.Event{
		decode(t, reg, fmt.Sprintf(`{"txn_id":"live","user_id":"u_1","amount":1.0,"ts":%d}`, live)),
	}))
	// u_1 and a user on another partition, at the same old times.
	other := ""
	for i := 2; other == ""; i++ {
		if u := fmt.Sprintf("u_%d", i); partitionOf([]byte(u)) != partitionOf([]byte("u_1")) {
			other = u
		}
	}
	rows := []struct {
		user string
		t    int64
	}{
		{"u_1", live - 2*hour},  // behind u_1's partition by 2h: late for user_spend (1h), not merchant_activity (24h)
		{"u_1", live - 30*hour}, // 30h: late for both
		{other, live - 30*hour}, // its partition is empty: not late, and now its watermark
		{other, live - 32*hour}, // 2h behind that: late for user_spend
		{"u_1", live - 10*60_000},
	}
	var lines []string
	for i, r := range rows {
		lines = append(lines, fmt.Sprintf(`{"txn_id":"r%d","user_id":%q,"merchant_id":"m_1","amount":1.0,"ts":%d}`, i, r.user, r.t))
	}
	require.NoError(t, os.WriteFile("history.ndjson", []byte(strings.Join(lines, "\n")), 0o644))

	opt := ReplayOptions{Event: "transaction", Files: []string{"history.ndjson"}, StrictLateness: true}
	var stderr bytes.Buffer
	opt.Stderr = &stderr
	before := endOffsets(t, cfg, cfg.Topic("transaction"))
	sum, err := Replay(context.Background(), reg, pub, opt)
	var lateErr *LateError
	require.ErrorAs(t, err, &lateErr, stderr.String())
	require.Equal(t, before, endOffsets(t, cfg, cfg.Topic("transaction")), "--strict-lateness publishes nothing")
	require.Equal(t, int64(3), sum.Late.Rows)
	require.Equal(t, int64(5), sum.Late.Checked)
	require.Equal(t, []ViewLateness{{View: "merchant_activity", MaxLateness: 24 * hour, Rows: 1}, {View: "user_spend", MaxLateness: hour, Rows: 3}}, sum.Late.Views)
	require.Contains(t, stderr.String(), "3 of 5 rows are older than the newest event time of their Kafka partition minus max_lateness")
	require.Contains(t, stderr.String(), "user_spend: 3, max_lateness 1h")
	require.Contains(t, stderr.String(), "--rebase-time")
	require.Contains(t, stderr.String(), "featurize backfill")
	require.Contains(t, stderr.String(), "Nothing was published (--strict-lateness)")

	// Without it: the same warning, then everything is published, and the
	// closing line says how many rows will be dropped.
	opt.StrictLateness = false
	stderr.Reset()
	sum, err = Replay(context.Background(), reg, pub, opt)
	require.NoError(t, err)
	require.Equal(t, 5, sum.Published)
	require.Equal(t, int64(3), sum.Late.Rows)
	require.Contains(t, stderr.String(), "--strict-lateness refuses such a replay")
	require.Contains(t, stderr.String(), "0 invalid rows; 3 will be dropped as late by featurize (merchant_activity 1, user_spend 3)\n")

	// Moved to now, the same rows are late only against each other and
	// the topic (which is now at live): rows more than 1h behind it.
	opt.RebaseTime = true
	stderr.Reset()
	sum, err = Replay(context.Background(), reg, pub, opt)
	require.NoError(t, err)
	require.Equal(t, int64(3), sum.Late.Views[1].Rows, stderr.String())
}

// TestReplayRefusesImplausibleTimes: rows whose time is in the wrong unit
// are invalid rows naming the value and the likely unit; the others go.
func TestReplayRefusesImplausibleTimes(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	cfg := kafkaConfig(brokers)
	ensureTopics(t, cfg, reg)
	t.Chdir(t.TempDir())
	now := time.Now()
	rows := []string{
		fmt.Sprintf(`{"txn_id":"ok","user_id":"u_1","amount":1.0,"ts":%d}`, now.UnixMilli()),
		fmt.Sprintf(`{"txn_id":"us","user_id":"u_1","amount":1.0,"ts":%d}`, now.UnixMicro()),
		fmt.Sprintf(`{"txn_id":"s","user_id":"u_1","amount":1.0,"ts":%d}`, now.Unix()),
	}
	require.NoError(t, os.WriteFile("a.ndjson", []byte(strings.Join(rows, "\n")), 0o644))
	var stderr bytes.Buffer
	sum, err := Replay(context.Background(), reg, newPublisher(t, cfg), ReplayOptions{
		Event: "transaction", Files: []string{"a.ndjson"}, MaxErrors: 5, Rejects: "rejects.txt", Stderr: &stderr,
	})
	require.NoError(t, err)
	require.Equal(t, 1, sum.Published)
	require.Equal(t, 2, sum.Invalid)
	rejects, err := os.ReadFile("rejects.txt")
	require.NoError(t, err)
	got := strings.Split(strings.TrimSpace(string(rejects)), "\n")
	require.Len(t, got, 2)
	require.True(t, strings.HasPrefix(got[0], fmt.Sprintf("a.ndjson:2: field ts: implausible event time %d", now.UnixMicro())), got[0])
	require.Contains(t, got[0], "looks like epoch microseconds")
	require.Contains(t, got[0], `"txn_id":"us"`, "the row, as read")
	require.True(t, strings.HasPrefix(got[1], "a.ndjson:3: field ts:"), got[1])
	require.Contains(t, got[1], "looks like epoch seconds")
}
