// Command featurize consumes events from Kafka and keeps the feature views'
// tiles in Redis, effectively once.
package main

import (
	"os"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/httpx"
)

func main() {
	cfg, fs := cli.NewFeaturize()
	app.Parse(fs, os.Args[1:], cfg.Validators()...)
	log := cfg.Common.Logger(os.Stderr)
	log.Info("starting featurize", config.Effective(fs)...)

	reg, err := cfg.Common.Load()
	if err != nil {
		app.Fatal(log, "load definitions", err)
	}
	st, err := cfg.Store.Open()
	if err != nil {
		app.Fatal(log, "open online store", err)
	}
	defer st.Close()
	svc, err := featurize.NewService(cfg.Featurize, reg, st, log)
	if err != nil {
		app.Fatal(log, "build featurize", err)
	}
	l, err := httpx.Listen(cfg.Featurize.HTTPAddr)
	if err != nil {
		app.Fatal(log, "listen", err)
	}
	ctx, stop := app.Context()
	defer stop()
	if err := svc.Run(ctx, l); err != nil {
		app.Fatal(log, "featurize", err)
	}
}
