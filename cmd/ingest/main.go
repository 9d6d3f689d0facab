// Command ingest accepts events over HTTP, validates them and publishes them
// to Kafka; `ingest replay` publishes the events of files.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
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
	cfg, cmd := cli.IngestCommand()
	app.Start(cmd, os.Args[1:], cfg.Validators()...)
	log := cli.Logger(&cfg.Common)
	if err := run(cfg, cmd, log); err != nil {
		app.Fatal(log, "ingest failed", err)
	}
}

func run(cfg *cli.Ingest, cmd *app.Command, log *slog.Logger) error {
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "ingest", telemetry.WithLogger(log))
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer app.Close(ctx, log, "telemetry", shutdown)
	log.Info("starting ingest", append(config.Effective(cmd.Flags), tel.LogAttrs()...)...)

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

// replay is `ingest replay --event NAME [flags] FILE...`.
func replay(args []string) {
	cfg, cmd := cli.ReplayCommand()
	files := app.Start(cmd, args, cfg.Validators()...)
	if len(files) == 0 {
		os.Exit(app.ExitCode(cmd.Fail(errors.New("no file to replay: name one or more after the flags"))))
	}
	log := cli.Logger(&cfg.Common)
	opt := cfg.Replay
	opt.Files = files
	if err := runReplay(&cfg.Ingest, opt, log); err != nil {
		app.Fatal(log, "replay failed", err)
	}
}

func runReplay(cfg *cli.Ingest, opt *ingest.ReplayOptions, log *slog.Logger) error {
	reg, err := cfg.Common.Load()
	if err != nil {
		return err
	}
	if reg.Events[opt.Event] == nil {
		return fmt.Errorf("--event %q is not an event type of %s; event types: %s", opt.Event, cfg.Common.Schemas, strings.Join(reg.EventNames(), ", "))
	}
	opt.Times = &cfg.Ingest.Times
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
