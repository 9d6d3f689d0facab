package main

import (
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

func validate(args []string) error {
	path := os.Getenv("FRESHET_SCHEMAS")
	if len(args) > 0 {
		path = args[0]
	}
	if path == "" {
		path = "schemas/example"
	}
	reg, err := schemas.Load(path)
	if ps, ok := err.(schemas.Problems); ok {
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

func printConfig(args []string) error {
	sets := cli.FlagSets()
	names := make([]string, 0, len(sets))
	for n := range sets {
		if len(args) == 0 || strings.EqualFold(args[0], n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("unknown service %q", args[0])
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("### %s\n\n", n)
		if err := config.WriteMarkdown(os.Stdout, sets[n]); err != nil {
			return err
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
	if err := fs.Parse(args); err != nil {
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
