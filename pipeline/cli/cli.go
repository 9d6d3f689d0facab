// Package cli is freshet's commands: each command's complete settings,
// built from one flag set per command, its help, and the prologue every
// command runs before its body (Main). The commands parse their settings
// here, `freshet config` prints the programs' as the README's tables
// (WriteConfig), the compose checks read the same flag sets, and
// KnownVariables derives from them every FRESHET_* variable a freshet
// program reads, so the documented, deployed and accepted settings cannot
// drift apart.
//
// It is the one package that knows every component, so no component may
// import it. How a setting is read and worded is pipeline/config's; how a
// command line behaves (help, exit statuses) is pipeline/app's.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/backfill"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/devmode"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/ingest"
	"github.com/freshet-ml/freshet/pipeline/serve"
	"github.com/freshet-ml/freshet/pipeline/store"
)

// Ingest is the ingest service's settings.
type Ingest struct {
	Common app.Common
	Ingest ingest.Config
	// Tokens is the bearer tokens of the HTTP API.
	Tokens auth.Config
	// TLS is the HTTP API's certificate, and client CA for mutual TLS.
	TLS httpx.TLSConfig
	// HTTP is the HTTP server's limits.
	HTTP httpx.Limits
}

// NewIngest registers ingest's settings on a new flag set.
func NewIngest() (*Ingest, *flag.FlagSet) {
	c := &Ingest{}
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.Tokens.RegisterFlags(fs)
	c.TLS.RegisterFlags(fs)
	// Each request may hold a body of up to max-body (16 MiB) while
	// Kafka takes it: 64 at once bound that to 1 GiB.
	c.HTTP.RegisterFlags(fs, 64)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Ingest) Validators() []app.Validator {
	return []app.Validator{&c.Common, &c.Ingest, &c.Tokens, &c.TLS, &c.HTTP}
}

// IngestCommand is the ingest service's command line.
func IngestCommand() (*Ingest, *Command) {
	c, fs := NewIngest()
	return c, &Command{
		Command: &app.Command{
			Flags: fs,
			Usage: []string{"ingest [flags]", "ingest replay --event NAME [flags] FILE..."},
			About: "Accept events over HTTP (POST /v1/events/{event}), validate them against their definitions and\n" +
				"publish them to Kafka, acknowledged by every in-sync replica.",
			Commands: []app.Subcommand{
				{Name: "replay", About: "publish the events of files (Parquet, Arrow, CSV, NDJSON) to Kafka; ingest replay --help"},
			},
			Env:        true,
			Validators: c.Validators(),
		},
		Common:  &c.Common,
		Service: "ingest",
		Listen:  &c.Ingest.HTTPAddr,
		Tokens:  &c.Tokens,
		TLS:     &c.TLS,
		Limits:  &c.HTTP,
	}
}

// Replay is `ingest replay`'s settings: publishing's, as the ingest
// service has them, and what to replay.
type Replay struct {
	Common app.Common
	// Ingest holds the settings of publishing (RegisterPublishFlags:
	// Kafka, its producer, plausible times); a replay has no HTTP API, so
	// the rest is unset.
	Ingest ingest.Config
	// Replay is what to replay, read from the command line only; its
	// Files are the command's positional arguments.
	Replay *ingest.ReplayOptions
}

// Validators are the parts to validate after parsing.
func (c *Replay) Validators() []app.Validator {
	return []app.Validator{&c.Common, app.ValidatorFunc(c.Ingest.ValidatePublish), app.ValidatorFunc(c.validateRun)}
}

// validateRun reports every missing or impossible option of the run.
func (c *Replay) validateRun() error {
	o := c.Replay
	var errs []error
	if o.Event == "" {
		errs = append(errs, errors.New("--event is required: the event type of the rows, e.g. --event transaction"))
	}
	if len(o.Files) == 0 {
		errs = append(errs, errors.New("no file to replay: name one or more after the flags"))
	}
	if o.Speed < 0 {
		errs = append(errs, fmt.Errorf("--speed %g is negative: a multiple of real time above 0, or 0 for as fast as possible", o.Speed))
	}
	if o.Limit < 0 {
		errs = append(errs, fmt.Errorf("--limit %d is negative: a number of events, or 0 for all", o.Limit))
	}
	if o.MaxErrors < 0 {
		errs = append(errs, fmt.Errorf("--max-errors %d is negative: a number of invalid rows of at least 0", o.MaxErrors))
	}
	return errors.Join(errs...)
}

