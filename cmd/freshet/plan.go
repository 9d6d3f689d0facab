package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/schemas"
)

// plan is `freshet plan`: the definitions proposed against those featurize
// runs, and what Kafka retains for the views that start afresh.
func plan(args []string) error {
	cfg, cmd := cli.PlanCommand()
	return cmd.Run(args, func(ctx context.Context, rt *cli.Runtime) error {
		store.SetLogger(rt.Log) // go-redis's own lines to slog, as the services do
		st, err := cfg.Store.OpenReader()
		if err != nil {
			return fmt.Errorf("open online store: %w", err)
		}
		defer st.Close()
		if err := st.CheckReader(ctx); err != nil {
			return fmt.Errorf("online store: %w", err)
		}
		d, deployed, err := st.Deployed(ctx)
		if err != nil {
			return err
		}
		proposed := registry.Of(rt.Registry)
		rep := registry.Report{Schemas: cfg.Common.Schemas, Version: proposed.Version(), Events: []registry.EventChange{}}
		from := registry.Form{Events: map[string]registry.EventForm{}, Views: map[string]registry.ViewForm{}}
		if deployed {
			from = d.Form
			rep.Deployed = &d.Version
			if !d.At.IsZero() {
				rep.DeployedAt = &d.At
			}
			rep.Events = registry.EventChanges(from, proposed)
		}
		rep.Views = registry.Diff(from, proposed)
		if err := byGenerations(ctx, st, rt.Registry, proposed, rep.Views); err != nil {
			return err
		}
		kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := addHistory(kctx, cfg.Kafka, rep.Views, time.Now()); err != nil {
			return err
		}
		rep.Judge(cfg.AllowPartial)
		if cfg.JSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else if err := rep.WriteText(os.Stdout); err != nil {
			return err
		}
		if n := len(rep.Problems); n > 0 {
			return fmt.Errorf("plan: %d problem(s), listed above", n)
		}
		return nil
	})
}

// byGenerations corrects what Diff says of each view's state by the
// layouts featurize keeps (store.Gen): a proposed layout that is the
// view's current generation keeps its state, any other is recomputed. A
// store without generations keeps Diff's judgement.
func byGenerations(ctx context.Context, st *store.Redis, reg *schemas.Registry, proposed registry.Form, views []registry.ViewChange) error {
	gens, err := st.Generations(ctx)
	if err != nil || len(gens) == 0 {
		return err
	}
	for i := range views {
		vc := &views[i]
		g, ok := gens[vc.Name]
		v := reg.Views[vc.Name]
		if !ok || v == nil || vc.Change == registry.Removed {
			continue
		}
		l, err := aggregate.NewLayout(v)
		if err != nil {
			return err
		}
		vc.Recompute(g.Fingerprint != l.Fingerprint, proposed.Views[vc.Name])
	}
	return nil
}

// addHistory fills the history of the views that start afresh from what
// their topics retain.
func addHistory(ctx context.Context, kc broker.Config, views []registry.ViewChange, now time.Time) error {
	var topics []string
	for _, v := range views {
		if v.Afresh {
			topics = append(topics, kc.Topic(v.Source))
		}
	}
	if len(topics) == 0 {
		return nil
	}
	spans, err := kc.Spans(ctx, topics, true)
	if err != nil {
		return fmt.Errorf("what Kafka retains: %w", kc.Security.Explain(err))
	}
	for i := range views {
		if v := &views[i]; v.Afresh {
			v.History = history(kc.Topic(v.Source), spans[kc.Topic(v.Source)], v.NeedsMS, now)
		}
	}
	return nil
}

// history judges what a topic's partitions retain against the history a
// view needs before now: retained when every partition still starts at
// offset 0 (all that was ever written, however short; also a topic never
// created) or when its earliest message is at least that old.
func history(topic string, spans []broker.Span, needsMS int64, now time.Time) *registry.History {
	h := &registry.History{Topic: topic, Complete: true}
	for _, s := range spans {
		h.Messages += s.Messages()
		h.Complete = h.Complete && s.First == 0
		if s.Messages() > 0 && (h.Oldest == nil || s.FirstTime.Before(*h.Oldest)) {
			t := s.FirstTime
			h.Oldest = &t
		}
	}
	h.Retained = h.Complete || (h.Oldest != nil && !h.Oldest.After(now.Add(-time.Duration(needsMS)*time.Millisecond)))
	return h
}
