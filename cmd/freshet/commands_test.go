package main_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// bin is the directory of the ingest, featurize, serve and freshet binaries
// TestMain builds once; root is the repository's.
var bin, root string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	var err error
	if root, err = testenv.FindRepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if bin, err = os.MkdirTemp("", "freshet-commands-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bin)
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./cmd/ingest", "./cmd/featurize", "./cmd/serve", "./cmd/freshet")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the commands: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// result is what a command did.
type result struct {
	code           int
	stdout, stderr string
}

// run runs a command line ("serve --help") from the repository's root with
// the test's environment minus every FRESHET_* and OTEL_* variable, plus
// env.
func run(tb testing.TB, line string, env ...string) result {
	tb.Helper()
	args := strings.Fields(line)
	cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FRESHET_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		tb.Fatalf("%s: %v", line, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// TestHelp: every command and subcommand answers -h and --help with its
// usage on stdout, exit status 0, and the usage names its subcommands.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		line    string
		usage   string   // the usage's first line starts so
		mention []string // and the usage holds these
	}{
		{"ingest --help", "usage: ingest [flags]", []string{"\n  replay ", "ingest replay --event NAME", "--kafka-brokers", "FRESHET_KAFKA_BROKERS"}},
		{"ingest -h", "usage: ingest [flags]", []string{"\n  replay "}},
		{"ingest replay --help", "usage: ingest replay --event NAME", []string{"--event string", "--rejects", "FRESHET_KAFKA_BROKERS"}},
		{"ingest replay --event transaction -h", "usage: ingest replay", nil},
		{"featurize --help", "usage: featurize [flags]", []string{"\n  rebuild ", "\n  backfill ", "featurize backfill --events", "--batch-wait duration"}},
		{"featurize -h", "usage: featurize [flags]", []string{"\n  rebuild ", "\n  backfill "}},
		{"featurize rebuild --help", "usage: featurize rebuild [--clear]", []string{"--clear", "FRESHET_GROUP_ID"}},
		{"featurize backfill --help", "usage: featurize backfill --events FILE...", []string{"--spine string", "--view string", "--entity-column"}},
		{"featurize backfill events.ndjson --help", "usage: featurize backfill", nil},
		{"serve --help", "usage: serve [flags]", []string{"--max-entities int", "FRESHET_REDIS_URL"}},
		{"serve -h", "usage: serve [flags]", nil},
		{"freshet --help", "usage: freshet COMMAND", []string{"\n  dev ", "\n  init ", "\n  validate ", "\n  config ", "\n  kafka ", "\n  demo ", "\n  healthcheck ", "\n  token "}},
		{"freshet -h", "usage: freshet COMMAND", []string{"\n  healthcheck "}},
		{"freshet help", "usage: freshet COMMAND", []string{"\n  dev "}},
		{"freshet help dev", "usage: freshet dev", []string{"--kafka-port int"}},
		{"freshet dev --help", "usage: freshet dev [flags]", []string{"--kafka-port int", "--live-every duration"}},
		{"freshet validate --help", "usage: freshet validate [PATH]", nil},
		{"freshet init --help", "usage: freshet init [DIR]", nil},
		{"freshet validate -h", "usage: freshet validate [PATH]", nil},
		{"freshet config --help", "usage: freshet config [SERVICE]", []string{"featurize, ingest, serve, demo"}},
		{"freshet kafka --help", "usage: freshet kafka [flags]", []string{"--port int", "--data-dir"}},
		{"freshet demo --help", "usage: freshet demo [flags]", []string{"--ingest-url string", "FRESHET_INGEST_URL"}},
		{"freshet healthcheck --help", "usage: freshet healthcheck URL", nil},
		{"freshet token --help", "usage: freshet token new NAME SCOPES", []string{"\n  new ", "ingest (send\nevents), serve"}},
		{"freshet token new --help", "usage: freshet token new NAME SCOPES", []string{"freshet token new prometheus metrics"}},
		{"freshet help token", "usage: freshet token new NAME SCOPES", nil},
		{"serve --help", "usage: serve [flags]", []string{"--tokens string", "FRESHET_TOKENS"}},
		{"freshet dev --help", "usage: freshet dev [flags]", []string{"--tokens string"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			r := run(t, tc.line)
			require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			require.Empty(t, r.stderr)
			require.True(t, strings.HasPrefix(r.stdout, tc.usage), "stdout: %s", r.stdout)
			for _, m := range tc.mention {
				require.Contains(t, r.stdout, m)
			}
		})
	}
}

// TestValidateHelpOpensNoFile: `freshet validate --help` prints the usage
// instead of loading definitions from a file named --help.
func TestValidateHelpOpensNoFile(t *testing.T) {
	r := run(t, "freshet validate --help")
	require.NotContains(t, r.stdout+r.stderr, "no such file")
	require.NotContains(t, r.stdout, "OK:")
}

// TestUnknownFlag: an unknown flag exits 2 with the error and the usage on
// stderr, and nothing on stdout.
func TestUnknownFlag(t *testing.T) {
	for _, line := range []string{
		"ingest", "ingest replay", "featurize", "featurize rebuild", "featurize backfill", "serve",
		"freshet dev", "freshet init", "freshet validate", "freshet config", "freshet kafka", "freshet demo", "freshet healthcheck",
		"freshet token new",
	} {
		t.Run(line, func(t *testing.T) {
			r := run(t, line+" --no-such-flag")
			require.Equal(t, 2, r.code)
			require.Empty(t, r.stdout)
			require.True(t, strings.HasPrefix(r.stderr, line+": flag provided but not defined: -no-such-flag\n\nusage: "+line), "stderr: %s", r.stderr)
		})
	}
}

// TestBadCommandLines: other command lines a command cannot take exit 2,
// saying why.
func TestBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		line string
		env  []string
		want string
	}{
		{"ingest relpay", nil, `ingest: unknown command "relpay"; did you mean replay?`},
		{"featurize backfil", nil, `featurize: unknown command "backfil"; did you mean backfill?`},
		{"serve extra", nil, `serve: unexpected argument "extra"`},
		{"freshet serve", nil, `freshet: unknown command "serve"`},
		{"freshet dve", nil, `freshet: unknown command "dve"; did you mean dev?`},
		{"freshet config nope", nil, `freshet config: unknown service "nope" (services: featurize, ingest, serve, demo)`},
		{"freshet config ingset", nil, `freshet config: unknown service "ingset" (services: featurize, ingest, serve, demo); did you mean ingest?`},
		{"freshet healthcheck", nil, "freshet healthcheck: one URL expected, got 0 arguments"},
		{"freshet validate a b", nil, "freshet validate: one path at most, got 2"},
		{"freshet init a b", nil, "freshet init: one directory at most, got 2"},
		{"ingest replay --event transaction", nil, "ingest replay: invalid configuration:\n  no file to replay: name one or more after the flags\n\nusage: ingest replay"},
		{"ingest replay f.ndjson", nil, "ingest replay: invalid configuration:\n  --event is required: the event type of the rows, e.g. --event transaction\n\nusage:"},
		{"featurize backfill --spine s.csv", nil, "featurize backfill: invalid configuration:\n" +
			"  --events is required: one or more event files, after --events or after the flags\n" +
			"  --out is required: the output file (.parquet, .arrow, .feather, .arrows or .csv)\n\nusage: featurize backfill"},
		{"freshet demo --batch 0", nil, `freshet demo: invalid configuration:` + "\n" +
			`  batch: "0" is less than 1; expected a number of events per request of at least 1, e.g. 500` + "\n\nusage: freshet demo"},
		{"freshet demo", []string{"FRESHET_LIVE_EVERY=-2s"}, `live-every: "-2s" is negative; expected a duration such as 2s, or 0 for no live events (set by FRESHET_LIVE_EVERY)`},
		{"freshet dev --serve-addr 8080", nil, `serve-addr: "8080" is not an address; expected [host]:port, e.g. :8081 or 127.0.0.1:8081`},
		{"freshet validate --schemas a b", nil, "freshet validate: the definitions are given twice, as PATH b and as --schemas a: give one"},
		{"featurize --kafka-write-timeout 1s", nil, "featurize: flag provided but not defined: -kafka-write-timeout"},
		{"featurize --batch-wait 20", nil, `featurize: batch-wait: "20" is not a duration; expected a number with a unit, e.g. 20ms, 5s, 1m` + "\n\nusage: featurize"},
		{"featurize rebuild --clear=maybe", nil, `featurize rebuild: clear: "maybe" is not a boolean; expected true or false`},
		{"featurize", []string{"FRESHET_BATCH_WAIT=20"}, "featurize: invalid configuration:\n" +
			`  batch-wait: "20" is not a duration; expected a number with a unit, e.g. 20ms, 5s, 1m (set by FRESHET_BATCH_WAIT)` + "\n"},
		{"ingest", []string{"FRESHET_KAFKA_BROKERS=kafka1"}, "ingest: invalid configuration:\n" +
			`  kafka-brokers: "kafka1" is not host:port; expected host:port[,host:port...], e.g. kafka1:9092,kafka2:9092 (set by FRESHET_KAFKA_BROKERS)` + "\n"},
		{"serve", []string{"FRESHET_LOG_FORMAT=xml"}, `log-format: "xml" is not a log format; expected text or json (set by FRESHET_LOG_FORMAT)`},
		{"freshet demo", []string{"FRESHET_BATCH=lots"}, `freshet demo: invalid configuration:` + "\n" +
			`  batch: "lots" is not an integer; expected a whole number, e.g. 500 (set by FRESHET_BATCH)`},
		{"serve --redis-url redis://:hunter2@redis:port/0", nil, `redis-url: "redis://:xxxxx@redis:port/0" is not a valid Redis URL: invalid port ":port" after host`},
		{"freshet token", nil, "freshet token: name a command: freshet token new NAME SCOPES\n\nusage: freshet token new NAME SCOPES"},
		{"freshet token nwe", nil, `freshet token: unknown command "nwe"; did you mean new?`},
		{"freshet token new", nil, "freshet token new: want NAME and SCOPES, got 0 argument(s)"},
		{"freshet token new shop", nil, "freshet token new: want NAME and SCOPES, got 1 argument(s)"},
		{"freshet token new shop/api serve", nil, "freshet token new: NAME: a token's name is 1 to 64 letters, digits, '.', '_' or '-'"},
		{"freshet token new shop serv,ingest", nil, `freshet token new: SCOPES: unknown scope "serv" (scopes: ingest, serve, metrics, admin); did you mean serve?`},
		{"serve --tokens /nonexistent/tokens", nil, `serve: invalid configuration:` + "\n" + `  tokens: "/nonexistent/tokens" cannot be read: no such file`},
	} {
		t.Run(tc.line+strings.Join(tc.env, " "), func(t *testing.T) {
			r := run(t, tc.line, tc.env...)
			require.Equal(t, 2, r.code, "stderr: %s", r.stderr)
			require.Empty(t, r.stdout)
			require.Contains(t, r.stderr, tc.want)
			require.NotContains(t, r.stderr, "hunter2")
			if len(tc.env) > 0 {
				require.NotContains(t, r.stderr, "usage:", "a bad variable needs no usage")
			}
		})
	}
}

