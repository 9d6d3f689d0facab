package main

import (
	"context"
	"os"

	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

// dev runs everything embedded: `freshet dev`.
func dev(args []string) error {
	cfg, cmd := cli.DevCommand()
	return cmd.Run(args, func(ctx context.Context, rt *cli.Runtime) error {
		d := cfg.Dev
		d.Schemas, d.Registry, d.Telemetry, d.Tokens = cfg.Common.Schemas, rt.Registry, rt.Telemetry, rt.Tokens
		return devmode.Run(ctx, d, os.Stdout, rt.Log)
	})
}
