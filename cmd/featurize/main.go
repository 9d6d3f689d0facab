// Command featurize consumes events from Kafka and keeps the feature views'
// tiles in Redis, effectively once.
//
//	featurize                   run the consumer
//	featurize rebuild [--clear] recompute the online store from Kafka's retained events
//	featurize backfill ...      point-in-time training data from event files
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/backfill"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

func main() {
	sub := ""
	if len(os.Args) > 1 {
		sub = os.Args[1]
	}
	switch sub {
	case "backfill":
		backfillCmd(os.Args[2:])
		return
	case "rebuild":
		cfg, cmd := cli.RebuildCommand()
		app.Start(cmd, os.Args[2:], cfg.Validators()...)
		log := cli.Logger(&cfg.Common)
		if err := run(&cfg.Featurize, cmd, log, true, cfg.Clear); err != nil {
			app.Fatal(log, "featurize rebuild failed", err)
		}
		return
	}
	cfg, cmd := cli.FeaturizeCommand()
	app.Start(cmd, os.Args[1:], cfg.Validators()...)
	log := cli.Logger(&cfg.Common)
	if err := run(cfg, cmd, log, false, false); err != nil {
		app.Fatal(log, "featurize failed", err)
	}
}

// run is featurize, or with rebuild `featurize rebuild`.
func run(cfg *cli.Featurize, cmd *app.Command, log *slog.Logger, rebuild, clear bool) error {
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "featurize", telemetry.WithLogger(log))
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer app.Close(ctx, log, "telemetry", shutdown)
	log.Info("starting "+cmd.Flags.Name(), append(config.Effective(cmd.Flags), tel.LogAttrs()...)...)

	reg, err := cfg.Common.Load()
	if err != nil {
		return err
	}
	store.SetLogger(log)
	st, err := cfg.Store.Open(tel.InstrumentRedis)
	if err != nil {
		return fmt.Errorf("open online store: %w", err)
	}
	defer st.Close()
	if rebuild {
		stats, err := featurize.Rebuild(ctx, cfg.Featurize, reg, st, featurize.RebuildOptions{Clear: clear}, log)
		if err != nil {
			return err
		}
		log.Info("rebuild done", "messages", stats["messages"], "applied", stats["applied"], "duplicates", stats["duplicates"],
			"late", stats["late"], "rejected_time", stats["rejected_time"])
		return nil
	}
	svc, err := featurize.NewService(cfg.Featurize, reg, st, log, featurize.WithTelemetry(tel))
	if err != nil {
		return fmt.Errorf("build featurize: %w", err)
	}
	l, err := httpx.Listen(cfg.Featurize.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return svc.Run(ctx, l)
}

// backfillCmd is `featurize backfill --events FILE... --spine FILE --out FILE
// [--view V ...] [--entity-column NAME] [--at-column NAME]`.
func backfillCmd(args []string) {
	cfg, cmd := cli.BackfillCommand()
	files := app.Start(cmd, args, cfg.Validators()...)
	opt := cfg.Options
	opt.Events, opt.Stderr = append(opt.Events, files...), os.Stderr
	if len(opt.Events) == 0 || opt.Spine == "" || opt.Out == "" {
		os.Exit(app.ExitCode(cmd.Fail(errors.New("--events, --spine and --out are required"))))
	}
	log := cli.Logger(&cfg.Common)
	reg, err := cfg.Common.Load()
	if err != nil {
		app.Fatal(log, "load definitions", err)
	}
	ctx, stop := app.Context()
	defer stop()
	if _, err := backfill.Run(ctx, reg, opt); err != nil {
		app.Fatal(log, "backfill", err)
	}
}