// TestUnknownVariableWarning: a FRESHET_* variable no freshet program knows
// is reported once at start, with the likely misspelling and never its
// value; a variable of another service is not. The definitions do not load,
// so each command stops right after starting.
func TestUnknownVariableWarning(t *testing.T) {
	env := []string{
		"FRESHET_REDIS_ULR=redis://:hunter2@redis:6379/0",
		"FRESHET_KAFKA_BROKERS=kafka:9092", // ingest's and featurize's, not serve's: no warning
		"FRESHET_TEST_REDIS_URL=redis://localhost:6379/0",
		"FRESHET_SCHEMAS=" + filepath.Join(t.TempDir(), "missing.yaml"),
	}
	for _, line := range []string{
		"serve",
		"featurize backfill --events e.ndjson --spine s.csv --out o.csv",
	} {
		t.Run(line, func(t *testing.T) {
			r := run(t, line, env...)
			require.Equal(t, 1, r.code, "stderr: %s", r.stderr)
			require.Equal(t, 1, strings.Count(r.stderr, "is not a freshet setting"), "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, `level=WARN msg="FRESHET_REDIS_ULR is not a freshet setting; did you mean FRESHET_REDIS_URL?"`)
			require.NotContains(t, r.stderr, "hunter2")
		})
	}
}

// TestBackfillSpineLacksViewKeys: without --view, a spine keyed by user_id
// alone fails, naming the view it cannot serve and the flags that choose.
func TestBackfillSpineLacksViewKeys(t *testing.T) {
	dir := t.TempDir()
	spine := filepath.Join(dir, "labels.csv")
	require.NoError(t, os.WriteFile(spine, []byte("user_id,ts,label\nu_0007,2024-06-01T12:00:00Z,1\n"), 0o644))
	out := filepath.Join(dir, "train.parquet")
	r := run(t, "featurize backfill --events schemas/example/events.ndjson --spine "+spine+" --out "+out)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "spine "+spine+" has no column merchant_id for view merchant_activity (keyed by merchant_id); "+
		"choose the views to compute with --view user_spend, or name the spine's entity column with --entity-column")
	require.NoFileExists(t, out)

	r = run(t, "featurize backfill --events schemas/example/events.ndjson --spine "+spine+" --out "+out+" --view user_spend")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	require.FileExists(t, out)
}

