// Command ingest accepts events over HTTP, validates them and publishes them
// to Kafka; `ingest replay` publishes the events of files.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/ingest"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replay" {
		replay(os.Args[2:])
		return
	}
	cfg, fs := cli.NewIngest()
	app.Parse(fs, os.Args[1:], cfg.Validators()...)
	log := cfg.Common.Logger(os.Stderr)
	if err := run(cfg, fs, log); err != nil {
		app.Fatal(log, "ingest failed", err)
	}
}

func run(cfg *cli.Ingest, fs *flag.FlagSet, log *slog.Logger) error {
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "ingest", telemetry.WithLogger(log))
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer app.Close(ctx, log, "telemetry", shutdown)
	log.Info("starting ingest", append(config.Effective(fs), tel.LogAttrs()...)...)

	reg, err := cfg.Common.Load()
	if err != nil {
		return err
	}
	w := cfg.Ingest.Kafka.NewWriter()
	defer w.Close()
	pub := ingest.NewPublisher(cfg.Ingest.Kafka, w, ingest.WithTelemetry(tel))
	srv := ingest.NewServer(reg, pub, cfg.Ingest, log, ingest.WithTelemetry(tel))
	l, err := httpx.Listen(cfg.Ingest.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return srv.Run(ctx, l)
}

// replay is `ingest replay --event NAME [--speed X] [--max-errors N]
// [--rejects FILE] FILE...`.
func replay(args []string) {
	cfg, fs := cli.NewIngest()
	fs.Init("ingest replay", fs.ErrorHandling())
	opt := ingest.ReplayFlags(fs)
	app.Parse(fs, args, cfg.Validators()...)
	log := cfg.Common.Logger(os.Stderr)
	opt.Files = fs.Args()
	if err := runReplay(cfg, opt, log); err != nil {
		app.Fatal(log, "replay failed", err)
	}
}

func runReplay(cfg *cli.Ingest, opt *ingest.ReplayOptions, log *slog.Logger) error {
	reg, err := cfg.Common.Load()
	if err != nil {
		return err
	}
	if reg.Events[opt.Event] == nil {
		return fmt.Errorf("--event %q is not an event type of %s", opt.Event, cfg.Common.Schemas)
	}
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "ingest", telemetry.WithLogger(log))
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer app.Close(ctx, log, "telemetry", shutdown)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cfg.Ingest.Kafka.EnsureTopics(tctx, []string{cfg.Ingest.Kafka.Topic(opt.Event)})
	cancel()
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	w := cfg.Ingest.Kafka.NewWriter()
	_, err = ingest.Replay(ctx, reg, ingest.NewPublisher(cfg.Ingest.Kafka, w, ingest.WithTelemetry(tel)), *opt)
	if cerr := w.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
