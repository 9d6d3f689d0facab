package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

// demo feeds a running ingest: `freshet demo` (the compose demo profile).
func demo(args []string) error {
	c, fs := devmode.NewDemo()
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := c.Common.Validate(); err != nil {
		return err
	}
	reg, err := c.Common.Load()
	if err != nil {
		return err
	}
	ctx, stop := app.Context()
	defer stop()
	return devmode.Demo(ctx, reg, c.Demo, c.Common.Logger(os.Stderr))
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
