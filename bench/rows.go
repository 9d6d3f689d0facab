package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The goals.
var (
	goalServeMax    = &Goal{RatioAtLeast, 0.8} // highest sustained ≥ 0.8 × the floor's
	goalServeHalf   = &Goal{RatioAtMost, 1.5}  // p99 at half the floor's highest ≤ 1.5 × the floor's
	goalBatchP99    = &Goal{RatioAtMost, 2}    // batch-100 p99 ≤ 2 × the floor's
	goalFeaturize   = &Goal{AtLeast, 100_000}  // events/s with 10k entities
	goalFeaturize1M = &Goal{RatioAtLeast, 0.5} // ≥ 0.5 × direct writes with 1M entities
	goalReplay      = &Goal{RatioAtLeast, 0.7} // ≥ 0.7 × the Writer alone
	goalFreshness   = &Goal{AtMost, 100}       // p99 ms
)

// rateName writes a rate as the issue does: 1k, 5k, 10k, 500.
func rateName(r float64) string {
	if r >= 1000 && int(r)%1000 == 0 {
		return fmt.Sprintf("%dk", int(r)/1000)
	}
	return fmt.Sprintf("%.0f", r)
}

// percentiles lists a latency's percentiles by name.
func percentiles(l Latency) []struct {
	name string
	v    float64
} {
	return []struct {
		name string
		v    float64
	}{{"p50", l.P50}, {"p90", l.P90}, {"p99", l.P99}, {"p99.9", l.P999}}
}

