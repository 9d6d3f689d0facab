// Command featurize consumes events from Kafka and keeps the feature views'
// tiles in Redis, effectively once.
//
//	featurize                  run the consumer
//	featurize rebuild [--clear] recompute the online store from Kafka's retained events
//	featurize backfill ...     point-in-time training data from event files
package main

import (
	"flag"
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
	if len(os.Args) > 1 && os.Args[1] == "backfill" {
		backfillCmd(os.Args[2:])
		return
	}
	rebuild := len(os.Args) > 1 && os.Args[1] == "rebuild"
	args := os.Args[1:]
	cfg, fs := cli.NewFeaturize()
	var clear bool
	if rebuild {
		args = args[1:]
		fs.Init("featurize rebuild", fs.ErrorHandling())
		fs.BoolVar(&clear, "clear", false, "delete the views' online state before rebuilding")
	}
	app.Parse(fs, args, cfg.Validators()...)
	log := cfg.Common.Logger(os.Stderr)
	if err := run(cfg, fs, log, rebuild, clear); err != nil {
		app.Fatal(log, fs.Name()+" failed", err)
	}
}

// run is featurize, or with rebuild `featurize rebuild`.
func run(cfg *cli.Featurize, fs *flag.FlagSet, log *slog.Logger, rebuild, clear bool) error {
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "featurize", telemetry.WithLogger(log))
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer app.Close(ctx, log, "telemetry", shutdown)
	log.Info("starting "+fs.Name(), append(config.Effective(fs), tel.LogAttrs()...)...)

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
		log.Info("rebuild done", "messages", stats["messages"], "applied", stats["applied"], "duplicates", stats["duplicates"], "late", stats["late"])
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
	fs := flag.NewFlagSet("featurize backfill", flag.ContinueOnError)
	var common app.Common
	common.RegisterFlags(fs)
	var evs, views config.Strings
	var opt backfill.Options
	fs.Var(&evs, "events", "event files (any replay format); more files may follow the flag")
	fs.StringVar(&opt.Spine, "spine", "", "spine file: rows with an entity and a time column, plus any columns passed through")
	fs.StringVar(&opt.Out, "out", "", "output file: .parquet, .arrow, .feather, .arrows or .csv")
	fs.Var(&views, "view", "feature view to compute (repeatable; default: every view)")
	fs.StringVar(&opt.EntityColumn, "entity-column", "", "spine column of the entity (default: each view's entity field)")
	fs.StringVar(&opt.AtColumn, "at-column", "", "spine column of the time (default: the event's timestamp field)")
	fs.IntVar(&opt.MaxErrors, "max-errors", 0, "invalid event rows tolerated before the backfill fails")
	fs.StringVar(&opt.Rejects, "rejects", "", "file receiving every invalid event row")
	rest, err := config.ParseInterspersed(fs, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "featurize backfill: %v\n", err)
		os.Exit(2)
	}
	opt.Events, opt.Views, opt.Stderr = append(evs, rest...), views, os.Stderr
	if len(opt.Events) == 0 || opt.Spine == "" || opt.Out == "" {
		fmt.Fprintln(os.Stderr, "featurize backfill: --events, --spine and --out are required")
		os.Exit(2)
	}
	if err := common.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "featurize backfill: %v\n", err)
		os.Exit(2)
	}
	log := common.Logger(os.Stderr)
	reg, err := common.Load()
	if err != nil {
		app.Fatal(log, "load definitions", err)
	}
	ctx, stop := app.Context()
	defer stop()
	if _, err := backfill.Run(ctx, reg, opt); err != nil {
		app.Fatal(log, "backfill", err)
	}
}
