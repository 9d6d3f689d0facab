package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/schemas"
)

// Command is one freshet command: how it reads and validates its settings
// (app.Command and its Validators), and what its prologue prepares before
// its body runs.
type Command struct {
	*app.Command
	// Common is the definitions and logging settings, which every command
	// that runs a body has.
	Common *app.Common
	// Service, when set, is the name the process has in telemetry (the
	// default of OTEL_SERVICE_NAME), which the prologue sets up; empty:
	// no telemetry.
	Service string
	// Store, when set, is the online store the prologue opens, checks
	// (store.Redis.CheckReader, or CheckWriter with Writes) and closes once
	// the body returns.
	Store *store.Config
	// Writes is whether the body writes to the store: the prologue then
	// checks that the Redis user may run everything featurize runs, so a
	// read-only user fails at start naming what it may not do.
	Writes bool
	// Listen, when set, is the address the prologue listens on for the
	// body's HTTP server; it is read once the settings are.
	Listen *string
	// Tokens, when set, is the bearer tokens setting of the body's HTTP
	// API: the prologue opens the file (or warns that the API is open)
	// and keeps it in force while the body runs.
	Tokens *auth.Config
	// TLS, when set, is the TLS setting of the body's HTTP server (with
	// Listen): with a certificate the prologue serves the Listener over
	// TLS (httpx.WithTLS) and reloads the pair while the body runs.
	TLS *httpx.TLSConfig
	// Limits, when set, is the limits of the body's HTTP server (with
	// Listen); without, httpx.DefaultLimits.
	Limits *httpx.Limits
}

// Runtime is what the prologue prepared for a command's body.
type Runtime struct {
	// Log is the command's logger, on stderr.
	Log *slog.Logger
	// Telemetry is nil without Command.Service: a valid value, whose
	// methods do nothing.
	Telemetry *telemetry.Providers
	// Registry is the definitions, loaded and checked.
	Registry *schemas.Registry
	// Store is the online store; nil without Command.Store.
	Store *store.Redis
	// Listener is the HTTP server's; nil without Command.Listen. It is an
	// *httpx.Listener with the server's limits and, with a TLS
	// certificate, its TLS config: httpx.Serve serves it with them.
	Listener net.Listener
	// Tokens is the bearer tokens the HTTP API requires, reloaded when
	// the file changes and on SIGHUP; nil without a tokens file (or
	// without Command.Tokens): the API is open.
	Tokens *auth.Guard
}

// Body is what a command does once its prologue ran, until ctx ends on
// SIGINT or SIGTERM.
type Body func(ctx context.Context, rt *Runtime) error

// Main runs a command of a service's program, its arguments args (those
// after the command's own words), and exits: 0 when body returns nil and
// after --help, 2 (the error and, for the command line, the usage
// printed) when the command line or a setting is wrong, and 1 when the
// prologue or body failed, which is logged as "<command> failed".
func Main(c *Command, args []string, body Body) {
	if err := c.Start(args); err != nil {
		os.Exit(app.ExitCode(err))
	}
	log := Logger(c.Common)
	if err := c.Exec(log, body); err != nil {
		log.Error(c.Flags.Name()+" failed", "error", err)
		os.Exit(1)
	}
}

// Run is Main for a command of the freshet tool, whose dispatcher prints
// errors and sets the exit status: it returns flag.ErrHelp or an
// *app.UsageError, already printed, or the prologue's or body's error,
// not printed.
func (c *Command) Run(args []string, body Body) error {
	if err := c.Start(args); err != nil {
		return err
	}
	return c.Exec(Logger(c.Common), body)
}

