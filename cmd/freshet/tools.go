package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/schemas"
)

// validate is `freshet validate [PATH]`.
func validate(args []string) error {
	cfg, cmd := cli.ValidateCommand()
	if err := cmd.Start(args); err != nil {
		return err
	}
	// No prologue (validate only prints), but a misspelt FRESHET_SCHEMAS
	// must not leave the default checked in silence.
	app.WarnUnknown(slog.New(slog.NewTextHandler(os.Stderr, nil)), os.Environ(), cli.KnownVariables())
	path := cfg.Schemas
	reg, err := schemas.Load(path)
	var ps schemas.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Println(p)
		}
		return fmt.Errorf("%d problem(s) in %s", len(ps), path)
	}
	if err != nil {
		return err
	}
	features := 0
	for _, v := range reg.Views {
		features += len(v.Features)
	}
	fmt.Printf("%s: OK: %d event type(s), %d feature view(s), %d feature(s)\n", path, len(reg.Events), len(reg.Views), features)
	return nil
}

// printConfig is `freshet config [SERVICE]`.
func printConfig(args []string) error {
	services := cli.ProgramNames()
	var names []string
	cmd := toolCommand(flag.NewFlagSet("freshet config", flag.ContinueOnError), "freshet config [SERVICE]",
		"Print the settings of every service and of the demo feed, or of SERVICE ("+strings.Join(services, ", ")+"),\n"+
			"as Markdown tables: flag, FRESHET_* variable, default and meaning, read from the programs' own flag\n"+
			"sets. A subcommand (ingest replay, featurize rebuild and backfill) reads its program's variables;\n"+
			"its flags of one run are on its command line only (see its --help).")
	cmd.Positional = func(line config.Line) error {
		if len(line.Args) > 1 {
			return fmt.Errorf("one service at most, got %d", len(line.Args))
		}
		if len(line.Args) == 1 && !slices.ContainsFunc(services, func(n string) bool { return strings.EqualFold(n, line.Args[0]) }) {
			msg := fmt.Sprintf("unknown service %q (services: %s)", line.Args[0], strings.Join(services, ", "))
			if s := config.Suggest(line.Args[0], services); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			return errors.New(msg)
		}
		names = line.Args
		return nil
	}
	if err := cmd.Start(args); err != nil {
		return err
	}
	return cli.WriteConfig(os.Stdout, names...)
}

// runKafka runs kfake as its own process, so tests and the end-to-end script
// can treat it like a broker they did not start.
func runKafka(args []string) error {
	fs := flag.NewFlagSet("freshet kafka", flag.ContinueOnError)
	port := fs.Int("port", 9092, "port to listen on (loopback)")
	partitions := fs.Int("default-partitions", 6, "partitions of auto-created topics")
	dataDir := fs.String("data-dir", "", "keep topics and committed offsets in this directory across restarts (default: in memory)")
	cmd := toolCommand(fs, "freshet kafka [flags]",
		"Run a standalone in-memory Kafka-protocol broker (kfake) on loopback until interrupted, for tests and\n"+
			"the end-to-end script.")
	if err := cmd.Start(args); err != nil {
		return err
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(*port), kfake.DefaultNumPartitions(*partitions)}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake on port %d: %w", *port, err)
	}
	defer c.Close()
	fmt.Printf("kafka-protocol broker (kfake) listening on %s\n", strings.Join(c.ListenAddrs(), ","))
	ctx, stop := app.Context()
	defer stop()
	<-ctx.Done()
	return nil
}
