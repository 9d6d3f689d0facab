package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

// now is the pinned "now" of the test servers: 2024-06-01T00:00:00Z.
var now = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

// transactions are hand-written events of the example schema. At now, u_1
// has t2..t4 in its last hour and 24h, and t1 as well in its 7 days; u_2
// has one transaction without merchant or items.
var transactions = []string{
	`{"txn_id":"t1","user_id":"u_1","ts":"2024-05-29T12:00:00Z","amount":100.0,"merchant_id":"m_c","items":5,"card_present":true}`,
	`{"txn_id":"t2","user_id":"u_1","ts":"2024-05-31T23:10:00Z","amount":10.0,"merchant_id":"m_a","items":2,"card_present":true}`,
	`{"txn_id":"t3","user_id":"u_1","ts":"2024-05-31T23:30:00Z","amount":25.5,"merchant_id":"m_b","items":1,"card_present":false}`,
	`{"txn_id":"t4","user_id":"u_1","ts":"2024-05-31T23:50:00.250Z","amount":4.5,"merchant_id":"m_a","items":3,"card_present":true}`,
	`{"txn_id":"t5","user_id":"u_2","ts":1717199700000,"amount":7,"card_present":false}`,
}

// clickSchema has an int entity and two views keyed by it.
const clickSchema = `
events:
  click:
    key: user
    timestamp: ts
    fields: {user: int, page: string, dwell: float, n: int}
feature_views:
  clicks:
    source: click
    entity: user
    features:
      clicks_1h:    {agg: count, window: 1h, hop: 1m}
      dwell_sum_1h: {agg: sum, field: dwell, window: 1h, hop: 1m}
  pages:
    source: click
    entity: user
    features:
      last_page: {agg: last, field: page, window: 1d}
      n_sum_1d:  {agg: sum, field: n, window: 1d}
`

// clicks: user 42 clicks twice in the hour before now, user 7 once.
var clicks = []string{
	`{"user":42,"ts":"2024-05-31T23:00:00Z","page":"/a","dwell":1.5,"n":3}`,
	`{"user":42,"ts":"2024-05-31T23:30:00Z","page":"/b","dwell":2.0,"n":4}`,
	`{"user":7,"ts":"2024-05-31T23:45:00Z","page":"/c","dwell":0.25,"n":1}`,
}

func clickRegistry(tb testing.TB) *schemas.Registry {
	tb.Helper()
	reg, err := schemas.Parse("clicks.yaml", []byte(clickSchema))
	require.NoError(tb, err)
	return reg
}

// redisStore is an online store on the test Redis, under a fresh prefix.
func redisStore(tb testing.TB) *store.Redis {
	tb.Helper()
	_, c := testenv.Redis(tb)
	return store.NewRedis(c, testenv.Unique("serve-test:"))
}

func decodeAll(tb testing.TB, typ *schemas.Event, lines []string) []events.Event {
	tb.Helper()
	out := make([]events.Event, len(lines))
	for i, line := range lines {
		ev, err := events.Decode(typ, []byte(line))
		require.NoError(tb, err, "event %d", i)
		out[i] = ev
	}
	return out
}

// load applies events of the named type to every view computed from it, as
// featurize would: one unit per entity from one source partition, offsets
// increasing in event order. Events without the view's entity are skipped.
func load(tb testing.TB, reg *schemas.Registry, st store.Online, event string, lines []string) {
	tb.Helper()
	evs := decodeAll(tb, reg.Events[event], lines)
	for _, v := range reg.ViewsOf(event) {
		l, err := aggregate.NewLayout(v)
		require.NoError(tb, err)
		idx := map[string]int{}
		var units []store.Unit
		for i := range evs {
			ent := evs[i].Values[l.EntityIndex()]
			if !ent.Present() {
				continue
			}
			j, ok := idx[ent.Text()]
			if !ok {
				j = len(units)
				idx[ent.Text()] = j
				units = append(units, store.Unit{Entity: ent.Text(), Source: event + "/0"})
			}
			u := &units[j]
			u.Offsets = append(u.Offsets, int64(i))
			u.Events = append(u.Events, &evs[i])
		}
		res, err := st.Apply(context.Background(), l, units)
		require.NoError(tb, err)
		for i, r := range res {
			require.Equal(tb, len(units[i].Offsets), r.Applied, "view %s entity %s", v.Name, units[i].Entity)
		}
	}
}

// testConfig is the default configuration with a small entity limit.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.MaxEntities = 5
	return cfg
}