// TestRunFlagsReadNoVariable: the flags of one run are read from the
// command line only: a variable of the same name neither sets them (the
// replay still lacks its --event) nor is known (it is warned about).
func TestRunFlagsReadNoVariable(t *testing.T) {
	r := run(t, "ingest replay f.ndjson", "FRESHET_EVENT=transaction")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--event is required")

	r = run(t, "featurize backfill --events e.ndjson --spine s.csv --out o.csv",
		"FRESHET_CLEAR=true", "FRESHET_SCHEMAS="+filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	require.Contains(t, r.stderr, `msg="FRESHET_CLEAR is not a freshet setting`)
}

// TestValidateDefinitions: freshet validate checks --schemas, read from
// FRESHET_SCHEMAS too, or PATH, which wins over the variable.
func TestValidateDefinitions(t *testing.T) {
	missing := "FRESHET_SCHEMAS=" + filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		line string
		env  []string
		code int
		want string
	}{
		{"freshet validate", nil, 0, "schemas/example: OK: 1 event type(s)"},
		{"freshet validate", []string{"FRESHET_SCHEMAS=schemas/example/transactions.yaml"}, 0, "schemas/example/transactions.yaml: OK"},
		{"freshet validate --schemas schemas/example/transactions.yaml", []string{missing}, 0, "schemas/example/transactions.yaml: OK"},
		{"freshet validate schemas/example", []string{missing}, 0, "schemas/example: OK"},
		{"freshet validate", []string{missing}, 1, "missing.yaml"},
		// A misspelt variable is named, not silently replaced by the default.
		{"freshet validate", []string{"FRESHET_SCHEMA=x"}, 0, "FRESHET_SCHEMA is not a freshet setting; did you mean FRESHET_SCHEMAS?"},
	} {
		t.Run(tc.line+strings.Join(tc.env, " "), func(t *testing.T) {
			r := run(t, tc.line, tc.env...)
			require.Equal(t, tc.code, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stdout+r.stderr, tc.want)
		})
	}
}

