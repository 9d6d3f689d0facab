package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/freshet-ml/freshet/bench/internal/synth"
)

// freshEventsPerRequest is how many events each ingest request of the
// freshness phase carries.
const freshEventsPerRequest = 50

// probeEvery makes every probeEvery-th request carry a probe: an event of a
// user seen nowhere else, polled through serve until it shows.
const probeEvery = 10

// freshFigure is what the freshness phase measured.
type freshFigure struct {
	rate     float64
	fresh    Latency
	probes   int64
	lost     int64
	requests Result
	// stages are the services' own histograms of the phase, by metric.
	stages map[string]*promHist
}

// freshStages are the services' histograms that tell where the time from
// ingest's 202 to serve goes, in pipeline order.
var freshStages = []struct{ proc, metric, meaning string }{
	{"ingest", "freshet_ingest_kafka_write_duration_seconds", "ingest: one Kafka write, until acks=all"},
	{"featurize", "freshet_featurize_end_to_end_delay_seconds", "featurize: ingest acceptance → micro-batch in Redis, per message"},
	{"featurize", "freshet_featurize_batch_duration_seconds", "featurize: plan and apply of one micro-batch"},
	{"featurize", "freshet_featurize_batch_messages", "featurize: messages per micro-batch (count, not seconds)"},
	{"serve", "freshet_serve_store_read_duration_seconds", "serve: one Redis read, decoding included"},
}

