// Command serve answers HTTP feature lookups from the online store.
package main

import (
	"os"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/serve"
)

func main() {
	cfg, fs := cli.NewServe()
	app.Parse(fs, os.Args[1:], cfg.Validators()...)
	log := cfg.Common.Logger(os.Stderr)
	log.Info("starting serve", config.Effective(fs)...)

	reg, err := cfg.Common.Load()
	if err != nil {
		app.Fatal(log, "load definitions", err)
	}
	st, err := cfg.Store.Open()
	if err != nil {
		app.Fatal(log, "open online store", err)
	}
	defer st.Close()
	srv, err := serve.New(reg, st, cfg.Serve, log)
	if err != nil {
		app.Fatal(log, "build serve", err)
	}
	l, err := httpx.Listen(cfg.Serve.HTTPAddr)
	if err != nil {
		app.Fatal(log, "listen", err)
	}
	ctx, stop := app.Context()
	defer stop()
	if err := srv.Run(ctx, l); err != nil {
		app.Fatal(log, "serve", err)
	}
}
