package main

import (
	"context"

	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

// demo feeds a running ingest: `freshet demo` (the compose demo profile).
func demo(args []string) error {
	cfg, cmd := cli.DemoCommand()
	return cmd.Run(args, func(ctx context.Context, rt *cli.Runtime) error {
		return devmode.Demo(ctx, rt.Registry, cfg.Demo, rt.Log)
	})
}
