// Package cli holds each command's complete settings, built from one flag
// set per command, and its help. The commands parse them, `freshet config`
// prints the services' as the README's table, the compose checks read the
// same flag sets, and KnownVariables derives from them every FRESHET_*
// variable a freshet program reads, so the documented, deployed and
// accepted settings cannot drift apart.
package cli

import (
	"flag"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/backfill"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/ingest"
	"github.com/freshet-ml/freshet/pipeline/serve"
	"github.com/freshet-ml/freshet/pipeline/store"
)

// Ingest is the ingest service's settings.
type Ingest struct {
	Common app.Common
	Ingest ingest.Config
}

// NewIngest registers ingest's settings on a new flag set.
func NewIngest() (*Ingest, *flag.FlagSet) {
	c := &Ingest{}
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Ingest) Validators() []app.Validator { return []app.Validator{&c.Common, &c.Ingest} }

// IngestCommand is the ingest service's command line.
func IngestCommand() (*Ingest, *app.Command) {
	c, fs := NewIngest()
	return c, &app.Command{
		Flags: fs,
		Usage: []string{"ingest [flags]", "ingest replay --event NAME [flags] FILE..."},
		About: "Accept events over HTTP (POST /v1/events/{event}), validate them against their definitions and\n" +
			"publish them to Kafka, acknowledged by every in-sync replica.",
		Commands: []app.Subcommand{
			{Name: "replay", About: "publish the events of files (Parquet, Arrow, CSV, NDJSON) to Kafka; ingest replay --help"},
		},
		Env: true,
	}
}

// Replay is `ingest replay`'s settings: ingest's, and the replay's own.
type Replay struct {
	Ingest
	Replay *ingest.ReplayOptions
}