// newServer serves st over HTTP with the clock pinned at now and returns
// the server and its base URL.
func newServer(tb testing.TB, reg *schemas.Registry, st store.Reader, cfg Config) (*Server, string) {
	tb.Helper()
	s, err := New(reg, st, cfg, nil, WithClock(func() time.Time { return now }))
	require.NoError(tb, err)
	hs := httptest.NewServer(s.Handler())
	tb.Cleanup(hs.Close)
	return s, hs.URL
}

// exampleServer serves the example definitions with the transactions
// loaded into the test Redis.
func exampleServer(tb testing.TB) string {
	tb.Helper()
	reg := testenv.Registry(tb)
	st := redisStore(tb)
	load(tb, reg, st, "transaction", transactions)
	_, url := newServer(tb, reg, st, testConfig())
	return url
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func do(tb testing.TB, method, url, body string) answer {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(tb, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return answer{resp.StatusCode, resp.Header, b}
}

func get(tb testing.TB, url string) answer { tb.Helper(); return do(tb, http.MethodGet, url, "") }

func post(tb testing.TB, url, body string) answer {
	tb.Helper()
	return do(tb, http.MethodPost, url, body)
}

// requireOK checks a 200 JSON answer.
func requireOK(tb testing.TB, a answer) {
	tb.Helper()
	require.Equal(tb, http.StatusOK, a.status, "body: %s", a.body)
	require.Equal(tb, "application/json", a.header.Get("Content-Type"))
	require.True(tb, json.Valid(a.body), "invalid JSON: %s", a.body)
}

// requireError checks an error answer: the status, a JSON body
// {"error": msg}, and that msg holds every part.
func requireError(tb testing.TB, a answer, status int, parts ...string) {
	tb.Helper()
	require.Equal(tb, status, a.status, "body: %s", a.body)
	require.Equal(tb, "application/json", a.header.Get("Content-Type"))
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(tb, json.Unmarshal(a.body, &e), "body: %s", a.body)
	for _, p := range parts {
		require.Contains(tb, e.Error, p)
	}
}

// object is a decoded JSON object that remembers its key order and keeps
// each member as raw JSON text, so tests see number formatting (3 against
// 3.0) exactly as written.
type object struct {
	keys []string
	m    map[string]json.RawMessage
}

func decodeObject(tb testing.TB, raw []byte) object {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	require.NoError(tb, err)
	require.Equal(tb, json.Delim('{'), tok, "not an object: %s", raw)
	o := object{m: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(tb, err)
		k := tok.(string)
		var v json.RawMessage
		require.NoError(tb, dec.Decode(&v))
		require.NotContains(tb, o.m, k, "duplicate key %q", k)
		o.keys = append(o.keys, k)
		o.m[k] = v
	}
	return o
}

func (o object) text(tb testing.TB, key string) string {
	tb.Helper()
	v, ok := o.m[key]
	require.True(tb, ok, "no member %q in %v", key, o.keys)
	return string(v)
}

func (o object) object(tb testing.TB, key string) object {
	tb.Helper()
	return decodeObject(tb, []byte(o.text(tb, key)))
}

func (o object) array(tb testing.TB, key string) []json.RawMessage {
	tb.Helper()
	var a []json.RawMessage
	require.NoError(tb, json.Unmarshal(o.m[key], &a), "member %q", key)
	return a
}

// texts is a JSON array's elements as raw JSON text.
func texts(a []json.RawMessage) []string {
	out := make([]string, len(a))
	for i, r := range a {
		out[i] = string(r)
	}
	return out
}

// feature is an expected feature value: exact JSON text, or a float
// compared within a tolerance when approx is set.
type feature struct {
	name   string
	text   string
	approx bool
	f      float64
}

func exact(name, text string) feature     { return feature{name: name, text: text} }
func near(name string, f float64) feature { return feature{name: name, approx: true, f: f} }

// requireFeatures checks the features object: the names in order and each
// value.
func requireFeatures(tb testing.TB, got object, want []feature) {
	tb.Helper()
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = w.name
	}
	require.Equal(tb, names, got.keys, "feature names and order")
	for _, w := range want {
		g := got.text(tb, w.name)
		if !w.approx {
			require.Equal(tb, w.text, g, "feature %s", w.name)
			continue
		}
		var x float64
		require.NoError(tb, json.Unmarshal([]byte(g), &x), "feature %s = %s", w.name, g)
		require.InDelta(tb, w.f, x, 1e-9, "feature %s", w.name)
		require.True(tb, strings.ContainsAny(g, ".eE"), "feature %s = %s is a float written as an integer", w.name, g)
	}
}

// countingStore records the entities of every Read; the rest goes to the
// store it wraps, which load writes through.
type countingStore struct {
	store.Online
	mu    sync.Mutex
	reads [][]string
}

func (c *countingStore) Read(ctx context.Context, l *aggregate.Layout, entities []string) ([]*aggregate.State, error) {
	c.mu.Lock()
	c.reads = append(c.reads, slices.Clone(entities))
	c.mu.Unlock()
	return c.Online.Read(ctx, l, entities)
}

func (c *countingStore) Reads() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reads)
}

