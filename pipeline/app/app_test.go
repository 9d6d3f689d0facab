package app

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

func TestCommonValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Common
		err  string
	}{
		{"ok", Common{Schemas: "s", LogLevel: "debug", LogFormat: "json"}, ""},
		{"no schemas", Common{LogLevel: "info", LogFormat: "text"}, `schemas: "" is empty; expected a YAML file or a directory of *.yaml files`},
		{"bad level", Common{Schemas: "s", LogLevel: "loud", LogFormat: "text"}, `log-level: "loud" is not a log level; expected debug, info, warn or error`},
		{"bad format", Common{Schemas: "s", LogLevel: "info", LogFormat: "xml"}, `log-format: "xml" is not a log format; expected text or json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
		})
	}
}

func TestLogger(t *testing.T) {
	var c Common
	c.RegisterFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	c.LogFormat, c.LogLevel = "json", "warn"
	var b bytes.Buffer
	log := c.Logger(&b)
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	require.NotContains(t, b.String(), "hidden")
	require.Contains(t, b.String(), `"msg":"shown","k":"v"`)
}

func TestLoggerTraceIDs(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			c := Common{LogFormat: format, LogLevel: "info"}
			var b bytes.Buffer
			log := c.Logger(&b).With("svc", "x")
			tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
			sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
			ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
			log.InfoContext(ctx, "in a span")
			log.InfoContext(context.Background(), "outside")
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			require.Len(t, lines, 2)
			require.Contains(t, lines[0], "0af7651916cd43dd8448eb211c80319c")
			require.Contains(t, lines[0], "b7ad6b7169203331")
			require.Contains(t, lines[0], "svc")
			require.NotContains(t, lines[1], "trace_id")
		})
	}
}

func TestCloseLogsTheShutdownError(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	Close(context.Background(), log, "telemetry", func(context.Context) error { return nil })
	require.Empty(t, buf.String())
	Close(context.Background(), log, "telemetry", func(context.Context) error { return errors.New("exporter timed out") })
	require.Contains(t, buf.String(), `msg="close telemetry" error="exporter timed out"`)
}

// TestCommonDefaults: a log level set before registering is the default
// (freshet dev's warn); otherwise info.
func TestCommonDefaults(t *testing.T) {
	for _, tc := range []struct {
		c    Common
		want string
	}{{Common{}, "info"}, {Common{LogLevel: "warn"}, "warn"}} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		tc.c.RegisterFlags(fs)
		require.NoError(t, fs.Parse(nil))
		require.Equal(t, tc.want, fs.Lookup("log-level").DefValue)
		require.Equal(t, DefaultSchemas, tc.c.Schemas)
		require.NoError(t, tc.c.Validate())
	}
}
