package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/freshet-ml/freshet/pipeline/store"
)

// serveRun is one open-loop run of one target at one rate.
type serveRun struct {
	Target string  `json:"target"`
	Rate   float64 `json:"rate"`
	Result Result  `json:"result"`
}

// serveSearch is the highest-rate search of one target.
type serveSearch struct {
	Target string  `json:"target"`
	Max    float64 `json:"max"`
	Trials []Trial `json:"trials"`
}

// serveTargets are the targets of the serve phase.
type serveTargets struct {
	serve, feast, floor, direct         *target
	serveBatch, floorBatch, directBatch *target
	runs                                []serveRun
	searches                            map[string]*serveSearch
	half                                float64
	halfRuns                            map[string]Result
	batchRuns                           map[string]map[float64]Result
	singleByRate                        map[string]map[float64]Result
}

const (
	nameServe       = "serve GET /v1/features"
	nameFeast       = "serve POST /get-online-features"
	nameFloor       = "floor handler (HGETALL)"
	nameDirect      = "go-redis HGETALL"
	nameServeBatch  = "serve POST /v1/features (100)"
	nameFloorBatch  = "floor handler (100 pipelined HGETALL)"
	nameDirectBatch = "go-redis 100 pipelined HGETALL"
)

// lookupTargets are serve's endpoints and their limits on one topic's state.
type lookupTargets struct {
	serve, feast, floor, direct         *target
	serveBatch, floorBatch, directBatch *target
	closers                             []func()
}

// Close releases the floor server and the Redis clients.
func (lt *lookupTargets) Close() {
	for _, c := range lt.closers {
		c()
	}
}

// newLookupTargets starts a serve process and the floor handler on ds's
// state, checks serve's answers, and builds the targets: entities are
// picked across all of ds's users.
func (b *bench) newLookupTargets(ctx context.Context, name string, ds *dataset) (*lookupTargets, *Proc, error) {
	p, err := b.env.Start(ctx, name, "serve", settings{"FRESHET_REDIS_PREFIX": ds.RedisPrefix}, true)
	if err != nil {
		return nil, nil, err
	}
	if err := b.checkServe(ctx, p.URL(), ds); err != nil {
		_ = p.Stop()
		return nil, nil, err
	}
	lt := &lookupTargets{}
	l := b.layouts[serveView]
	st := store.NewRedis(nil, ds.RedisPrefix)
	key := func(entity string) string { return st.Key(l, entity) }
	ids := make([]string, ds.Entities)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%06d", i)
	}
	ent := func(i int) string { return ids[int(uint64(i)*2654435761%uint64(len(ids)))] }
	floorRC, err := b.redisClient()
	if err != nil {
		return nil, nil, err
	}
	directRC, err := b.redisClient()
	if err != nil {
		return nil, nil, err
	}
	fl, err := startFloor(floorRC, key)
	if err != nil {
		return nil, nil, err
	}
	lt.closers = append(lt.closers, fl.Close, func() { _ = floorRC.Close() }, func() { _ = directRC.Close() })

	features := feastFeatures(b)
	feast := func(i int) []byte {
		body, _ := json.Marshal(map[string]any{"features": features, "entities": map[string][]string{"user_id": {ent(i)}}})
		return body
	}
	batchBody := func(i int) []byte {
		entities := make([]string, b.plan.BatchSize)
		for j := range entities {
			entities[j] = ent(i*b.plan.BatchSize + j)
		}
		body, _ := json.Marshal(map[string]any{"entities": entities})
		return body
	}
	lt.serve = httpTarget(nameServe, b.client, get(func(i int) string { return p.URL() + "/v1/features/" + serveView + "/" + url.PathEscape(ent(i)) }))
	lt.feast = httpTarget(nameFeast, b.client, post(p.URL()+"/get-online-features", feast))
	lt.floor = httpTarget(nameFloor, b.client, get(func(i int) string { return fl.URL + "/floor/" + url.PathEscape(ent(i)) }))
	lt.direct = redisTarget(directRC, func(i int) string { return key(ent(i)) })
	lt.serveBatch = httpTarget(nameServeBatch, b.client, post(p.URL()+"/v1/features/"+serveView, batchBody))
	lt.floorBatch = httpTarget(nameFloorBatch, b.client, post(fl.URL+"/floor", batchBody))
	lt.directBatch = redisBatchTarget(directRC, b.plan.BatchSize, func(i, j int) string { return key(ent(i*b.plan.BatchSize + j)) })
	lt.direct.name, lt.directBatch.name = nameDirect, nameDirectBatch
	return lt, p, nil
}

