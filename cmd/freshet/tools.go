package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/schemas"
)

// validate is `freshet validate [PATH]`.
func validate(args []string) error {
	cmd := toolCommand(flag.NewFlagSet("freshet validate", flag.ContinueOnError), "freshet validate [PATH]",
		"Check feature definitions, a YAML file or a directory of *.yaml files (default: $FRESHET_SCHEMAS,\n"+
			"else schemas/example), and print every problem with its file, line and key.", true)
	line, err := cmd.Parse(args)
	if err != nil {
		return err
	}
	if len(line.Args) > 1 {
		return cmd.Fail(fmt.Errorf("one path at most, got %d", len(line.Args)))
	}
	path := os.Getenv("FRESHET_SCHEMAS")
	if len(line.Args) > 0 {
		path = line.Args[0]
	}
	if path == "" {
		path = "schemas/example"
	}
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
	sets := cli.FlagSets()
	services := make([]string, 0, len(sets))
	for n := range sets {
		services = append(services, n)
	}
	sort.Strings(services)
	cmd := toolCommand(flag.NewFlagSet("freshet config", flag.ContinueOnError), "freshet config [SERVICE]",
		"Print the settings of every service, or of SERVICE ("+strings.Join(services, ", ")+"), as Markdown\n"+
			"tables: flag, FRESHET_* variable, default and meaning, read from the services' own flag sets.", true)
	line, err := cmd.Parse(args)
	if err != nil {
		return err
	}
	if len(line.Args) > 1 {
		return cmd.Fail(fmt.Errorf("one service at most, got %d", len(line.Args)))
	}
	names := services
	if len(line.Args) == 1 {
		names = nil
		for _, n := range services {
			if strings.EqualFold(line.Args[0], n) {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			msg := fmt.Sprintf("unknown service %q (services: %s)", line.Args[0], strings.Join(services, ", "))
			if s := config.Suggest(line.Args[0], services); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			return cmd.Fail(errors.New(msg))
		}
	}
	for _, n := range names {
		fmt.Printf("### %s\n\n", n)
		if err := config.WriteMarkdown(os.Stdout, sets[n]); err != nil {
			return fmt.Errorf("write the settings of %s: %w", n, err)
		}
		fmt.Println()
	}
	return nil
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
			"the end-to-end script.", false)
	if _, err := cmd.Parse(args); err != nil {
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
