// Command serve answers HTTP feature lookups from the online store.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/serve"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

func main() {
	cfg, cmd := cli.ServeCommand()
	app.Start(cmd, os.Args[1:], cfg.Validators()...)
	log := cli.Logger(&cfg.Common)
	if err := run(cfg, cmd, log); err != nil {
		app.Fatal(log, "serve failed", err)
	}
}

func run(cfg *cli.Serve, cmd *app.Command, log *slog.Logger) error {
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "serve", telemetry.WithLogger(log))
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer app.Close(ctx, log, "telemetry", shutdown)
	log.Info("starting serve", append(config.Effective(cmd.Flags), tel.LogAttrs()...)...)

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
	srv, err := serve.New(reg, st, cfg.Serve, log, serve.WithTelemetry(tel))
	if err != nil {
		return fmt.Errorf("build serve: %w", err)
	}
	l, err := httpx.Listen(cfg.Serve.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return srv.Run(ctx, l)
}
