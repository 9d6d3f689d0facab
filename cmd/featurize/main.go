// Command featurize consumes events from Kafka and keeps the feature views'
// tiles in Redis, effectively once.
//
//	featurize                   run the consumer
//	featurize rebuild [--clear] recompute the online store from Kafka's retained events
//	featurize backfill ...      point-in-time training data from event files
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/freshet-ml/freshet/pipeline/backfill"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/featurize"
)

func main() {
	switch args := os.Args[1:]; {
	case len(args) > 0 && args[0] == "rebuild":
		rebuild(args[1:])
	case len(args) > 0 && args[0] == "backfill":
		backfillCmd(args[1:])
	default:
		run(args)
	}
}

// run is the consumer: `featurize [flags]`.
func run(args []string) {
	cfg, cmd := cli.FeaturizeCommand()
	cli.Main(cmd, args, func(ctx context.Context, rt *cli.Runtime) error {
		svc, err := featurize.NewService(cfg.Featurize, rt.Registry, rt.Store, rt.Log,
			featurize.WithTelemetry(rt.Telemetry), featurize.WithTokens(rt.Tokens))
		if err != nil {
			return fmt.Errorf("build featurize: %w", err)
		}
		return svc.Run(ctx, rt.Listener)
	})
}

// rebuild is `featurize rebuild [--clear]`.
func rebuild(args []string) {
	cfg, cmd := cli.RebuildCommand()
	cli.Main(cmd, args, func(ctx context.Context, rt *cli.Runtime) error {
		opt := featurize.RebuildOptions{Clear: cfg.Clear}
		stats, err := featurize.Rebuild(ctx, cfg.Featurize.Featurize, rt.Registry, rt.Store, opt, rt.Log)
		if err != nil {
			return err
		}
		rt.Log.Info("rebuild done", "messages", stats["messages"], "applied", stats["applied"], "duplicates", stats["duplicates"],
			"late", stats["late"], "rejected_time", stats["rejected_time"])
		return nil
	})
}

// backfillCmd is `featurize backfill --events FILE... --spine FILE --out FILE [flags]`.
func backfillCmd(args []string) {
	cfg, cmd := cli.BackfillCommand()
	cli.Main(cmd, args, func(ctx context.Context, rt *cli.Runtime) error {
		_, err := backfill.Run(ctx, rt.Registry, cfg.Options)
		return err
	})
}
