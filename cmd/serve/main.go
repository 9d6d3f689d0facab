// Command serve answers HTTP feature lookups from the online store.
package main

import (
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
	cfg, fs := cli.NewServe()
	app.Parse(fs, os.Args[1:], cfg.Validators()...)
	log := cfg.Common.Logger(os.Stderr)
	ctx, stop := app.Context()
	defer stop()
	tel, shutdown, err := telemetry.Setup(ctx, "serve", telemetry.WithLogger(log))
	if err != nil {
		app.Fatal(log, "set up telemetry", err)
	}
	defer shutdown(ctx)
	log.Info("starting serve", append(config.Effective(fs), tel.LogAttrs()...)...)

	reg, err := cfg.Common.Load()
	if err != nil {
		app.Fatal(log, "load definitions", err)
	}
	store.SetLogger(log)
	st, err := cfg.Store.Open(tel.InstrumentRedis)
	if err != nil {
		app.Fatal(log, "open online store", err)
	}
	defer st.Close()
	srv, err := serve.New(reg, st, cfg.Serve, log, serve.WithTelemetry(tel))
	if err != nil {
		app.Fatal(log, "build serve", err)
	}
	l, err := httpx.Listen(cfg.Serve.HTTPAddr)
	if err != nil {
		app.Fatal(log, "listen", err)
	}
	if err := srv.Run(ctx, l); err != nil {
		app.Fatal(log, "serve", err)
	}
}