var _ store.Online = (*countingStore)(nil)

// memStore is a store.Reader in memory, built from events with the
// aggregate package; fuzz targets and examples use it.
type memStore struct {
	states map[string]map[string]*aggregate.State // view, entity
}

var _ store.Reader = (*memStore)(nil)

func newMemStore(tb testing.TB, reg *schemas.Registry, event string, lines []string) *memStore {
	tb.Helper()
	m, err := buildMemStore(reg, event, lines)
	require.NoError(tb, err)
	return m
}

func buildMemStore(reg *schemas.Registry, event string, lines []string) (*memStore, error) {
	m := &memStore{states: map[string]map[string]*aggregate.State{}}
	evs := make([]events.Event, len(lines))
	for i, line := range lines {
		ev, err := events.Decode(reg.Events[event], []byte(line))
		if err != nil {
			return nil, err
		}
		evs[i] = ev
	}
	for _, v := range reg.ViewsOf(event) {
		l, err := aggregate.NewLayout(v)
		if err != nil {
			return nil, err
		}
		tiles := map[string]*aggregate.Tiles{}
		for i := range evs {
			ent := evs[i].Values[l.EntityIndex()]
			if !ent.Present() {
				continue
			}
			if tiles[ent.Text()] == nil {
				tiles[ent.Text()] = l.NewTiles()
			}
			tiles[ent.Text()].Add(&evs[i])
		}
		m.states[v.Name] = map[string]*aggregate.State{}
		for e, t := range tiles {
			m.states[v.Name][e] = t.State()
		}
	}
	return m, nil
}

// Read implements store.Reader: the states built, or none.
func (m *memStore) Read(_ context.Context, l *aggregate.Layout, entities []string) ([]*aggregate.State, error) {
	out := make([]*aggregate.State, len(entities))
	for i, e := range entities {
		if st := m.states[l.View.Name][e]; st != nil {
			out[i] = st
		} else {
			out[i] = &aggregate.State{Groups: make([][]aggregate.Tile, len(l.Groups))}
		}
	}
	return out, nil
}

// Ping implements store.Reader: memory always answers.
func (m *memStore) Ping(context.Context) error { return nil }

// Deployed says no definitions were recorded: the memory store has no
// featurize.
func (m *memStore) Deployed(context.Context) (store.Deployment, bool, error) {
	return store.Deployment{}, false, nil
}

// Generations says no generations were recorded.
func (m *memStore) Generations(context.Context) (map[string]store.Gen, error) { return nil, nil }

// Progress has no catch-up to report.
func (m *memStore) Progress(context.Context, store.Gen) (*store.CatchUpProgress, error) {
	return nil, nil
}

// FollowGens has nothing to follow.
func (m *memStore) FollowGens(context.Context) error { return nil }

// postArrow posts a batch lookup asking for an Arrow IPC stream and returns
// its one record and a column getter by name.
func postArrow(tb testing.TB, url, body string) (arrow.Record, func(name string) arrow.Array) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(tb, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", ArrowStream)
	res, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	raw, err := io.ReadAll(res.Body)
	require.NoError(tb, res.Body.Close())
	require.NoError(tb, err)
	require.Equal(tb, http.StatusOK, res.StatusCode, "body: %s", raw)
	require.Equal(tb, ArrowStream, res.Header.Get("Content-Type"))
	r, err := ipc.NewReader(bytes.NewReader(raw))
	require.NoError(tb, err)
	tb.Cleanup(r.Release)
	require.True(tb, r.Next())
	rec := r.Record()
	rec.Retain()
	tb.Cleanup(rec.Release)
	require.False(tb, r.Next(), "one record")
	return rec, func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		require.Len(tb, idx, 1, name)
		return rec.Column(idx[0])
	}
}
