package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

// demoFlags registers `freshet demo`'s settings; the compose checks read them.
func demoFlags() (*app.Common, *devmode.DemoConfig, *flag.FlagSet) {
	fs := flag.NewFlagSet("freshet demo", flag.ContinueOnError)
	var common app.Common
	common.RegisterFlags(fs)
	var cfg devmode.DemoConfig
	fs.StringVar(&cfg.IngestURL, "ingest-url", "http://localhost:8081", "base URL of the ingest service to send events to")
	fs.StringVar(&cfg.Sample, "sample", "schemas/example/events.ndjson", "NDJSON sample events, sent with their times moved so that the last one is now")
	fs.StringVar(&cfg.Event, "event", "transaction", "event type of the sample")
	fs.IntVar(&cfg.Batch, "batch", 500, "events per request")
	fs.DurationVar(&cfg.LiveEvery, "live-every", 2*time.Second, "send a few live events this often; 0 for none")
	return &common, &cfg, fs
}

// demo feeds a running ingest: `freshet demo` (the compose demo profile).
func demo(args []string) error {
	common, cfg, fs := demoFlags()
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := common.Validate(); err != nil {
		return err
	}
	reg, err := common.Load()
	if err != nil {
		return err
	}
	ctx, stop := app.Context()
	defer stop()
	return devmode.Demo(ctx, reg, *cfg, common.Logger(os.Stderr))
}

// healthcheck is `freshet healthcheck URL`: exit 0 when URL answers 2xx.
// Images have no curl; compose healthchecks call this.
func healthcheck(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: freshet healthcheck URL")
	}
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Get(args[0])
	if err != nil {
		return err
	}
	_ = res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %d", args[0], res.StatusCode)
	}
	return nil
}
