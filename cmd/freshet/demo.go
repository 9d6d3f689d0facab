package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

// demo feeds a running ingest: `freshet demo` (the compose demo profile).
func demo(args []string) error {
	cfg, cmd := cli.DemoCommand()
	return cmd.Run(args, func(ctx context.Context, rt *cli.Runtime) error {
		return devmode.Demo(ctx, rt.Registry, cfg.Demo, rt.Log)
	})
}

// healthcheck is `freshet healthcheck URL`: exit 0 when URL answers 2xx.
// Images have no curl; compose healthchecks call this.
func healthcheck(args []string) error {
	var url string
	cmd := toolCommand(flag.NewFlagSet("freshet healthcheck", flag.ContinueOnError), "freshet healthcheck URL",
		"Exit 0 when URL answers 2xx within 3s, 1 otherwise: the probe of the compose stack's healthchecks\n"+
			"(the image has no curl).")
	cmd.Positional = func(line config.Line) error {
		if len(line.Args) != 1 {
			return fmt.Errorf("one URL expected, got %d arguments", len(line.Args))
		}
		url = line.Args[0]
		return nil
	}
	if err := cmd.Start(args); err != nil {
		return err
	}
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	_ = res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %d", url, res.StatusCode)
	}
	return nil
}
