package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/freshet-ml/freshet/bench/internal/synth"
	"github.com/freshet-ml/freshet/pipeline/arrowio"
)

// ingestFigure is what the ingest phase measured, in events/s.
type ingestFigure struct {
	http, replay, writer, writer4 float64
	httpEvents                    int
	replayEvents                  int
	httpRSS, replayRSS            int64
}

// ingestPhase measures ingest over HTTP (NDJSON batches) and by Parquet
// replay, and kafka-go's Writer alone writing the same events the way
// replay does (batches of 1000, one at a time).
func (b *bench) ingestPhase(ctx context.Context) error {
	var f ingestFigure
	if err := b.ingestHTTP(ctx, &f); err != nil {
		return err
	}
	if err := b.replay(ctx, &f); err != nil {
		return err
	}
	b.ingestRows(f)
	return nil
}

// ingestHTTP posts NDJSON batches to an ingest process from four clients
// at once, as fast as it answers.
func (b *bench) ingestHTTP(ctx context.Context, f *ingestFigure) error {
	ds := b.newDataset("http", 10_000, b.plan.IngestEvents)
	p, err := b.env.Start(ctx, "ingest-http", "ingest", settings{"FRESHET_TOPIC_PREFIX": ds.TopicPrefix}, true)
	if err != nil {
		return err
	}
	defer p.Stop()
	g := synth.NewTransactions(b.typ, synth.Spec{Users: ds.Entities, Merchants: 1000, Seed: 11, Start: ds.Start, Cycle: true})
	var bodies [][]byte
	for lo := 0; lo < ds.Events; lo += b.plan.IngestBatch {
		var body bytes.Buffer
		for i := lo; i < min(lo+b.plan.IngestBatch, ds.Events); i++ {
			body.Write(g.NextJSON())
			body.WriteByte('\n')
		}
		bodies = append(bodies, body.Bytes())
	}
	u := p.URL() + "/v1/events/transaction"
	// One batch first: topic metadata and connections.
	if err := b.postEvents(ctx, u, bodies[0]); err != nil {
		return err
	}
	next := make(chan []byte)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	err = b.prof.Phase(ctx, "ingest-http", func() error {
		t := time.Now()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for body := range next {
					if err := b.postEvents(ctx, u, body); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
				}
			}()
		}
		for _, body := range bodies[1:] {
			next <- body
		}
		close(next)
		wg.Wait()
		f.httpEvents = ds.Events - len(bytes.Split(bytes.TrimSpace(bodies[0]), []byte("\n")))
		f.http = float64(f.httpEvents) / time.Since(t).Seconds()
		return firstErr
	})
	if err != nil {
		return err
	}
	f.httpRSS = p.PeakRSS()
	b.rss = append(b.rss, rssFigure{"ingest", "HTTP, NDJSON batches of 1000", f.httpRSS})
	b.log.Info("ingest: HTTP", "events/s", int(f.http))
	if err := p.Stop(); err != nil {
		return err
	}
	wds := b.newDataset("writer4", ds.Entities, ds.Events)
	_, msgs, err := b.generate(wds)
	if err != nil {
		return err
	}
	if f.writer4, err = b.writeTopic(ctx, wds, msgs, b.plan.IngestBatch, 4); err != nil {
		return err
	}
	b.log.Info("ingest: kafka-go Writer alone, 4 batches of 1000 in flight", "events/s", int(f.writer4))
	return nil
}

// postEvents posts one NDJSON body and expects 202.
func (b *bench) postEvents(ctx context.Context, u string, body []byte) error {
	_, err := b.call(ctx, http.MethodPost, u, "application/x-ndjson", body, http.StatusAccepted)
	return err
}

// replay writes the events to a Parquet file, writes the same events with
// kafka-go's Writer alone (the limit), then times `ingest replay` of the
// file.
func (b *bench) replay(ctx context.Context, f *ingestFigure) error {
	wds := b.newDataset("writer", 10_000, b.plan.ReplayEvents)
	evs, msgs, err := b.generate(wds)
	if err != nil {
		return err
	}
	file := filepath.Join(b.env.Work, "replay.parquet")
	if err := arrowio.WriteEvents(file, b.typ, evs, 128_000); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	evs = nil
	if f.writer, err = b.writeTopic(ctx, wds, msgs, 1000, 1); err != nil {
		return err
	}
	msgs = nil
	b.log.Info("ingest: kafka-go Writer alone, batches of 1000 one at a time", "events/s", int(f.writer))

	// The topic exists before the clock starts, as the Writer's did.
	rds := b.newDataset("replay", 10_000, b.plan.ReplayEvents)
	rcfg := b.kafkaConfig(rds)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = rcfg.EnsureTopics(tctx, []string{rds.Topic()})
	cancel()
	if err != nil {
		return fmt.Errorf("create topic %s: %w", rds.Topic(), err)
	}
	err = b.prof.Phase(ctx, "replay", func() error {
		t := time.Now()
		p, err := b.env.Start(ctx, "ingest-replay", "ingest", settings{"FRESHET_TOPIC_PREFIX": rds.TopicPrefix}, false,
			"replay", "--event", "transaction", file)
		if err != nil {
			return err
		}
		if err := p.Wait(ctx); err != nil {
			return err
		}
		f.replay = float64(rds.Events) / time.Since(t).Seconds()
		f.replayEvents = rds.Events
		f.replayRSS = p.PeakRSS()
		return nil
	})
	if err != nil {
		return err
	}
	b.rss = append(b.rss, rssFigure{"ingest replay", "Parquet replay", f.replayRSS})
	b.log.Info("ingest: Parquet replay", "events/s", int(f.replay))
	return nil
}