// ReplayCommand is `ingest replay`'s command line. The files to replay are
// its positional arguments, which may stand between flags.
func ReplayCommand() (*Replay, *Command) {
	c := &Replay{}
	fs := flag.NewFlagSet("ingest replay", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Ingest.RegisterPublishFlags(fs)
	cmd := &app.Command{
		Flags: fs,
		Usage: []string{"ingest replay --event NAME [flags] FILE..."},
		About: "Publish the events of files, in file order, as events of type NAME: as fast as possible, or paced\n" +
			"by event time with --speed. Formats by extension: .parquet, .arrow, .feather, .arrows, .csv, .ndjson,\n" +
			".jsonl, and CSV or NDJSON compressed (.gz, .zst). Every file is read once before anything is sent:\n" +
			"invalid rows are reported, and when they exceed --max-errors (or a file cannot be read to its end)\n" +
			"nothing is published and the exit status is non-zero; so it is when publishing failed.",
		Env:          true,
		Interspersed: true,
		Positional:   func(line config.Line) error { c.Replay.Files = line.Args; return nil },
		Validators:   c.Validators(),
	}
	cmd.Options(func(fs *flag.FlagSet) { c.Replay = ingest.ReplayFlags(fs) })
	c.Replay.Times = &c.Ingest.Times
	return c, &Command{Command: cmd, Common: &c.Common, Service: "ingest"}
}

// Serve is the serve service's settings.
type Serve struct {
	Common app.Common
	Serve  serve.Config
	Store  store.Config
	// Tokens is the bearer tokens of the HTTP API.
	Tokens auth.Config
	// TLS is the HTTP API's certificate, and client CA for mutual TLS.
	TLS httpx.TLSConfig
	// HTTP is the HTTP server's limits.
	HTTP httpx.Limits
}

// NewServe registers serve's settings on a new flag set.
func NewServe() (*Serve, *flag.FlagSet) {
	c := &Serve{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Serve.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	c.Tokens.RegisterFlags(fs)
	c.TLS.RegisterFlags(fs)
	// Lookups take about a millisecond and bounded memory each.
	c.HTTP.RegisterFlags(fs, 1024)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Serve) Validators() []app.Validator {
	return []app.Validator{&c.Common, &c.Serve, &c.Store, &c.Tokens, &c.TLS, &c.HTTP}
}

// ServeCommand is the serve service's command line.
func ServeCommand() (*Serve, *Command) {
	c, fs := NewServe()
	return c, &Command{
		Command: &app.Command{
			Flags: fs,
			Usage: []string{"serve [flags]"},
			About: "Answer feature lookups over HTTP (GET /v1/features/{view}/{entity}, POST /v1/features/{view},\n" +
				"Feast's POST /get-online-features) from the online store, one Redis round trip per request.",
			Env:        true,
			Validators: c.Validators(),
		},
		Common:  &c.Common,
		Service: "serve",
		Store:   &c.Store,
		Listen:  &c.Serve.HTTPAddr,
		Tokens:  &c.Tokens,
		TLS:     &c.TLS,
		Limits:  &c.HTTP,
	}
}

// Featurize is the featurize service's settings.
type Featurize struct {
	Common    app.Common
	Featurize featurize.Config
	Store     store.Config
	// Tokens is the bearer tokens of the health, stats and metrics
	// endpoints; the service's own (featurize rebuild has no endpoint).
	Tokens auth.Config
	// TLS is the certificate of those endpoints, and client CA for
	// mutual TLS; the service's own too.
	TLS httpx.TLSConfig
	// HTTP is those endpoints' server's limits.
	HTTP httpx.Limits
}

// NewFeaturize registers featurize's settings on a new flag set.
func NewFeaturize() (*Featurize, *flag.FlagSet) {
	c := &Featurize{}
	fs := flag.NewFlagSet("featurize", flag.ContinueOnError)
	c.register(fs)
	c.Tokens.RegisterFlags(fs)
	c.TLS.RegisterFlags(fs)
	c.HTTP.RegisterFlags(fs, 64) // health, stats and metrics only
	return c, fs
}

func (c *Featurize) register(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	c.Featurize.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
}

// Validators are the parts to validate after parsing.
func (c *Featurize) Validators() []app.Validator {
	return []app.Validator{&c.Common, &c.Featurize, &c.Store}
}

// FeaturizeCommand is the featurize service's command line.
func FeaturizeCommand() (*Featurize, *Command) {
	c, fs := NewFeaturize()
	validators := append(c.Validators(), &c.Tokens, &c.TLS, &c.HTTP)
	return c, &Command{
		Command: &app.Command{
			Flags: fs,
			Usage: []string{
				"featurize [flags]",
				"featurize rebuild [--clear] [flags]",
				"featurize backfill --events FILE... --spine FILE --out FILE [flags]",
			},
			About: "Consume events from Kafka in a consumer group and keep the feature views' tiles in Redis,\n" +
				"effectively once; health, /v1/stats and /metrics on --http-addr.",
			Commands: []app.Subcommand{
				{Name: "rebuild", About: "recompute the online store from the events Kafka retains; featurize rebuild --help"},
				{Name: "backfill", About: "point-in-time training data from event files; featurize backfill --help"},
			},
			Env:        true,
			Validators: validators,
		},
		Common:  &c.Common,
		Service: "featurize",
		Store:   &c.Store,
		Writes:  true,
		Listen:  &c.Featurize.HTTPAddr,
		Tokens:  &c.Tokens,
		TLS:     &c.TLS,
		Limits:  &c.HTTP,
	}
}

// Rebuild is `featurize rebuild`'s settings: featurize's, and whether to
// clear the views' state first.
type Rebuild struct {
	Featurize
	// Clear deletes the views' state first; from the command line only,
	// so that no variable left in an environment deletes anything.
	Clear bool
}

// RebuildCommand is `featurize rebuild`'s command line.
func RebuildCommand() (*Rebuild, *Command) {
	c := &Rebuild{}
	fs := flag.NewFlagSet("featurize rebuild", flag.ContinueOnError)
	c.register(fs)
	cmd := &app.Command{
		Flags: fs,
		Usage: []string{"featurize rebuild [--clear] [flags]"},
		About: "Reset the consumer group to the earliest offsets Kafka retains, forget the saved watermarks and\n" +
			"recompute the online store from Kafka, then exit. Stop every featurize of the group first.",
		Env:        true,
		Validators: c.Validators(),
	}
	cmd.Options(func(fs *flag.FlagSet) {
		fs.BoolVar(&c.Clear, "clear", false, "delete the views' online state before rebuilding")
	})
	return c, &Command{Command: cmd, Common: &c.Common, Service: "featurize", Store: &c.Store, Writes: true}
}

// Backfill is `featurize backfill`'s settings.
type Backfill struct {
	Common app.Common
	// Options are what to compute, from the command line only; its
	// Events are those of --events and the positional arguments.
	Options backfill.Options
	// Times is which event times are plausible, as for ingest: the
	// others are invalid rows.
	Times events.TimeRule
}

// Validators are the parts to validate after parsing.
func (c *Backfill) Validators() []app.Validator {
	return []app.Validator{&c.Common, &c.Times, &c.Options} // pointers: validated as parsed, not as built
}

// BackfillCommand is `featurize backfill`'s command line. Event files may
// follow --events as positional arguments, between flags.
func BackfillCommand() (*Backfill, *Command) {
	c := &Backfill{}
	fs := flag.NewFlagSet("featurize backfill", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Times.RegisterFlags(fs)
	c.Options.Times, c.Options.Stderr = &c.Times, os.Stderr
	cmd := &app.Command{
		Flags: fs,
		Usage: []string{"featurize backfill --events FILE... --spine FILE --out FILE [--view NAME]... [flags]"},
		About: "For each row of the spine (an entity, a time, and columns passed through such as labels), compute\n" +
			"every feature of the chosen views as of the row's time from event files, and write the spine with\n" +
			"one column per feature (view__feature) to --out: Parquet, Arrow or CSV by extension.",
		Env:          true,
		Interspersed: true,
		Positional: func(line config.Line) error {
			c.Options.Events = append(c.Options.Events, line.Args...)
			return nil
		},
		Validators: c.Validators(),
	}
	cmd.Options(c.Options.RegisterFlags)
	return c, &Command{Command: cmd, Common: &c.Common}
}

// DemoCommand is `freshet demo`'s command line: the feed of the compose
// stack's demo profile, configured like a service.
func DemoCommand() (*devmode.DemoSettings, *Command) {
	c, fs := devmode.NewDemo()
	return c, &Command{
		Command: &app.Command{
			Flags: fs,
			Usage: []string{"freshet demo [flags]"},
			About: "Feed a running ingest over HTTP: the sample events with their times moved so that the last one is\n" +
				"now, then a few live events every --live-every, until interrupted (the compose stack's demo profile).",
			Env:        true,
			Validators: c.Validators(),
		},
		Common: &c.Common,
	}
}

// Dev is `freshet dev`'s settings.
type Dev struct {
	Common app.Common
	// Dev is dev mode's own; its Schemas is Common's, which the command
	// copies.
	Dev devmode.Config
	// Tokens is the bearer tokens of the three HTTP APIs.
	Tokens auth.Config
}

// DevCommand is `freshet dev`'s command line. It reads no FRESHET_*
// variable: it is a first try on a laptop, whose environment may hold the
// settings of real services (FRESHET_SCHEMAS of another project) or of the
// scripts that start real servers (FRESHET_KAFKA_PORT, FRESHET_REDIS_PORT).
// It logs warnings only, unless --log-level says otherwise.
func DevCommand() (*Dev, *Command) {
	c := &Dev{Common: app.Common{LogLevel: "warn"}, Tokens: auth.Config{FlagOnly: true}}
	fs := flag.NewFlagSet("freshet dev", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Dev.RegisterFlags(fs)
	c.Tokens.RegisterFlags(fs)
	return c, &Command{
		Command: &app.Command{
			Flags: fs,
			Usage: []string{"freshet dev [flags]"},
			About: "Run everything in one process: a Kafka-protocol broker (kfake), a Redis-protocol store (miniredis),\n" +
				"ingest, featurize and serve, with the sample replayed so that its last event is now and a small live\n" +
				"feed; print curl commands that work as printed. Ctrl-C stops it.",
			Validators: []app.Validator{&c.Common, &c.Dev, &c.Tokens},
		},
		Common:  &c.Common,
		Service: "freshet-dev",
		Tokens:  &c.Tokens,
	}
}

// Check is `freshet validate`'s settings: the definitions to check.
type Check struct{ Schemas string }

// ValidateCommand is `freshet validate`'s command line: the definitions
// are --schemas (FRESHET_SCHEMAS), or PATH, which stands for --schemas.
// It has no prologue: it prints what it finds and logs nothing.
func ValidateCommand() (*Check, *Command) {
	c := &Check{}
	fs := flag.NewFlagSet("freshet validate", flag.ContinueOnError)
	app.RegisterSchemas(fs, &c.Schemas)
	return c, &Command{Command: &app.Command{
		Flags: fs,
		Usage: []string{"freshet validate [PATH]", "freshet validate [--schemas PATH]"},
		About: "Check feature definitions, a YAML file or a directory of *.yaml files (PATH, else --schemas), and\n" +
			"print every problem with its file, line and key.",
		Env: true,
		Positional: func(line config.Line) error {
			switch {
			case len(line.Args) > 1:
				return fmt.Errorf("one path at most, got %d", len(line.Args))
			case len(line.Args) == 1 && line.Given["schemas"]:
				return fmt.Errorf("the definitions are given twice, as PATH %s and as --schemas %s: give one", line.Args[0], c.Schemas)
			case len(line.Args) == 1:
				c.Schemas = line.Args[0]
			}
			return nil
		},
		Validators: []app.Validator{app.ValidatorFunc(func() error { return app.ValidateSchemas(c.Schemas) })},
	}}
}

// Plan is `freshet plan`'s settings: the definitions proposed, the Redis
// that holds the deployed ones and the Kafka that holds the history.
type Plan struct {
	Common app.Common
	Store  store.Config
	Kafka  broker.Config
	// JSON and AllowPartial are from the command line only.
	JSON, AllowPartial bool
}

// PlanCommand is `freshet plan`'s command line. It has the prologue of a
// command without a store (it reads the deployed definitions itself, so
// that an incompatible change is reported, not refused).
func PlanCommand() (*Plan, *Command) {
	c := &Plan{}
	fs := flag.NewFlagSet("freshet plan", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	c.Kafka.RegisterFlags(fs)
	cmd := &app.Command{
		Flags: fs,
		Usage: []string{"freshet plan [--schemas PATH] [--json] [--allow-partial] [flags]"},
		About: "Compare the definitions in --schemas with those featurize runs (recorded in Redis) and print,\n" +
			"per view and feature, what changes and what happens to its online state, and whether Kafka still\n" +
			"retains the history a view starting afresh needs. Exit 1 for an incompatible event change, or for\n" +
			"history no longer retained (unless --allow-partial).",
		Env:        true,
		Validators: []app.Validator{&c.Common, &c.Store, &c.Kafka},
	}
	cmd.Options(func(fs *flag.FlagSet) {
		fs.BoolVar(&c.JSON, "json", false, "print the plan as JSON, for CI")
		fs.BoolVar(&c.AllowPartial, "allow-partial", false, "exit 0 even when Kafka no longer retains the history a view needs")
	})
	return c, &Command{Command: cmd, Common: &c.Common}
}

// Commands returns a fresh command line of every command this package
// builds: the services, their subcommands, and the freshet tool's commands
// that have settings.
func Commands() []*Command {
	_, i := IngestCommand()
	_, r := ReplayCommand()
	_, f := FeaturizeCommand()
	_, rb := RebuildCommand()
	_, b := BackfillCommand()
	_, s := ServeCommand()
	_, d := DemoCommand()
	_, dev := DevCommand()
	_, v := ValidateCommand()
	_, pl := PlanCommand()
	return []*Command{i, r, f, rb, b, s, d, dev, v, pl}
}