func (b *bench) serveRows(t *serveTargets, heavy *heavyRuns) {
	floorMax := t.searches[nameFloor].Max
	directMax := t.searches[nameDirect].Max
	for _, fig := range []struct {
		section, name, half string
	}{{"serve single (10 features)", nameServe, "serve-half"}, {"Feast get-online-features", nameFeast, "feast-half"}} {
		for _, rate := range b.plan.Rates {
			got, floor := t.singleByRate[fig.name][rate], t.singleByRate[nameFloor][rate]
			fp := percentiles(floor.Latency)
			for k, pc := range percentiles(got.Latency) {
				row := Row{Section: fig.section, Figure: fmt.Sprintf("%s at %s req/s", pc.name, rateName(rate)), Unit: "ms",
					Value: pc.v, LimitName: "floor handler", Limit: fp[k].v}
				row.Note = runNote(got)
				b.rep.Add(row)
			}
		}
		max := t.searches[fig.name].Max
		b.rep.Add(Row{Section: fig.section, Figure: "highest rate sustained", Unit: "req/s", Value: max,
			LimitName: "floor handler", Limit: floorMax, Goal: goalServeMax, Profile: "serve-max"})
		b.rep.Add(Row{Section: fig.section, Figure: "highest rate sustained", Unit: "req/s", Value: max,
			LimitName: "go-redis HGETALL", Limit: directMax})
		if t.half > 0 {
			b.rep.Add(Row{Section: fig.section, Figure: fmt.Sprintf("p99 at half the floor's highest (%.0f req/s)", t.half), Unit: "ms",
				Value: t.halfRuns[fig.name].Latency.P99, LimitName: "floor handler", Limit: t.halfRuns[nameFloor].Latency.P99,
				Goal: goalServeHalf, Profile: fig.half})
		}
	}
	b.rep.Add(Row{Section: "serve single (10 features)", Figure: "floor's highest rate sustained", Unit: "req/s", Value: floorMax,
		LimitName: "go-redis HGETALL", Limit: directMax})
	for _, rate := range b.plan.BatchRates {
		got, floor := t.batchRuns[nameServeBatch][rate], t.batchRuns[nameFloorBatch][rate]
		fp := percentiles(floor.Latency)
		for k, pc := range percentiles(got.Latency) {
			row := Row{Section: fmt.Sprintf("serve batch of %d", b.plan.BatchSize), Figure: fmt.Sprintf("%s at %s req/s", pc.name, rateName(rate)),
				Unit: "ms", Value: pc.v, LimitName: "floor handler", Limit: fp[k].v, Note: runNote(got)}
			if pc.name == "p99" {
				row.Goal, row.Profile = goalBatchP99, fmt.Sprintf("batch-%.0f", rate)
			}
			b.rep.Add(row)
		}
	}

	d := Detail{Title: fmt.Sprintf("Serve latency, open loop (ms from the intended send time; sustained means p99 ≤ %s and no error)", b.plan.SLO),
		Header: []string{"target", "req/s", "due", "answered", "errors", "p50", "p90", "p99", "p99.9", "max", "p99 ÷ go-redis p99"}}
	directP99 := map[float64]float64{}
	for _, r := range t.runs {
		if r.Target == nameDirect || r.Target == nameDirectBatch {
			directP99[r.Rate] = r.Result.Latency.P99
		}
	}
	for _, r := range t.runs {
		l := r.Result.Latency
		ratio := ""
		if dp := directP99[r.Rate]; dp > 0 {
			ratio = num(l.P99 / dp)
		}
		d.Rows = append(d.Rows, []string{r.Target, rateName(r.Rate), fmt.Sprint(r.Result.Scheduled), fmt.Sprint(r.Result.Done), fmt.Sprint(r.Result.Errors),
			num(l.P50), num(l.P90), num(l.P99), num(l.P999), num(l.Max), ratio})
	}
	for _, name := range []string{nameFloor, nameServe, nameFeast} {
		if r, ok := t.halfRuns[name]; ok {
			l := r.Latency
			d.Rows = append(d.Rows, []string{name + " (half the floor's highest)", fmt.Sprintf("%.0f", t.half), fmt.Sprint(r.Scheduled), fmt.Sprint(r.Done), fmt.Sprint(r.Errors),
				num(l.P50), num(l.P90), num(l.P99), num(l.P999), num(l.Max), ""})
		}
	}
	if heavy != nil {
		section := fmt.Sprintf("serve single, heavy entities (%s events each, %s-field hashes)", num(float64(heavy.ds.Events)/float64(heavy.ds.Entities)), num(heavy.fields))
		floor := heavy.runs[nameFloor].Latency
		for _, name := range []string{nameServe, nameFeast} {
			l := heavy.runs[name].Latency
			what := "GET /v1/features"
			if name == nameFeast {
				what = "Feast"
			}
			b.rep.Add(Row{Section: section, Figure: fmt.Sprintf("%s p50 at %s req/s", what, rateName(heavy.rate)), Unit: "ms", Value: l.P50, LimitName: "floor handler", Limit: floor.P50})
			b.rep.Add(Row{Section: section, Figure: fmt.Sprintf("%s p99 at %s req/s", what, rateName(heavy.rate)), Unit: "ms", Value: l.P99, LimitName: "floor handler", Limit: floor.P99})
		}
		for _, name := range []string{nameServe, nameFeast, nameFloor, nameDirect} {
			r := heavy.runs[name]
			l := r.Latency
			d.Rows = append(d.Rows, []string{name + " (heavy entities)", rateName(heavy.rate), fmt.Sprint(r.Scheduled), fmt.Sprint(r.Done), fmt.Sprint(r.Errors),
				num(l.P50), num(l.P90), num(l.P99), num(l.P999), num(l.Max), num(l.P99 / heavy.runs[nameDirect].Latency.P99)})
		}
	}
	b.rep.Details = append(b.rep.Details, d)
	s := Detail{Title: "Highest rate sustained: trials (req/s: p99 ms, ✓ sustained)", Header: []string{"target", "highest", "trials"}}
	for _, name := range []string{nameServe, nameFeast, nameFloor, nameDirect} {
		sr := t.searches[name]
		var tr []string
		for _, x := range sr.Trials {
			mark := "✗"
			if x.Pass {
				mark = "✓"
			}
			tr = append(tr, fmt.Sprintf("%.0f: %s %s", x.Rate, num(x.P99), mark))
		}
		s.Rows = append(s.Rows, []string{name, fmt.Sprintf("%.0f", sr.Max), strings.Join(tr, ", ")})
	}
	b.rep.Details = append(b.rep.Details, s)
	state := func(ds *dataset) string {
		v := b.samples[ds][serveView]
		return fmt.Sprintf("the %s-entity topic (%s events per entity: %s's hashes hold %s fields, %.0f bytes)",
			entName(ds.Entities), num(float64(ds.Events)/float64(ds.Entities)), serveView, num(v.Fields), v.Bytes)
	}
	note := "Serve's figures read the state featurize wrote for " + state(b.serveDS) + ", picking entities across all of them"
	if heavy != nil {
		note += "; the heavy-entity rows read the state of " + state(heavy.ds)
	}
	b.rep.Notes = append(b.rep.Notes, note+". go-redis and the floor handler read the same keys. "+
		"Before the serve phase Redis rewrote its append-only file (BGREWRITEAOF on a Redis the harness started) and the harness waited for it, "+
		"so that the rewrite's fork of a Redis of millions of keys does not land in a latency run. "+
		"The floor handler runs inside the harness's process, beside the load generator, as the issue asks: on 2 CPUs shared by the "+
		"load generator, Redis and serve, it is spared the wake-ups and switches of a process of its own, which weigh on serve's tail (p99) "+
		"more than on its median.")
	if b.plan.Search.Cap > 0 {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("The highest-rate search doubles from %.0f req/s up to %.0f and bisects %d times; "+
			"each trial sends for %s, and the four targets' searches take turns, one trial each. All four share the machine with the load generator, "+
			"which caps what any of them can show.",
			b.plan.Search.Start, b.plan.Search.Cap, b.plan.Search.Refine, b.plan.SearchPhase))
	}
}

