package cli

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/config"
)

// TestContractVariables checks that the settings the issue and the README
// name exist on the services that need them, under their exact names.
func TestContractVariables(t *testing.T) {
	want := map[string][]string{
		"ingest":    {"FRESHET_SCHEMAS", "FRESHET_KAFKA_BROKERS", "FRESHET_HTTP_ADDR", "FRESHET_TOPIC_PREFIX", "FRESHET_PARTITIONS", "FRESHET_MAX_BODY"},
		"featurize": {"FRESHET_SCHEMAS", "FRESHET_KAFKA_BROKERS", "FRESHET_REDIS_URL", "FRESHET_HTTP_ADDR", "FRESHET_TOPIC_PREFIX", "FRESHET_GROUP_ID", "FRESHET_PARTITIONS"},
		"serve":     {"FRESHET_SCHEMAS", "FRESHET_REDIS_URL", "FRESHET_HTTP_ADDR", "FRESHET_MAX_ENTITIES"},
	}
	defaults := map[string]map[string]string{
		"ingest":    {"FRESHET_HTTP_ADDR": ":8081", "FRESHET_TOPIC_PREFIX": "freshet.events.", "FRESHET_PARTITIONS": "6", "FRESHET_KAFKA_BROKERS": "localhost:9092", "FRESHET_MAX_BODY": "16777216"},
		"featurize": {"FRESHET_HTTP_ADDR": ":8082", "FRESHET_GROUP_ID": "freshet-featurize", "FRESHET_REDIS_URL": "redis://localhost:6379/0"},
		"serve":     {"FRESHET_HTTP_ADDR": ":8080", "FRESHET_MAX_ENTITIES": "10000"},
	}
	sets := map[string]*flag.FlagSet{}
	for _, p := range Programs() {
		sets[p.Name] = p.Flags
	}
	require.Len(t, sets, 4)
	for svc, vars := range want {
		have := map[string]config.Setting{}
		for _, s := range config.Table(sets[svc]) {
			have[s.Env] = s
		}
		for _, v := range vars {
			require.Contains(t, have, v, "%s lacks %s", svc, v)
		}
		for v, def := range defaults[svc] {
			require.Equal(t, def, have[v].Default, "%s default of %s", svc, v)
		}
	}
}

func TestEverySettingIsDocumented(t *testing.T) {
	for _, c := range Commands() {
		c.Flags.VisitAll(func(f *flag.Flag) {
			require.NotEmpty(t, strings.TrimSpace(f.Usage), "%s --%s has no usage text", c.Flags.Name(), f.Name)
		})
	}
}

// TestDefaultsValidate: every command runs with its defaults, but for what
// a run must name (the files and event type of a replay, a backfill's
// inputs and output).
func TestDefaultsValidate(t *testing.T) {
	needsMore := map[string]bool{"ingest replay": true, "featurize backfill": true}
	for _, c := range Commands() {
		if needsMore[c.Flags.Name()] {
			continue
		}
		c.SetOutput(io.Discard, io.Discard)
		require.NoError(t, c.Start(nil), c.Flags.Name())
	}
}

// TestProducerFlags: the producer's settings are offered by the commands
// that publish (ingest, ingest replay) and by no other.
func TestProducerFlags(t *testing.T) {
	for _, c := range Commands() {
		name := c.Flags.Name()
		produces := name == "ingest" || name == "ingest replay"
		for _, f := range []string{"kafka-batch-timeout", "kafka-write-timeout"} {
			require.Equal(t, produces, c.Flags.Lookup(f) != nil, "%s --%s", name, f)
		}
	}
}

