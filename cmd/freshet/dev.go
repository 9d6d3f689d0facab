package main

import (
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/devmode"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// dev runs everything embedded: `freshet dev`.
func dev(args []string) error {
	fs := flag.NewFlagSet("freshet dev", flag.ContinueOnError)
	var cfg devmode.Config
	fs.StringVar(&cfg.Schemas, "schemas", "schemas/example", "feature definitions")
	fs.StringVar(&cfg.Sample, "sample", "", "NDJSON sample events, replayed so that the last one is now (default: events.ndjson beside the definitions)")
	fs.StringVar(&cfg.Event, "event", "", "event type of the sample (default: the only one defined)")
	fs.IntVar(&cfg.KafkaPort, "kafka-port", 9092, "port of the embedded Kafka-protocol broker (a free one when taken)")
	fs.IntVar(&cfg.RedisPort, "redis-port", 6379, "port of the embedded Redis-protocol store (a free one when taken)")
	fs.StringVar(&cfg.IngestAddr, "ingest-addr", ":8081", "ingest HTTP address")
	fs.StringVar(&cfg.FeaturizeAddr, "featurize-addr", ":8082", "featurize health address")
	fs.StringVar(&cfg.ServeAddr, "serve-addr", ":8080", "serve HTTP address")
	fs.DurationVar(&cfg.LiveEvery, "live-every", 2*time.Second, "send a few live events this often; 0 for none")
	cmd := toolCommand(fs, "freshet dev [flags]",
		"Run everything in one process: a Kafka-protocol broker (kfake), a Redis-protocol store (miniredis),\n"+
			"ingest, featurize and serve, with the sample replayed so that its last event is now and a small live\n"+
			"feed; print curl commands that work as printed. Ctrl-C stops it.", false)
	if _, err := cmd.Parse(args); err != nil {
		return err
	}
	log := slog.New(app.TraceHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "freshet-dev", telemetry.WithLogger(log))
	if err != nil {
		return err
	}
	defer shutdown(ctx)
	cfg.Telemetry = tel
	return devmode.Run(ctx, cfg, os.Stdout, log)
}