func (b *bench) featurizeRows(figs []*featurizeFigure) {
	d := Detail{Title: "Featurize topics", Header: []string{"entities", "events", "Writer (batches of 10000) ev/s", "Reader alone ev/s",
		"featurize ev/s", "go-redis writes alone ev/s", "featurize wall (start to caught up)", "redelivered (duplicates skipped)", "featurize peak RSS", "Redis used_memory delta"}}
	for _, f := range figs {
		section := fmt.Sprintf("featurize, %s entities", entName(f.ds.Entities))
		if f.ds.Entities == 1 {
			section = "featurize, 1 entity"
		}
		row := Row{Section: section, Figure: fmt.Sprintf("events/s, topic of %s events", entName(f.ds.Events)), Unit: "events/s",
			Value: f.feat, LimitName: "kafka-go Reader alone", Limit: f.read}
		if f.ds.Entities == 10_000 {
			row.Goal, row.Profile = goalFeaturize, "featurize-"+f.ds.Name
		}
		b.rep.Add(row)
		row = Row{Section: section, Figure: fmt.Sprintf("events/s, topic of %s events", entName(f.ds.Events)), Unit: "events/s",
			Value: f.feat, LimitName: "go-redis pipelined writes alone", Limit: f.direct}
		if f.ds.Entities == 1_000_000 {
			row.Goal, row.Profile = goalFeaturize1M, "featurize-"+f.ds.Name
		}
		b.rep.Add(row)
		d.Rows = append(d.Rows, []string{entName(f.ds.Entities), entName(f.ds.Events), fmt.Sprintf("%.0f", f.write), fmt.Sprintf("%.0f", f.read),
			fmt.Sprintf("%.0f", f.feat), fmt.Sprintf("%.0f", f.direct), fmt.Sprintf("%.1f s", float64(f.catchUpMillis)/1000), fmt.Sprint(f.duplicates),
			fmt.Sprintf("%d MiB", f.featurizeRSS>>20), fmt.Sprintf("%.0f MB", float64(f.usedAfter-f.usedBefore)/1e6)})
	}
	b.rep.Details = append(b.rep.Details, d)
	m := Detail{Title: "Redis bytes per entity per view (MEMORY USAGE of up to 200 sampled keys)",
		Header: []string{"entities", "events per entity", "view", "bytes/entity", "hash fields", "tile value bytes"}}
	for _, f := range figs {
		for _, v := range b.views {
			s := f.memory[v]
			m.Rows = append(m.Rows, []string{entName(f.ds.Entities), num(float64(f.ds.Events) / float64(f.ds.Entities)), v,
				fmt.Sprintf("%.0f", s.Bytes), num(s.Fields), num(s.TileBytes)})
			b.rep.Add(Row{Section: "memory", Figure: fmt.Sprintf("Redis bytes per entity, %s, %s entities × %s events", v, entName(f.ds.Entities),
				num(float64(f.ds.Events)/float64(f.ds.Entities))), Unit: "B", Value: s.Bytes})
		}
	}
	b.rep.Details = append(b.rep.Details, m)
	b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("Featurize topics: %s events 10 ms apart in event time (ending a minute before the run), user i mod N and "+
		"merchant i·7919 mod N for N entities, 6 partitions; each event updates three views (bench/schemas/bench.yaml). featurize's rate runs "+
		"from its first micro-batch in Redis to its last, so start-up and the group join do not count; the Reader's from its first message to its last. "+
		"The direct writes are featurize's micro-batches of %d events as one HSET (tiles touched, version, newest time, offset) and a PEXPIRE "+
		"per entity and view, pipelined in 4 concurrent shards, without featurize's reads, merge and compare-and-set script; each batch's commands are built off the clock.",
		entName(b.plan.FeaturizeEvents), featurizeDefaults().BatchSize))
}