// TestSubcommandsReadTheirProgramsVariables: every variable a command
// reads is one a program's table (`freshet config`) lists, with the same
// default and meaning, so the tables document every variable of every
// command; and the flags of one run read none.
func TestSubcommandsReadTheirProgramsVariables(t *testing.T) {
	programs := map[string]*flag.FlagSet{}
	for _, p := range Programs() {
		programs[p.Name] = p.Flags
	}
	// The program whose table documents a command's variables.
	home := map[string]string{"ingest": "ingest", "ingest replay": "ingest", "featurize": "featurize",
		"featurize rebuild": "featurize", "featurize backfill": "featurize", "serve": "serve",
		"freshet demo": "demo", "freshet validate": "serve", "freshet plan": "featurize"}
	for _, c := range Commands() {
		name := c.Flags.Name()
		c.Flags.VisitAll(func(f *flag.Flag) {
			if !c.Env || c.IsOption(f.Name) {
				return
			}
			d := programs[home[name]].Lookup(f.Name)
			require.NotNil(t, d, "%s reads %s, which the table of %q in `freshet config` does not list", name, config.EnvName(f.Name), home[name])
			require.Equal(t, d.Usage, f.Usage, "%s --%s", name, f.Name)
			require.Equal(t, d.DefValue, f.DefValue, "%s --%s", name, f.Name)
		})
	}
	options := map[string][]string{
		"ingest replay":      {"event", "limit", "max-errors", "rebase-time", "rejects", "speed", "strict-lateness"},
		"featurize rebuild":  {"clear"},
		"freshet plan":       {"allow-partial", "json"},
		"featurize backfill": {"at-column", "entity-column", "events", "max-errors", "out", "rejects", "spine", "view"},
	}
	for _, c := range Commands() {
		var got []string
		c.Flags.VisitAll(func(f *flag.Flag) {
			if c.IsOption(f.Name) {
				got = append(got, f.Name)
			}
		})
		require.Equal(t, options[c.Flags.Name()], got, "flags of one run of %s", c.Flags.Name())
	}
}

// TestRequiredSettings: what a run cannot do without is refused by the
// command's validation, every missing one at once, with exit status 2.
func TestRequiredSettings(t *testing.T) {
	for _, tc := range []struct {
		cmd  func() *Command
		args []string
		want []string
	}{
		{func() *Command { _, c := ReplayCommand(); return c }, nil,
			[]string{"--event is required", "no file to replay"}},
		{func() *Command { _, c := ReplayCommand(); return c }, []string{"--event", "transaction", "--speed", "-1", "--limit=-2", "f.ndjson"},
			[]string{"--speed -1 is negative", "--limit -2 is negative"}},
		{func() *Command { _, c := BackfillCommand(); return c }, []string{"--spine", "s.csv"},
			[]string{"--events is required", "--out is required"}},
		{func() *Command { _, c := DemoCommand(); return c }, []string{"--batch", "0", "--live-every=-1s", "--ingest-url", "localhost:8081", "--event="},
			[]string{`batch: "0" is less than 1`, `live-every: "-1s" is negative`, `ingest-url: "localhost:8081" is not an HTTP URL`, `event: "" is empty`}},
		{func() *Command { _, c := DevCommand(); return c }, []string{"--kafka-port", "70000", "--serve-addr", "8080"},
			[]string{`kafka-port: "70000" is not a port`, `serve-addr: "8080" is not an address`}},
		{func() *Command { _, c := ValidateCommand(); return c }, []string{"--schemas="},
			[]string{`schemas: "" is empty`}},
	} {
		c := tc.cmd()
		t.Run(c.Flags.Name(), func(t *testing.T) {
			c.SetOutput(io.Discard, io.Discard)
			err := c.Start(tc.args)
			require.Equal(t, 2, app.ExitCode(err), "%v", err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestPositional: the files of a replay and a backfill are their
// positional arguments; freshet validate's PATH stands for --schemas.
func TestPositional(t *testing.T) {
	r, c := ReplayCommand()
	require.NoError(t, c.Start([]string{"a.ndjson", "--event", "transaction", "b.csv"}))
	require.Equal(t, []string{"a.ndjson", "b.csv"}, r.Replay.Files)
	require.Same(t, &r.Ingest.Times, r.Replay.Times)

	b, c := BackfillCommand()
	require.NoError(t, c.Start([]string{"--events", "a.ndjson", "b.csv", "--spine", "s.csv", "--out", "o.parquet"}))
	require.Equal(t, []string{"a.ndjson", "b.csv"}, b.Options.Events)

	v, c := ValidateCommand()
	require.NoError(t, c.Start([]string{"shop"}))
	require.Equal(t, "shop", v.Schemas)
	_, c = ValidateCommand()
	c.SetOutput(io.Discard, io.Discard)
	require.ErrorContains(t, c.Start([]string{"--schemas", "a", "b"}), "the definitions are given twice")
	v, c = ValidateCommand()
	require.NoError(t, c.Start(nil))
	require.Equal(t, app.DefaultSchemas, v.Schemas)
}
