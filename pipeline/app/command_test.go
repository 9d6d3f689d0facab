package app

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// testCommand is a command with a subcommand and flags of a few kinds,
// writing to buffers and reading variables from env.
func testCommand(tb testing.TB, env map[string]string) (*Command, *bytes.Buffer, *bytes.Buffer) {
	tb.Helper()
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.Duration("batch-wait", 20*time.Millisecond, "longest a batch waits")
	fs.String("redis-url", "redis://localhost:6379/0", "Redis URL")
	fs.Int("max-errors", 0, "errors tolerated")
	var out, errOut bytes.Buffer
	c := &Command{
		Flags:    fs,
		Usage:    []string{"svc [flags]", "svc sub [flags]"},
		About:    "Do the thing.",
		Commands: []Subcommand{{Name: "replay", About: "replay files"}, {Name: "rebuild", About: "start over"}},
		Env:      true,
		stdout:   &out,
		stderr:   &errOut,
		lookup:   func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	return c, &out, &errOut
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		t.Run(arg, func(t *testing.T) {
			c, out, errOut := testCommand(t, map[string]string{"FRESHET_BATCH_WAIT": "not even parsed"})
			_, err := c.Parse([]string{"--max-errors=3", arg})
			require.ErrorIs(t, err, flag.ErrHelp)
			require.Equal(t, 0, ExitCode(err))
			require.Empty(t, errOut.String())
			require.True(t, strings.HasPrefix(out.String(), "usage: svc [flags]\n       svc sub [flags]\n\nDo the thing.\n"), out.String())
			require.Contains(t, out.String(), "commands:\n  replay   replay files\n  rebuild  start over\n")
			require.Contains(t, out.String(), "  --batch-wait duration\n        longest a batch waits (default 20ms; FRESHET_BATCH_WAIT)\n")
			require.Contains(t, out.String(), "  --redis-url string\n        Redis URL (default \"redis://localhost:6379/0\"; FRESHET_REDIS_URL)\n")
			require.Contains(t, out.String(), "  --max-errors int\n        errors tolerated (FRESHET_MAX_ERRORS)\n", "no zero default")
		})
	}
}

func TestUsageWithoutVariables(t *testing.T) {
	c, out, _ := testCommand(t, nil)
	c.Env, c.Commands = false, nil
	c.WriteUsage(out)
	require.Contains(t, out.String(), "\nflags:\n  --batch-wait duration\n        longest a batch waits (default 20ms)\n")
	require.NotContains(t, out.String(), "FRESHET_")
	require.NotContains(t, out.String(), "commands:")
}