// servePhase measures serve against its limits on the state featurize
// wrote for the serve topic, then single lookups of heavier entities.
func (b *bench) servePhase(ctx context.Context) error {
	ds := b.serveDS
	if ds == nil {
		return fmt.Errorf("no featurized state to serve")
	}
	if err := b.settleRedis(ctx); err != nil {
		return err
	}
	lt, p, err := b.newLookupTargets(ctx, "serve", ds)
	if err != nil {
		return err
	}
	defer lt.Close()
	defer p.Stop()
	t := &serveTargets{
		serve: lt.serve, feast: lt.feast, floor: lt.floor, direct: lt.direct,
		serveBatch: lt.serveBatch, floorBatch: lt.floorBatch, directBatch: lt.directBatch,
		searches: map[string]*serveSearch{}, halfRuns: map[string]Result{},
		batchRuns: map[string]map[float64]Result{}, singleByRate: map[string]map[float64]Result{},
	}
	singles := []*target{t.serve, t.feast, t.floor, t.direct}
	batches := []*target{t.serveBatch, t.floorBatch, t.directBatch}

	// Warm up: connections, caches, the JIT of nothing (Go) but the pools.
	for _, tg := range append(append([]*target{}, singles...), batches...) {
		OpenLoop{Rate: 200, Duration: min(500*time.Millisecond, b.plan.Phase)}.Run(ctx, tg.do)
	}
	for _, rate := range b.plan.Rates {
		for _, tg := range singles {
			r := b.open(ctx, tg, rate, b.plan.Phase)
			t.runs = append(t.runs, serveRun{tg.name, rate, r})
			if t.singleByRate[tg.name] == nil {
				t.singleByRate[tg.name] = map[float64]Result{}
			}
			t.singleByRate[tg.name][rate] = r
		}
	}
	// The four searches take turns, a trial each, so that load from
	// elsewhere on the machine falls on all of them alike.
	err = b.prof.Phase(ctx, "serve-max", func() error {
		states := make([]*Searching, len(singles))
		for i := range singles {
			states[i] = b.plan.Search.Begin()
		}
		for progressed := true; progressed && ctx.Err() == nil; {
			progressed = false
			for i, tg := range singles {
				rate, ok := states[i].Next()
				if !ok {
					continue
				}
				r := b.open(ctx, tg, rate, b.plan.SearchPhase)
				states[i].Record(r.Sustained(b.plan.SLO), r.Latency.P99)
				progressed = true
			}
		}
		for i, tg := range singles {
			t.searches[tg.name] = &serveSearch{Target: tg.name, Max: states[i].Best(), Trials: states[i].Trials}
			b.log.Info("serve: highest rate sustained", "target", tg.name, "req/s", states[i].Best())
		}
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	if fmax := t.searches[nameFloor].Max; fmax > 0 {
		t.half = fmax / 2
		for _, tg := range []*target{t.floor, t.serve, t.feast} {
			tg := tg
			run := func() error { t.halfRuns[tg.name] = b.open(ctx, tg, t.half, b.plan.Phase); return nil }
			if tg == t.floor {
				_ = run()
			} else {
				_ = b.prof.Phase(ctx, map[*target]string{t.serve: "serve-half", t.feast: "feast-half"}[tg], run)
			}
		}
	}
	for _, rate := range b.plan.BatchRates {
		for _, tg := range batches {
			tg := tg
			run := func() error {
				r := b.open(ctx, tg, rate, b.plan.Phase)
				if t.batchRuns[tg.name] == nil {
					t.batchRuns[tg.name] = map[float64]Result{}
				}
				t.batchRuns[tg.name][rate] = r
				t.runs = append(t.runs, serveRun{tg.name, rate, r})
				return nil
			}
			if tg == t.serveBatch {
				_ = b.prof.Phase(ctx, fmt.Sprintf("batch-%.0f", rate), run)
			} else {
				_ = run()
			}
		}
	}
	b.rss = append(b.rss, rssFigure{"serve", fmt.Sprintf("serve phase, %s entities", entName(ds.Entities)), p.PeakRSS()})
	if err := p.Stop(); err != nil {
		return err
	}
	heavy, err := b.heavyLookups(ctx)
	if err != nil {
		return err
	}
	b.serveRows(t, heavy)
	for _, tg := range append(singles, batches...) {
		if n := tg.badStatus.Load(); n > 0 {
			return fmt.Errorf("%s answered %d requests with an error status, first: %s", tg.name, n, *tg.lastBad.Load())
		}
	}
	return ctx.Err()
}

// heavyRuns are single lookups of entities with many events.
type heavyRuns struct {
	ds   *dataset
	rate float64
	runs map[string]Result
	// fields is the mean number of fields of the view's hashes.
	fields float64
}

// heavyLookups measures single lookups at one rate on the state of the
// topic with fewer entities (more events each, so larger hashes), beside
// the same limits.
func (b *bench) heavyLookups(ctx context.Context) (*heavyRuns, error) {
	ds := b.heavyDS
	if ds == nil || ds == b.serveDS {
		return nil, nil
	}
	lt, p, err := b.newLookupTargets(ctx, "serve-heavy", ds)
	if err != nil {
		return nil, err
	}
	defer lt.Close()
	defer p.Stop()
	h := &heavyRuns{ds: ds, rate: b.plan.HeavyRate, runs: map[string]Result{}}
	if s, err := b.sampleViews(ctx, ds); err == nil {
		h.fields = s[serveView].Fields
	}
	for _, tg := range []*target{lt.serve, lt.feast, lt.floor, lt.direct} {
		OpenLoop{Rate: 200, Duration: min(500*time.Millisecond, b.plan.Phase)}.Run(ctx, tg.do)
		h.runs[tg.name] = b.open(ctx, tg, h.rate, b.plan.Phase)
		if n := tg.badStatus.Load(); n > 0 {
			return nil, fmt.Errorf("%s answered %d requests with an error status, first: %s", tg.name, n, *tg.lastBad.Load())
		}
	}
	b.rss = append(b.rss, rssFigure{"serve", fmt.Sprintf("serve phase, %s entities", entName(ds.Entities)), p.PeakRSS()})
	return h, p.Stop()
}

// open runs one open-loop phase and logs it.
func (b *bench) open(ctx context.Context, tg *target, rate float64, d time.Duration) Result {
	r := OpenLoop{Rate: rate, Duration: d, MaxInFlight: 512, Grace: 3 * time.Second}.Run(ctx, tg.do)
	b.log.Info("open loop", "target", tg.name, "rate", rate, "done", r.Done, "errors", r.Errors,
		"p50", r.Latency.P50, "p99", r.Latency.P99, "p99.9", r.Latency.P999, "max", r.Latency.Max)
	if r.Cut {
		b.log.Info("the target fell behind: run cut 3 s after its last request was due", "target", tg.name, "rate", rate, "answered", r.Done, "of", r.Scheduled)
	} else if r.Errors > 0 {
		b.log.Warn("requests failed", "target", tg.name, "rate", rate, "errors", r.Errors, "first", r.FirstError)
	}
	time.Sleep(200 * time.Millisecond) // let the backlog of a failed rate drain
	return r
}

// feastFeatures names the serve view's features as Feast's SDK does.
func feastFeatures(b *bench) []string {
	var out []string
	for _, f := range b.reg.Views[serveView].Features {
		out = append(out, serveView+":"+f.Name)
	}
	return out
}

// redisClient is a new go-redis client on the run's Redis, with go-redis's
// default pool, as serve's.
func (b *bench) redisClient() (*redis.Client, error) {
	opt, err := redis.ParseURL(b.env.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return redis.NewClient(opt), nil
}

// checkServe makes sure serve answers what featurize wrote before timing
// it: a present entity with its 10 features, by every endpoint measured.
func (b *bench) checkServe(ctx context.Context, base string, ds *dataset) error {
	var one struct {
		Status   string         `json:"status"`
		Features map[string]any `json:"features"`
	}
	if err := b.getJSON(ctx, base+"/v1/features/"+serveView+"/u000000", &one); err != nil {
		return err
	}
	if one.Status != "PRESENT" || len(one.Features) != 10 {
		return fmt.Errorf("serve answered status %q with %d features for u000000, want PRESENT with 10", one.Status, len(one.Features))
	}
	if one.Features["txn_count_24h"] == float64(0) {
		return fmt.Errorf("serve answered txn_count_24h 0 for u000000, which has %d events in the last hours", ds.Events/ds.Entities)
	}
	body := fmt.Sprintf(`{"features":["%s:txn_count_1h"],"entities":{"user_id":["u000001"]}}`, serveView)
	if err := b.postOK(ctx, base+"/get-online-features", body); err != nil {
		return err
	}
	return b.postOK(ctx, base+"/v1/features/"+serveView, `{"entities":["u000001","u000002"]}`)
}

// getJSON GETs u and decodes its 200 answer into v.
func (b *bench) getJSON(ctx context.Context, u string, v any) error {
	body, err := b.call(ctx, http.MethodGet, u, "", nil, http.StatusOK)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// postOK POSTs a JSON body to u and expects 200.
func (b *bench) postOK(ctx context.Context, u, body string) error {
	_, err := b.call(ctx, http.MethodPost, u, "application/json", []byte(body), http.StatusOK)
	return err
}

// call sends one request and returns its answer's body; any status but
// want is an error naming it and the start of the body.
func (b *bench) call(ctx context.Context, method, u, contentType string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		if len(out) > 300 {
			out = out[:300]
		}
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, out)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, u, err)
	}
	return out, nil
}

// settleRedis makes sure no AOF rewrite forks Redis in the middle of the
// latency runs: after the featurize topics, Redis holds millions of keys
// and its append-only file has grown enough to trigger one. On a Redis this
// run started it rewrites the file now and waits; on a reused one it only
// waits for a rewrite or save already running.
func (b *bench) settleRedis(ctx context.Context) error {
	rc := b.env.Redis
	if b.env.RedisStarted {
		if err := rc.BgRewriteAOF(ctx).Err(); err != nil && !strings.Contains(err.Error(), "already in progress") {
			return fmt.Errorf("redis BGREWRITEAOF: %w", err)
		}
	}
	t := time.Now()
	deadline := t.Add(3 * time.Minute)
	for {
		info, err := rc.Info(ctx, "persistence").Result()
		if err != nil {
			return fmt.Errorf("redis INFO persistence: %w", err)
		}
		busy := strings.Contains(info, "aof_rewrite_in_progress:1") || strings.Contains(info, "rdb_bgsave_in_progress:1") ||
			strings.Contains(info, "aof_rewrite_scheduled:1")
		if !busy {
			b.log.Info("redis settled: no AOF rewrite or save running", "waited", time.Since(t).Round(100*time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			b.log.Warn("redis still rewriting its AOF after 3 minutes; measuring anyway")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
