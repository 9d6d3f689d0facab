// Command ingest accepts events over HTTP, validates them and publishes them
// to Kafka; `ingest replay` publishes the events of files.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/ingest"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replay" {
		replay(os.Args[2:])
		return
	}
	cfg, cmd := cli.IngestCommand()
	cli.Main(cmd, os.Args[1:], func(ctx context.Context, rt *cli.Runtime) error {
		w := cfg.Ingest.Kafka.NewWriter()
		defer w.Close()
		pub := ingest.NewPublisher(cfg.Ingest.Kafka, w, ingest.WithTelemetry(rt.Telemetry))
		srv := ingest.NewServer(rt.Registry, pub, cfg.Ingest, rt.Log, ingest.WithTelemetry(rt.Telemetry), ingest.WithTokens(rt.Tokens))
		return srv.Run(ctx, rt.Listener)
	})
}

// replay is `ingest replay --event NAME [flags] FILE...`.
func replay(args []string) {
	cfg, cmd := cli.ReplayCommand()
	cli.Main(cmd, args, func(ctx context.Context, rt *cli.Runtime) error {
		opt, kafka := cfg.Replay, cfg.Ingest.Kafka
		if rt.Registry.Events[opt.Event] == nil {
			return fmt.Errorf("--event %q is not an event type of %s; event types: %s",
				opt.Event, cfg.Common.Schemas, strings.Join(rt.Registry.EventNames(), ", "))
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := kafka.EnsureTopics(tctx, []string{kafka.Topic(opt.Event)})
		cancel()
		if err != nil {
			return fmt.Errorf("create topic: %w", err)
		}
		w := kafka.NewWriter()
		_, err = ingest.Replay(ctx, rt.Registry, ingest.NewPublisher(kafka, w, ingest.WithTelemetry(rt.Telemetry)), *opt)
		return errors.Join(err, w.Close())
	})
}