func (b *bench) ingestRows(f ingestFigure) {
	b.rep.Add(Row{Section: "ingest", Figure: fmt.Sprintf("HTTP NDJSON batches of %d, 4 clients (%s events)", b.plan.IngestBatch, entName(f.httpEvents)),
		Unit: "events/s", Value: f.http, LimitName: "kafka-go Writer alone, 4 batches in flight", Limit: f.writer4})
	b.rep.Add(Row{Section: "ingest", Figure: fmt.Sprintf("Parquet replay (%s events)", entName(f.replayEvents)), Unit: "events/s",
		Value: f.replay, LimitName: "kafka-go Writer alone, one batch at a time", Limit: f.writer, Goal: goalReplay, Profile: "replay"})
	b.rep.Notes = append(b.rep.Notes, "The ingest limits are kafka-go's Writer as ingest configures it (acks=all, murmur2, lz4, "+
		"batch timeout 2 ms) writing pre-encoded events of the same shape in batches of 1000: one at a time, as replay publishes, "+
		"and four at once, as the four HTTP clients make ingest publish; "+
		"replay's time is the wall time of `ingest replay` (process start, reading and validating the Parquet file included).")
}

func (b *bench) freshnessRows(f freshFigure, h *hdrhistogram.Histogram) {
	for _, pc := range []struct {
		name string
		v    float64
		goal *Goal
	}{{"p50", f.fresh.P50, nil}, {"p99", f.fresh.P99, goalFreshness}} {
		row := Row{Section: "freshness", Figure: fmt.Sprintf("%s, ingest 202 → visible through serve, at %.0f events/s", pc.name, f.rate),
			Unit: "ms", Value: pc.v, Goal: pc.goal}
		if pc.goal != nil {
			row.Profile = "freshness"
		}
		b.rep.Add(row)
	}
	l := f.requests.Latency
	b.rep.Details = append(b.rep.Details, Detail{Title: "Freshness", Header: []string{"events/s", "probes", "never visible", "p50", "p90", "p99", "max", "ingest request p50", "ingest request p99"},
		Rows: [][]string{{fmt.Sprintf("%.0f", f.rate), fmt.Sprint(f.probes), fmt.Sprint(f.lost), num(f.fresh.P50), num(f.fresh.P90), num(f.fresh.P99), num(f.fresh.Max), num(l.P50), num(l.P99)}}})
	st := Detail{Title: "Where freshness goes: the services' own histograms during the freshness phase (quantiles interpolated within buckets)",
		Header: []string{"stage", "p50", "p99", "mean", "count"}}
	for _, s := range freshStages {
		h := f.stages[s.metric]
		if h == nil || h.Count == 0 {
			continue
		}
		scale, unit := 1000.0, " ms"
		if !strings.HasSuffix(s.metric, "_seconds") {
			scale, unit = 1, ""
		}
		st.Rows = append(st.Rows, []string{s.meaning, num(scale*h.Quantile(0.5)) + unit, num(scale*h.Quantile(0.99)) + unit, num(scale*h.Mean()) + unit, fmt.Sprintf("%.0f", h.Count)})
	}
	b.rep.Details = append(b.rep.Details, st)
	b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("Freshness: ingest, featurize and serve run together (default settings: featurize batch wait %s); "+
		"%d-event NDJSON requests keep up %.0f events/s on an open-loop clock (after %s unmeasured at that rate); every %dth request carries a probe event of a new user, "+
		"polled through serve after its 202 until PRESENT, every 2 ms or every twentieth of the wait so far, whichever is longer (so each figure is at most 2 ms or 5%% late).", featurizeDefaults().BatchWait, freshEventsPerRequest, f.rate, b.plan.FreshWarm, probeEvery))
}