// freshnessPhase runs ingest, featurize and serve together under a steady
// event rate and measures, for probe events, the time from ingest's 202 to
// the first serve answer that shows them.
func (b *bench) freshnessPhase(ctx context.Context) error {
	ds := b.newDataset("fresh", 10_000, 0)
	set := settings{"FRESHET_TOPIC_PREFIX": ds.TopicPrefix, "FRESHET_GROUP_ID": ds.Group, "FRESHET_REDIS_PREFIX": ds.RedisPrefix}
	ing, err := b.env.Start(ctx, "ingest-fresh", "ingest", set, true)
	if err != nil {
		return err
	}
	defer ing.Stop()
	feat, err := b.env.Start(ctx, "featurize-fresh", "featurize", set, true)
	if err != nil {
		return err
	}
	defer feat.Stop()
	srv, err := b.env.Start(ctx, "serve-fresh", "serve", set, true)
	if err != nil {
		return err
	}
	defer srv.Stop()

	var mu sync.Mutex
	g := synth.NewTransactions(b.typ, synth.Spec{Users: ds.Entities, Merchants: 1000, Seed: 13, Cycle: true,
		Now: func() int64 { return time.Now().UnixMilli() }})
	var probeSeq atomic.Int64
	body := func(probe string) []byte {
		mu.Lock()
		defer mu.Unlock()
		var buf bytes.Buffer
		for range freshEventsPerRequest - 1 {
			buf.Write(g.NextJSON())
			buf.WriteByte('\n')
		}
		if probe == "" {
			buf.Write(g.NextJSON())
		} else {
			fmt.Fprintf(&buf, `{"txn_id":"%s","user_id":"%s","merchant_id":"m0001","amount":1.5,"items":1,"card_present":true,"ts":%d}`,
				probe, probe, time.Now().UnixMilli())
		}
		buf.WriteByte('\n')
		return buf.Bytes()
	}
	ingestURL := ing.URL() + "/v1/events/transaction"
	probeURL := func(p string) string { return srv.URL() + "/v1/features/" + serveView + "/" + p }
	newProbe := func() string { return fmt.Sprintf("p%s-%d", b.id, probeSeq.Add(1)) }

	// First, a probe until it shows: featurize has joined its group.
	warm := newProbe()
	if err := b.postEvents(ctx, ingestURL, body(warm)); err != nil {
		return err
	}
	if _, err := b.waitVisible(ctx, probeURL(warm), 60*time.Second); err != nil {
		return fmt.Errorf("the first event never showed through serve: %w", err)
	}

	// Then the steady rate for a while, unmeasured: Kafka's JIT, the
	// services' pools and featurize's batching settle.
	warmRun := OpenLoop{Rate: b.plan.FreshRate / freshEventsPerRequest, Duration: b.plan.FreshWarm, MaxInFlight: 256}.Run(ctx,
		func(ctx context.Context, i int) error { return b.postEvents(ctx, ingestURL, body("")) })
	if warmRun.Errors > 0 {
		return fmt.Errorf("ingest failed %d of %d warm-up requests, first: %s", warmRun.Errors, warmRun.Scheduled, warmRun.FirstError)
	}

	hist := newHist()
	var (
		hmu          sync.Mutex
		polls        sync.WaitGroup
		probes, lost atomic.Int64
		firstLost    atomic.Pointer[string]
	)
	f := freshFigure{rate: b.plan.FreshRate}
	reqRate := b.plan.FreshRate / freshEventsPerRequest
	err = b.prof.Phase(ctx, "freshness", func() error {
		f.requests = OpenLoop{Rate: reqRate, Duration: b.plan.FreshFor, MaxInFlight: 256}.Run(ctx, func(ctx context.Context, i int) error {
			probe := ""
			if i%probeEvery == probeEvery-1 {
				probe = newProbe()
			}
			if err := b.postEvents(ctx, ingestURL, body(probe)); err != nil {
				return err
			}
			if probe == "" {
				return nil
			}
			accepted := time.Now()
			probes.Add(1)
			polls.Add(1)
			go func() {
				defer polls.Done()
				seen, err := b.waitVisible(ctx, probeURL(probe), 10*time.Second)
				if err != nil {
					if lost.Add(1) == 1 {
						s := err.Error()
						firstLost.Store(&s)
					}
					return
				}
				hmu.Lock()
				record(hist, seen.Sub(accepted))
				hmu.Unlock()
			}()
			return nil
		})
		polls.Wait()
		return nil
	})
	if err != nil {
		return err
	}
	f.fresh, f.probes, f.lost = Summarize(hist), probes.Load(), lost.Load()
	f.stages = map[string]*promHist{}
	for _, p := range []*Proc{ing, feat, srv} {
		var names []string
		for _, st := range freshStages {
			if p.Name == st.proc+"-fresh" {
				names = append(names, st.metric)
			}
		}
		hs, err := b.scrape(ctx, p, names...)
		if err != nil {
			b.log.Warn("scrape metrics", "error", err)
			continue
		}
		for k, v := range hs {
			f.stages[k] = v
		}
	}
	b.log.Info("freshness", "events/s", b.plan.FreshRate, "probes", f.probes, "p50 ms", f.fresh.P50, "p99 ms", f.fresh.P99,
		"ingest p99 ms", f.requests.Latency.P99, "ingest errors", f.requests.Errors)
	for _, p := range []*Proc{ing, feat, srv} {
		b.rss = append(b.rss, rssFigure{p.Name[:len(p.Name)-len("-fresh")], fmt.Sprintf("freshness, %.0f events/s", b.plan.FreshRate), p.PeakRSS()})
	}
	b.freshnessRows(f, hist)
	if f.requests.Errors > 0 {
		return fmt.Errorf("ingest failed %d of %d requests at %.0f events/s, first: %s", f.requests.Errors, f.requests.Scheduled, b.plan.FreshRate, f.requests.FirstError)
	}
	if f.lost > 0 {
		return fmt.Errorf("%d of %d probe events never showed through serve: %s", f.lost, f.probes, *firstLost.Load())
	}
	return ctx.Err()
}

// waitVisible polls a serve lookup until its status is PRESENT and returns
// when the answer that showed it arrived. It polls every 2 ms at first, then
// every twentieth of the time waited so far: each figure is at most 5% (or
// 2 ms) late, and a slow pipeline is not buried under polls.
func (b *bench) waitVisible(ctx context.Context, u string, timeout time.Duration) (time.Time, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		var got struct {
			Status string `json:"status"`
		}
		err := b.getJSON(ctx, u, &got)
		now := time.Now()
		if err == nil && got.Status == "PRESENT" {
			return now, nil
		}
		if now.After(deadline) {
			if err == nil {
				err = fmt.Errorf("status %s", got.Status)
			}
			return now, fmt.Errorf("%s not visible after %s: %w", u, timeout, err)
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-time.After(max(2*time.Millisecond, now.Sub(start)/20)):
		}
	}
}