// TestTokenNew: freshet token new prints a token and, apart, the line of
// the tokens file, which the services accept as printed and which admits
// that token; every run prints another token.
func TestTokenNew(t *testing.T) {
	r := run(t, "freshet token new shop ingest,serve")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	require.Empty(t, r.stderr)
	var values []string // the lines that are no comment
	for _, line := range strings.Split(r.stdout, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			values = append(values, line)
		}
	}
	require.Len(t, values, 2, r.stdout)
	token, line := values[0], values[1]
	raw, err := base64.RawURLEncoding.DecodeString(token)
	require.NoError(t, err, "the token is base64url: %q", token)
	require.GreaterOrEqual(t, len(raw), 32)
	require.Regexp(t, `^shop ingest,serve sha256:[0-9a-f]{64}$`, line)
	require.Equal(t, 1, strings.Count(r.stdout, token), "the token is printed once")

	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte("# added by hand\n"+line+"\n"), 0o600))
	set, err := auth.Parse(path, []byte(line))
	require.NoError(t, err)
	require.Equal(t, "shop", set.Lookup(token).Name)
	// The services take the file: they go past their settings and stop
	// only at the definitions, which are missing.
	for _, svc := range []string{"ingest", "serve", "featurize"} {
		res := run(t, svc+" --tokens "+path, "FRESHET_SCHEMAS="+filepath.Join(t.TempDir(), "missing.yaml"))
		require.Equal(t, 1, res.code, "%s: %s", svc, res.stderr)
		require.Contains(t, res.stderr, "tokens="+path)
		require.NotContains(t, res.stderr, token)
	}

	again := run(t, "freshet token new shop ingest,serve")
	require.NotContains(t, again.stdout, token)
}

// TestTokensFileTypo: a malformed tokens file stops a service at start,
// naming the file, the line and what is wrong, never quoting a token.
func TestTokensFileTypo(t *testing.T) {
	r := run(t, "freshet token new prometheus metrics")
	require.Equal(t, 0, r.code)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	fileLine := lines[len(lines)-1]
	token := lines[3]
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(fileLine, " metrics ", " metrcs ", 1)+"\n"+token+"\n"), 0o600))
	res := run(t, "featurize", "FRESHET_TOKENS="+path)
	require.Equal(t, 2, res.code, res.stderr)
	require.Contains(t, res.stderr, path+`:1: unknown scope "metrcs" (scopes: ingest, serve, metrics, admin); did you mean metrics?`)
	require.Contains(t, res.stderr, path+":2: want NAME SCOPES sha256:HEX [rate=EVENTS_PER_SECOND], got 1 field(s)")
	require.Contains(t, res.stderr, "(set by FRESHET_TOKENS)")
	require.NotContains(t, res.stderr, token)
}
