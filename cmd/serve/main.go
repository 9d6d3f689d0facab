// Command serve answers HTTP feature lookups from the online store.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/serve"
)

func main() {
	cfg, cmd := cli.ServeCommand()
	cli.Main(cmd, os.Args[1:], func(ctx context.Context, rt *cli.Runtime) error {
		srv, err := serve.New(rt.Registry, rt.Store, cfg.Serve, rt.Log, serve.WithTelemetry(rt.Telemetry), serve.WithTokens(rt.Tokens))
		if err != nil {
			return fmt.Errorf("build serve: %w", err)
		}
		return srv.Run(ctx, rt.Listener)
	})
}