// ReplayCommand is `ingest replay`'s command line. The files to replay are
// its positional arguments, which may stand between flags.
func ReplayCommand() (*Replay, *app.Command) {
	c := &Replay{}
	fs := flag.NewFlagSet("ingest replay", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Ingest.Ingest.RegisterFlags(fs)
	c.Replay = ingest.ReplayFlags(fs)
	return c, &app.Command{
		Flags: fs,
		Usage: []string{"ingest replay --event NAME [flags] FILE..."},
		About: "Publish the events of files, in file order, as events of type NAME: as fast as possible, or paced\n" +
			"by event time with --speed. Formats by extension: .parquet, .arrow, .feather, .arrows, .csv, .ndjson,\n" +
			".jsonl, and CSV or NDJSON compressed (.gz, .zst). Invalid rows are skipped and reported; the exit\n" +
			"status is non-zero when they exceed --max-errors or publishing failed.",
		Env:          true,
		Interspersed: true,
	}
}

// Serve is the serve service's settings.
type Serve struct {
	Common app.Common
	Serve  serve.Config
	Store  store.Config
}

// NewServe registers serve's settings on a new flag set.
func NewServe() (*Serve, *flag.FlagSet) {
	c := &Serve{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Serve.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Serve) Validators() []app.Validator { return []app.Validator{&c.Common, &c.Serve, &c.Store} }

// ServeCommand is the serve service's command line.
func ServeCommand() (*Serve, *app.Command) {
	c, fs := NewServe()
	return c, &app.Command{
		Flags: fs,
		Usage: []string{"serve [flags]"},
		About: "Answer feature lookups over HTTP (GET /v1/features/{view}/{entity}, POST /v1/features/{view},\n" +
			"Feast's POST /get-online-features) from the online store, one Redis round trip per request.",
		Env: true,
	}
}

// Featurize is the featurize service's settings.
type Featurize struct {
	Common    app.Common
	Featurize featurize.Config
	Store     store.Config
}

// NewFeaturize registers featurize's settings on a new flag set.
func NewFeaturize() (*Featurize, *flag.FlagSet) {
	c := &Featurize{}
	fs := flag.NewFlagSet("featurize", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Featurize.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Featurize) Validators() []app.Validator {
	return []app.Validator{&c.Common, &c.Featurize, &c.Store}
}

// FeaturizeCommand is the featurize service's command line.
func FeaturizeCommand() (*Featurize, *app.Command) {
	c, fs := NewFeaturize()
	return c, &app.Command{
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
		Env: true,
	}
}

// Rebuild is `featurize rebuild`'s settings: featurize's, and whether to
// clear the views' state first.
type Rebuild struct {
	Featurize
	Clear bool
}

// RebuildCommand is `featurize rebuild`'s command line.
func RebuildCommand() (*Rebuild, *app.Command) {
	c := &Rebuild{}
	fs := flag.NewFlagSet("featurize rebuild", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Featurize.Featurize.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	fs.BoolVar(&c.Clear, "clear", false, "delete the views' online state before rebuilding")
	return c, &app.Command{
		Flags: fs,
		Usage: []string{"featurize rebuild [--clear] [flags]"},
		About: "Reset the consumer group to the earliest offsets Kafka retains, forget the saved watermarks and\n" +
			"recompute the online store from Kafka, then exit. Stop every featurize of the group first.",
		Env: true,
	}
}

// Backfill is `featurize backfill`'s settings.
type Backfill struct {
	Common app.Common
	// Options are what to compute; its Events are those of --events,
	// to which the command adds its positional arguments.
	Options backfill.Options
	// Times is which event times are plausible, as for ingest: the
	// others are invalid rows.
	Times events.TimeRule
}

// Validators are the parts to validate after parsing.
func (c *Backfill) Validators() []app.Validator { return []app.Validator{&c.Common, c.Times} }

// BackfillCommand is `featurize backfill`'s command line. Event files may
// follow --events as positional arguments, between flags.
func BackfillCommand() (*Backfill, *app.Command) {
	c := &Backfill{}
	fs := flag.NewFlagSet("featurize backfill", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	o := &c.Options
	fs.Var((*config.Strings)(&o.Events), "events", "event files (any replay format); more files may follow the flag")
	fs.StringVar(&o.Spine, "spine", "", "spine file: rows with an entity and a time column, plus any columns passed through")
	fs.StringVar(&o.Out, "out", "", "output file: .parquet, .arrow, .feather, .arrows or .csv")
	fs.Var((*config.Strings)(&o.Views), "view", "feature view to compute (repeatable; default: every view)")
	fs.StringVar(&o.EntityColumn, "entity-column", "", "spine column of the entity (default: each view's entity field)")
	fs.StringVar(&o.AtColumn, "at-column", "", "spine column of the time (default: the event's timestamp field)")
	fs.IntVar(&o.MaxErrors, "max-errors", 0, "invalid event rows tolerated before the backfill fails")
	fs.StringVar(&o.Rejects, "rejects", "", "file receiving every invalid event row")
	c.Times.RegisterFlags(fs)
	o.Times = &c.Times
	return c, &app.Command{
		Flags: fs,
		Usage: []string{"featurize backfill --events FILE... --spine FILE --out FILE [--view NAME]... [flags]"},
		About: "For each row of the spine (an entity, a time, and columns passed through such as labels), compute\n" +
			"every feature of the chosen views as of the row's time from event files, and write the spine with\n" +
			"one column per feature (view__feature) to --out: Parquet, Arrow or CSV by extension.",
		Env:          true,
		Interspersed: true,
	}
}

// FlagSets returns a fresh flag set of every service, by name: the
// settings `freshet config` prints and a compose service may set.
func FlagSets() map[string]*flag.FlagSet {
	_, i := NewIngest()
	_, f := NewFeaturize()
	_, s := NewServe()
	return map[string]*flag.FlagSet{"ingest": i, "featurize": f, "serve": s}
}

// Commands returns a fresh command line of every command this package
// builds: the services and their subcommands.
func Commands() []*app.Command {
	_, i := IngestCommand()
	_, r := ReplayCommand()
	_, f := FeaturizeCommand()
	_, rb := RebuildCommand()
	_, b := BackfillCommand()
	_, s := ServeCommand()
	return []*app.Command{i, r, f, rb, b, s}
}
