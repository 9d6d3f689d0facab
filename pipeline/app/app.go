// Package app is how every freshet command behaves, whichever it is: its
// command line (Command: help, exit statuses, settings read from flags and
// FRESHET_* variables, then validated), the settings every command has
// (Common: definitions and logging), and running until SIGINT or SIGTERM.
// Which settings each command has, and the prologue that prepares its
// component, are pipeline/cli's; app knows no component.
package app

import (
	"cmp"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel/trace"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/schemas"
)

// Common is the settings every service has.
type Common struct {
	Schemas   string
	LogLevel  string
	LogFormat string
}

// DefaultSchemas is the definitions a command reads unless told otherwise.
const DefaultSchemas = "schemas/example"

// RegisterFlags registers the settings with their defaults. A LogLevel set
// before is the default instead of info (freshet dev's is warn).
func (c *Common) RegisterFlags(fs *flag.FlagSet) {
	RegisterSchemas(fs, &c.Schemas)
	level := cmp.Or(c.LogLevel, "info")
	fs.StringVar(&c.LogLevel, "log-level", level, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
}

// RegisterSchemas registers --schemas, the definitions, into p: for a
// command that has them without the logging settings (freshet validate).
func RegisterSchemas(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "schemas", DefaultSchemas, "feature definitions: a YAML file or a directory of *.yaml files")
}

// ValidateSchemas reports an empty --schemas.
func ValidateSchemas(path string) error {
	if path == "" {
		return &config.SettingError{Setting: "schemas", Problem: "is empty", Expected: "a YAML file or a directory of *.yaml files"}
	}
	return nil
}

// Validate reports the first invalid setting.
func (c *Common) Validate() error {
	if err := ValidateSchemas(c.Schemas); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return &config.SettingError{Setting: "log-level", Value: c.LogLevel, Problem: "is not a log level", Expected: "debug, info, warn or error"}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return &config.SettingError{Setting: "log-format", Value: c.LogFormat, Problem: "is not a log format", Expected: "text or json"}
	}
	return nil
}

// Logger builds the process logger, writing to w. A record logged with a
// context holding a span (log.InfoContext(ctx, ...)) carries the span's
// trace_id and span_id.
func (c *Common) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(TraceHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(TraceHandler(slog.NewTextHandler(w, opts)))
}

// TraceHandler wraps h so that every record whose context holds a valid
// span context gets trace_id and span_id attributes, which tie the line to
// its trace across services.
func TraceHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// Load loads and checks the definitions.
func (c *Common) Load() (*schemas.Registry, error) { return schemas.Load(c.Schemas) }

// Validator is a component config.
type Validator interface{ Validate() error }

// ValidatorFunc is a function as a Validator: a check of a command's own
// that spans several components' settings.
type ValidatorFunc func() error

// Validate calls f.
func (f ValidatorFunc) Validate() error { return f() }

// Context is canceled on SIGINT or SIGTERM.
func Context() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Close calls a shutdown function (telemetry's, which flushes the last
// spans) with ctx and logs its error: for a defer in a command's prologue,
// which returns its error rather than exiting, so that the deferred calls
// happen on failure too.
func Close(ctx context.Context, log *slog.Logger, what string, shutdown func(context.Context) error) {
	if err := shutdown(ctx); err != nil {
		log.Warn("close "+what, "error", err)
	}
}