// memoryRows adds each service's peak RSS.
func (b *bench) memoryRows() {
	sort.SliceStable(b.rss, func(i, j int) bool { return b.rss[i].service < b.rss[j].service })
	for _, r := range b.rss {
		b.rep.Add(Row{Section: "memory", Figure: fmt.Sprintf("%s peak RSS (%s)", r.service, r.phase), Unit: "MiB", Value: float64(r.bytes) / (1 << 20)})
	}
	if pid := b.env.KafkaPID; pid > 0 {
		if v, err := vmHWM(pid); err == nil {
			b.rep.Add(Row{Section: "memory", Figure: "Kafka broker peak RSS (JVM, -Xmx512m)", Unit: "MiB", Value: float64(v) / (1 << 20)})
		}
	}
}

// entName writes a count as the issue does: 1, 10k, 1M.
func entName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// machineRows tells how busy the machine was in each phase, and by whom.
func (b *bench) machineRows() {
	d := Detail{Title: "Machine use per phase (share of all CPUs)", Header: []string{"phase", "seconds", "busy", "used by processes outside this run"}}
	for _, u := range b.uses {
		d.Rows = append(d.Rows, []string{u.Phase, fmt.Sprintf("%.0f", u.Seconds), fmt.Sprintf("%.0f%%", 100*u.Busy), fmt.Sprintf("%.0f%%", 100*u.Others)})
		if u.Others > 0.1 {
			b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("During the %s phase, processes outside this run used %.0f%% of the machine: "+
				"its figures and limits are disturbed (ratios less so, as both sides of each were measured under the same load).", u.Phase, 100*u.Others))
		}
	}
	if !b.env.KafkaStarted {
		d.Rows = append(d.Rows, []string{"(the reused Kafka broker counts as outside this run)", "", "", ""})
	}
	b.rep.Details = append(b.rep.Details, d)
}

// runNote says when a run's percentiles are not those of a target that kept
// up: it fell behind (cut) or failed requests.
func runNote(r Result) string {
	switch {
	case r.Cut:
		return fmt.Sprintf("(fell behind: %d of %d answered within 3 s of the run's end; percentiles are lower bounds)", r.Done-r.Errors, r.Scheduled)
	case r.Errors > 0:
		return fmt.Sprintf("(%d of %d requests failed)", r.Errors, r.Scheduled)
	}
	return ""
}
