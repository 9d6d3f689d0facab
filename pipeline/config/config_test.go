package config

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lookupIn reads variables from env instead of the process's environment.
func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestParsePrecedence(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
		err  string
	}{
		{name: "default", want: "localhost:9092"},
		{name: "env", env: map[string]string{"FRESHET_KAFKA_BROKERS": "k1:9092"}, want: "k1:9092"},
		{name: "flag wins", args: []string{"--kafka-brokers=k2:9092"}, env: map[string]string{"FRESHET_KAFKA_BROKERS": "k1:9092"}, want: "k2:9092"},
		{name: "bad env", env: map[string]string{"FRESHET_TIMEOUT": "soon"}, err: `timeout: "soon" is not a duration; expected a number with a unit, e.g. 20ms, 5s, 1m (set by FRESHET_TIMEOUT)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			brokers := fs.String("kafka-brokers", "localhost:9092", "brokers")
			fs.Duration("timeout", time.Second, "timeout")
			err := ParseLookup(fs, tc.args, lookupIn(tc.env))
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, *brokers)
		})
	}
}

// settings is a flag set with one flag of each kind the services use.
func settings() *flag.FlagSet {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(discard{})
	fs.Duration("batch-wait", 20*time.Millisecond, "wait")
	fs.Int("partitions", 6, "partitions")
	fs.Int("max-errors", 0, "errors")
	fs.Int64("max-body", 1<<24, "bytes")
	fs.Uint("workers", 4, "workers")
	fs.Float64("speed", 0, "speed")
	fs.Bool("clear", false, "clear")
	fs.String("redis-url", "redis://localhost:6379/0", "url")
	var l List
	fs.Var(&l, "kafka-brokers", "brokers")
	fs.Func("mode", "a or b", func(s string) error {
		if s != "a" && s != "b" {
			return errors.New("not a or b")
		}
		return nil
	})
	return fs
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestSettingErrors: a value a setting refuses is reported with the
// setting, the value and the form expected, from a flag as from a variable,
// in place of the flag package's "invalid value ... parse error".
func TestSettingErrors(t *testing.T) {
	for _, tc := range []struct {
		name, flag, value, want string
	}{
		{"duration without unit", "batch-wait", "20", `batch-wait: "20" is not a duration; expected a number with a unit, e.g. 20ms, 5s, 1m`},
		{"int", "partitions", "six", `partitions: "six" is not an integer; expected a whole number, e.g. 6`},
		{"int with a zero default", "max-errors", "some", `max-errors: "some" is not an integer; expected a whole number, e.g. 10`},
		{"int out of range", "partitions", "99999999999999999999", `partitions: "99999999999999999999" is out of range; expected a whole number, e.g. 6`},
		{"int64", "max-body", "16MB", `max-body: "16MB" is not an integer; expected a whole number, e.g. 16777216`},
		{"uint", "workers", "-1", `workers: "-1" is not a non-negative integer; expected a whole number, e.g. 4`},
		{"float", "speed", "fast", `speed: "fast" is not a number; expected a number, e.g. 1.5`},
		{"bool", "clear", "maybe", `clear: "maybe" is not a boolean; expected true or false`},
		{"func", "mode", "c", `mode: "c" is not valid: not a or b`},
	} {
		t.Run(tc.name+"/flag", func(t *testing.T) {
			err := ParseLookup(settings(), []string{"--" + tc.flag + "=" + tc.value}, lookupIn(nil))
			var se *SettingError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.flag, se.Setting)
			require.EqualError(t, err, tc.want)
		})
		t.Run(tc.name+"/env", func(t *testing.T) {
			env := EnvName(tc.flag)
			err := ParseLookup(settings(), nil, lookupIn(map[string]string{env: tc.value}))
			require.EqualError(t, err, tc.want+" (set by "+env+")")
		})
	}
}

func TestEveryBadVariableIsReported(t *testing.T) {
	err := ParseLookup(settings(), nil, lookupIn(map[string]string{
		"FRESHET_BATCH_WAIT": "20", "FRESHET_PARTITIONS": "six", "FRESHET_SPEED": "2",
	}))
	require.ErrorContains(t, err, `batch-wait: "20"`)
	require.ErrorContains(t, err, `partitions: "six"`)
	require.NotContains(t, err.Error(), "speed")
}

// TestSettingErrorMasksPasswords: a URL quoted in an error, parseable or
// not, never shows its password.
func TestSettingErrorMasksPasswords(t *testing.T) {
	for _, value := range []string{
		"redis://:hunter2@h:6379/zero",
		"redis://u:hunter2@h:x/0",
		"u:hunter2@h",
		"redis://:hunter2@h1:1,redis://:hunter2@h2:notaport",
	} {
		t.Run(value, func(t *testing.T) {
			e := &SettingError{Setting: "redis-url", Value: value, Problem: "is not valid: parse " + value + ": bad", Env: "FRESHET_REDIS_URL"}
			require.NotContains(t, e.Error(), "hunter2")
			require.Contains(t, e.Error(), "xxxxx")
		})
	}
}

func TestUnknownFlagSuggestion(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"--redis-ulr=x", "flag provided but not defined: -redis-ulr; did you mean --redis-url?"},
		{"-partition", "flag provided but not defined: -partition; did you mean --partitions?"},
		{"--colour", "flag provided but not defined: -colour"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			require.EqualError(t, ParseLookup(settings(), []string{tc.arg}, nil), tc.want)
		})
	}
}

func TestHelpPassesThrough(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		require.ErrorIs(t, ParseLookup(settings(), []string{arg}, nil), flag.ErrHelp, arg)
	}
}

// TestValuesUnwrappedAfterParse: the wrappers that word errors are gone
// after parsing, whatever its outcome, so the usage still names each flag's
// type and a boolean flag still stands alone.
func TestValuesUnwrappedAfterParse(t *testing.T) {
	for _, args := range [][]string{{"--clear"}, {"--partitions=x"}, {"--nope"}} {
		fs := settings()
		err := ParseLookup(fs, args, nil)
		if args[0] == "--clear" {
			require.NoError(t, err)
			require.Equal(t, "true", fs.Lookup("clear").Value.String())
		}
		fs.VisitAll(func(f *flag.Flag) {
			_, wrapped := f.Value.(*checked)
			require.False(t, wrapped, "%v: --%s still wrapped", args, f.Name)
		})
		typ, _ := flag.UnquoteUsage(fs.Lookup("batch-wait"))
		require.Equal(t, "duration", typ)
	}
}

func TestRead(t *testing.T) {
	fs := settings()
	var evs Strings
	fs.Var(&evs, "events", "event files")
	line, err := Read(fs, []string{"--events", "a.parquet", "b.parquet", "--partitions", "3", "c.parquet", "--", "--d"},
		ReadOptions{Interspersed: true, Lookup: lookupIn(map[string]string{"FRESHET_PARTITIONS": "4", "FRESHET_BATCH_WAIT": "1s"})})
	require.NoError(t, err)
	require.Equal(t, []string{"b.parquet", "c.parquet", "--d"}, line.Args)
	require.Equal(t, Strings{"a.parquet"}, evs)
	require.Equal(t, map[string]string{"batch-wait": "FRESHET_BATCH_WAIT"}, line.FromEnv, "the flag wins over FRESHET_PARTITIONS")
	require.Equal(t, "3", fs.Lookup("partitions").Value.String())

	fs = settings()
	line, err = Read(fs, []string{"a", "--partitions", "3"}, ReadOptions{Lookup: lookupIn(map[string]string{"FRESHET_BATCH_WAIT": "1s"})})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "--partitions", "3"}, line.Args, "not interspersed: flags end at the first argument")
	require.Equal(t, "1s", fs.Lookup("batch-wait").Value.String())

	fs = settings()
	_, err = Read(fs, nil, ReadOptions{})
	require.NoError(t, err)
	require.Equal(t, "20ms", fs.Lookup("batch-wait").Value.String(), "no lookup: no variable read")
}

func TestEnvName(t *testing.T) {
	require.Equal(t, "FRESHET_KAFKA_BROKERS", EnvName("kafka-brokers"))
	require.Equal(t, "FRESHET_HTTP_ADDR", EnvName("http-addr"))
}

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"redis://:hunter2@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"redis://u:pw@h:1,redis://h:2", "redis://u:xxxxx@h:1,redis://h:2"},
		{"localhost:9092", "localhost:9092"},
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"redis://user@h:6379/0", "redis://user@h:6379/0"},
		{"redis://:p@ss/w@rd@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"redis://:hunter2@h:notaport/0", "redis://:xxxxx@h:notaport/0"},
		{"u:hunter2@h", "u:xxxxx@h"},
		{"rediss+cluster://:pw@h1:7000", "rediss+cluster://:xxxxx@h1:7000"},
	} {
		require.Equal(t, tc.want, Mask(tc.in), tc.in)
	}
}

func TestRedact(t *testing.T) {
	require.Equal(t, `parse "redis://:xxxxx@h:x": invalid port`, Redact(`parse "redis://:hunter2@h:x": invalid port`, "redis://:hunter2@h:x"))
	require.Equal(t, "no password here", Redact("no password here", "redis://h:1"))
}

func TestMarkdownTable(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("redis-url", "redis://localhost:6379/0", "Redis URL")
	var b strings.Builder
	require.NoError(t, WriteMarkdown(&b, fs))
	require.Contains(t, b.String(), "| `--redis-url` | `FRESHET_REDIS_URL` | `redis://localhost:6379/0` | Redis URL |")
}

func TestList(t *testing.T) {
	var l List
	require.NoError(t, l.Set(" a:1, b:2 ,,"))
	require.Equal(t, List{"a:1", "b:2"}, l)
	require.Equal(t, "a:1,b:2", l.String())
}

func TestReadInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var evs Strings
	fs.Var(&evs, "events", "event files")
	spine := fs.String("spine", "", "spine")
	line, err := Read(fs, []string{"--events", "a.parquet", "b.parquet", "--spine", "s.csv", "c.parquet", "--events=d.csv"}, ReadOptions{Interspersed: true})
	require.NoError(t, err)
	require.Equal(t, Strings{"a.parquet", "d.csv"}, evs)
	require.Equal(t, []string{"b.parquet", "c.parquet"}, line.Args)
	require.Equal(t, "s.csv", *spine)
}

// TestReadLocal: a flag of opt.Local is read from the command line only,
// however its variable is set; Given names the flags of the command line.
func TestReadLocal(t *testing.T) {
	fs := settings()
	clear := func() bool { return fs.Lookup("clear").Value.String() == "true" }
	env := lookupIn(map[string]string{"FRESHET_CLEAR": "true", "FRESHET_BATCH_WAIT": "1s"})
	line, err := Read(fs, []string{"--partitions=3"}, ReadOptions{Lookup: env, Local: map[string]bool{"clear": true}})
	require.NoError(t, err)
	require.False(t, clear(), "FRESHET_CLEAR is not read for a local flag")
	require.Equal(t, map[string]string{"batch-wait": "FRESHET_BATCH_WAIT"}, line.FromEnv)
	require.Equal(t, map[string]bool{"partitions": true}, line.Given, "a flag set from a variable is not given")

	_, err = Read(fs, []string{"--clear"}, ReadOptions{Lookup: env, Local: map[string]bool{"clear": true}})
	require.NoError(t, err)
	require.True(t, clear(), "the command line sets it")
}
