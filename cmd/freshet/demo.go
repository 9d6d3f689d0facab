package main

import (
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

// demo feeds a running ingest: `freshet demo` (the compose demo profile).
func demo(args []string) error {
	c, fs := devmode.NewDemo()
	cmd := &app.Command{
		Flags: fs,
		Usage: []string{"freshet demo [flags]"},
		About: "Feed a running ingest over HTTP: the sample events with their times moved so that the last one is\n" +
			"now, then a few live events every --live-every, until interrupted (the compose stack's demo profile).",
		Env: true,
	}
	app.Start(cmd, args, &c.Common)
	log := cli.Logger(&c.Common)
	reg, err := c.Common.Load()
	if err != nil {
		return err
	}
	ctx, stop := app.Context()
	defer stop()
	return devmode.Demo(ctx, reg, c.Demo, log)
}

// healthcheck is `freshet healthcheck URL`: exit 0 when URL answers 2xx.
// Images have no curl; compose healthchecks call this.
func healthcheck(args []string) error {
	cmd := toolCommand(flag.NewFlagSet("freshet healthcheck", flag.ContinueOnError), "freshet healthcheck URL",
		"Exit 0 when URL answers 2xx within 3s, 1 otherwise: the probe of the compose stack's healthchecks\n"+
			"(the image has no curl).", true)
	line, err := cmd.Parse(args)
	if err != nil {
		return err
	}
	if len(line.Args) != 1 {
		return cmd.Fail(fmt.Errorf("one URL expected, got %d arguments", len(line.Args)))
	}
	url := line.Args[0]
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