// TestBadCommandLine: a bad flag or argument prints the error and the usage
// on stderr, nothing on stdout, and exits 2.
func TestBadCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--max-errrors=3"}, "svc: flag provided but not defined: -max-errrors; did you mean --max-errors?"},
		{"bad value", []string{"--batch-wait", "20"}, `svc: batch-wait: "20" is not a duration; expected a number with a unit, e.g. 20ms, 5s, 1m`},
		{"missing value", []string{"--batch-wait"}, "svc: flag needs an argument: -batch-wait"},
		{"misspelt subcommand", []string{"relpay"}, `svc: unknown command "relpay"; did you mean replay?`},
		{"unknown subcommand", []string{"serve"}, `svc: unknown command "serve" (commands: replay, rebuild)`},
		{"argument after flags", []string{"--max-errors=1", "-"}, `svc: unexpected argument "-"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, out, errOut := testCommand(t, nil)
			_, err := c.Parse(tc.args)
			var ue *UsageError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, 2, ExitCode(err))
			require.Empty(t, out.String())
			require.True(t, strings.HasPrefix(errOut.String(), tc.want+"\n\nusage: svc [flags]\n"), errOut.String())
		})
	}
}

// TestBadVariables: bad FRESHET_* values are all listed, without the usage
// (a container log has no use for it), with exit status 2.
func TestBadVariables(t *testing.T) {
	c, out, errOut := testCommand(t, map[string]string{"FRESHET_BATCH_WAIT": "20", "FRESHET_MAX_ERRORS": "many"})
	_, err := c.Parse(nil)
	require.Equal(t, 2, ExitCode(err))
	require.Empty(t, out.String())
	require.Equal(t, "svc: invalid configuration:\n"+
		`  batch-wait: "20" is not a duration; expected a number with a unit, e.g. 20ms, 5s, 1m (set by FRESHET_BATCH_WAIT)`+"\n"+
		`  max-errors: "many" is not an integer; expected a whole number, e.g. 10 (set by FRESHET_MAX_ERRORS)`+"\n", errOut.String())
}

func TestArguments(t *testing.T) {
	var got []string
	take := func(line config.Line) error { got = line.Args; return nil }
	c, _, _ := testCommand(t, nil)
	c.Positional = take
	require.NoError(t, c.Start([]string{"--max-errors=1", "a", "--batch-wait=1s"}))
	require.Equal(t, []string{"a", "--batch-wait=1s"}, got, "flags end at the first argument")

	c, _, _ = testCommand(t, nil)
	c.Positional, c.Interspersed = take, true
	require.NoError(t, c.Start([]string{"a", "--batch-wait=1s", "b"}))
	require.Equal(t, []string{"a", "b"}, got)
	require.Equal(t, "1s", c.Flags.Lookup("batch-wait").Value.String())

	// Positional's error is a usage error, printed with the usage.
	c, out, errOut := testCommand(t, nil)
	c.Positional = func(config.Line) error { return errors.New("no file to replay") }
	err := c.Start([]string{"a"})
	require.Equal(t, 2, ExitCode(err))
	require.Empty(t, out.String())
	require.True(t, strings.HasPrefix(errOut.String(), "svc: no file to replay\n\nusage: svc [flags]\n"), errOut.String())
}

// TestOptions: a flag registered with Options is read from the command
// line only, listed apart in the usage without a variable, and not among
// the command's variables.
func TestOptions(t *testing.T) {
	c, out, _ := testCommand(t, map[string]string{"FRESHET_LIMIT": "10", "FRESHET_MAX_ERRORS": "3"})
	var limit int
	c.Options(func(fs *flag.FlagSet) { fs.IntVar(&limit, "limit", 0, "stop after this many") })
	require.True(t, c.IsOption("limit"))
	require.False(t, c.IsOption("max-errors"))
	require.NoError(t, c.Start(nil))
	require.Zero(t, limit, "FRESHET_LIMIT is not read")
	require.Equal(t, "3", c.Flags.Lookup("max-errors").Value.String(), "a setting still is")
	require.NoError(t, c.Start([]string{"--limit=5"}))
	require.Equal(t, 5, limit)
	require.Equal(t, []string{"FRESHET_BATCH_WAIT", "FRESHET_MAX_ERRORS", "FRESHET_REDIS_URL"}, c.Variables())

	c.WriteUsage(out)
	require.Contains(t, out.String(), "\nflags of this run (command line only):\n  --limit int\n        stop after this many\n\nflags (each also read")
	require.NotContains(t, out.String(), "FRESHET_LIMIT")

	c.Env = false
	require.Nil(t, c.Variables(), "a command without Env reads none")
}

// check is a Validator returning err.
type check struct{ err error }

func (c check) Validate() error { return c.err }

// TestStartValidates: every invalid setting is listed; one set by a variable
// says which. The usage follows errors of the command line alone.
func TestStartValidates(t *testing.T) {
	redis := func() error {
		return &config.SettingError{Setting: "redis-url", Value: "redis://:hunter2@bogus", Problem: "is not a URL", Expected: "redis://host:6379/0"}
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		cfgs  []Validator
		want  string
		usage bool
	}{
		{"valid", nil, nil, []Validator{check{}, check{}}, "", false},
		{"from a variable", nil, map[string]string{"FRESHET_REDIS_URL": "redis://:hunter2@bogus"},
			[]Validator{check{redis()}, check{errors.New("group-id: must not be empty")}},
			"svc: invalid configuration:\n" +
				`  redis-url: "redis://:xxxxx@bogus" is not a URL; expected redis://host:6379/0 (set by FRESHET_REDIS_URL)` + "\n" +
				"  group-id: must not be empty\n", false},
		{"from a flag", []string{"--redis-url=redis://:hunter2@bogus"}, map[string]string{"FRESHET_REDIS_URL": "redis://h:1/0"},
			[]Validator{check{redis()}},
			"svc: invalid configuration:\n" +
				`  redis-url: "redis://:xxxxx@bogus" is not a URL; expected redis://host:6379/0` + "\n", true},
		{"required", nil, nil, []Validator{ValidatorFunc(func() error { return errors.New("--spine is required") })},
			"svc: invalid configuration:\n  --spine is required\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, out, errOut := testCommand(t, tc.env)
			c.Validators = tc.cfgs
			err := c.Start(tc.args)
			require.Empty(t, out.String())
			if tc.want == "" {
				require.NoError(t, err)
				require.Empty(t, errOut.String())
				return
			}
			require.Equal(t, 2, ExitCode(err))
			want := tc.want
			if tc.usage {
				want += "\nusage: svc [flags]\n"
				require.True(t, strings.HasPrefix(errOut.String(), want), errOut.String())
			} else {
				require.Equal(t, want, errOut.String())
			}
		})
	}
}

func TestFail(t *testing.T) {
	c, out, errOut := testCommand(t, nil)
	err := c.Fail(errors.New("--spine is required"))
	require.Equal(t, 2, ExitCode(err))
	require.EqualError(t, err, "--spine is required")
	require.Empty(t, out.String())
	require.True(t, strings.HasPrefix(errOut.String(), "svc: --spine is required\n\nusage: svc [flags]\n"))
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{fmt.Errorf("parse: %w", flag.ErrHelp), 0},
		{&UsageError{errors.New("bad flag")}, 2},
		{fmt.Errorf("demo: %w", &UsageError{errors.New("bad flag")}), 2},
		{errors.New("redis unreachable"), 1},
	} {
		require.Equal(t, tc.want, ExitCode(tc.err), "%v", tc.err)
	}
}

func TestWarnUnknown(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	WarnUnknown(log, []string{"FRESHET_REDIS_ULR=redis://:hunter2@h:6379/0", "FRESHET_REDIS_URL=x", "FRESHET_WHATEVER=1", "PATH=/bin"},
		[]string{"FRESHET_REDIS_URL", "FRESHET_KAFKA_BROKERS"})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], `level=WARN msg="FRESHET_REDIS_ULR is not a freshet setting; did you mean FRESHET_REDIS_URL?"`)
	require.Contains(t, lines[1], `level=WARN msg="FRESHET_WHATEVER is not a freshet setting`)
	require.NotContains(t, b.String(), "hunter2", "values are never logged")

	b.Reset()
	WarnUnknown(log, []string{"FRESHET_REDIS_URL=x"}, []string{"FRESHET_REDIS_URL"})
	require.Empty(t, b.String())
}