// Exec is the prologue of a command whose settings are valid, then its
// body: it sets up telemetry (with Service), logs the effective settings
// (passwords masked), loads the definitions, opens the store (with Store)
// and listens (with Listen, over TLS with a certificate in TLS, reloaded
// as its files change), opens the tokens file and keeps it in force
// (with Tokens), then runs body with them until SIGINT or SIGTERM. What it
// opened is closed when body returns.
func (c *Command) Exec(log *slog.Logger, body Body) error {
	ctx, stop := app.Context()
	defer stop()
	rt := &Runtime{Log: log}
	attrs := config.Effective(c.Flags)
	if c.Service != "" {
		tel, shutdown, err := telemetry.Setup(ctx, c.Service, telemetry.WithLogger(log))
		if err != nil {
			return fmt.Errorf("set up telemetry: %w", err)
		}
		defer app.Close(ctx, log, "telemetry", shutdown)
		rt.Telemetry, attrs = tel, append(attrs, tel.LogAttrs()...)
	}
	log.Info("starting "+c.Flags.Name(), attrs...)

	reg, err := c.Common.Load()
	if err != nil {
		return err
	}
	rt.Registry = reg
	if c.Store != nil {
		store.SetLogger(log)
		open := c.Store.OpenReader
		if c.Writes {
			open = c.Store.Open
		}
		st, err := open(rt.Telemetry.InstrumentRedis)
		if err != nil {
			return fmt.Errorf("open online store: %w", err)
		}
		defer st.Close()
		check := st.CheckReader
		if c.Writes {
			check = st.CheckWriter
		}
		if err := check(ctx); err != nil {
			return fmt.Errorf("online store: %w", err)
		}
		if err := deployed(ctx, st, reg, c.Writes, log); err != nil {
			return err
		}
		rt.Store = st
	}
	if c.Listen != nil {
		l, err := httpx.Listen(*c.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		defer l.Close() // the server closes it as it stops: this is for a body failing before it serves
		lim := httpx.DefaultLimits
		if c.Limits != nil {
			lim = *c.Limits
		}
		rt.Listener = httpx.OnRefused(httpx.WithLimits(l, lim, log), rt.Telemetry.Refused)
		if c.TLS != nil {
			certs, err := c.TLS.Open(log)
			if err != nil {
				return fmt.Errorf("tls: %w", err)
			}
			if certs != nil {
				rt.Listener = httpx.WithTLS(rt.Listener, certs.Config())
				rctx, cancel := context.WithCancel(ctx)
				var wg sync.WaitGroup
				wg.Go(func() { _ = certs.Run(rctx) }) // returns nil when rctx ends; it logs its errors
				defer wg.Wait()
				defer cancel()
			}
		}
	}
	if c.Tokens != nil {
		g, err := c.Tokens.Open(log)
		if err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
		rt.Tokens = g
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = g.Run(rctx) }) // returns nil when rctx ends; it logs its errors
		defer wg.Wait()
		defer cancel()
	}
	return body(ctx, rt)
}

// deployed compares the definitions with those featurize last recorded in
// the store, refusing an incompatible change of the events (messages
// already in Kafka would no longer decode), and records them when the
// command writes the store (featurize, rebuild).
func deployed(ctx context.Context, st *store.Redis, reg *schemas.Registry, writes bool, log *slog.Logger) error {
	proposed := registry.Of(reg)
	d, ok, err := st.Deployed(ctx)
	if err != nil {
		return fmt.Errorf("online store: %w", err)
	}
	if ok {
		if err := registry.CheckEvents(d.Form, proposed); err != nil {
			return fmt.Errorf("%w\n(deployed: version %s, since %s; these definitions: version %s)",
				err, d.Version, d.At.Format(time.RFC3339), proposed.Version())
		}
		if d.Version != proposed.Version() {
			log.Info("definitions differ from the deployed ones", "deployed_version", d.Version, "version", proposed.Version())
		}
	}
	if !writes {
		return nil
	}
	if err := st.Record(ctx, proposed, time.Now()); err != nil {
		return fmt.Errorf("online store: %w", err)
	}
	log.Info("definitions recorded", "version", proposed.Version())
	want, err := gensWanted(reg, d, ok)
	if err != nil {
		return err
	}
	gens, err := st.Adopt(ctx, want)
	if err != nil {
		return fmt.Errorf("online store: %w", err)
	}
	for _, g := range gens {
		if !g.Live() {
			log.Info("view recomputed from kafka: its features are PENDING until it has caught up", "view", g.View, "generation", g.ID)
		}
	}
	return nil
}

// gensWanted says, per view, which generation its layout needs: the one
// it has, or a recomputed one when Kafka holds events the live path has
// already passed without it (the view was defined otherwise, or is new to
// a running deployment). With no definitions recorded before, state under
// the layout's fingerprint is taken as current: kept before generations
// existed, or none on a first start, whose consumer group reads the topics
// from their earliest offsets anyway.
func gensWanted(reg *schemas.Registry, d store.Deployment, deployed bool) ([]store.GenWant, error) {
	var want []store.GenWant
	mine := registry.Of(reg)
	for _, name := range reg.ViewNames() {
		l, err := aggregate.NewLayout(reg.Views[name])
		if err != nil {
			return nil, err
		}
		w := store.GenWant{View: name, Fingerprint: l.Fingerprint}
		if deployed {
			old, had := d.Form.Views[name]
			w.Recompute = !had || !old.SameLayout(mine.Views[name])
		}
		want = append(want, w)
	}
	return want, nil
}
