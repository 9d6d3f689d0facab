package cli_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestKnownVariablesAreDerived: every variable every command reads is
// known, so a flag added to any command's flag set is known without another
// edit; the flags of one run (replay's --limit, rebuild's --clear) are read
// from no variable and known by none.
func TestKnownVariablesAreDerived(t *testing.T) {
	known := cli.KnownVariables()
	require.True(t, slices.IsSorted(known))
	require.Equal(t, len(known), len(slices.Compact(slices.Clone(known))), "no name twice")
	names := map[string]bool{}
	for _, c := range cli.Commands() {
		names[c.Flags.Name()] = true
		for _, v := range c.Variables() {
			require.Contains(t, known, v, c.Flags.Name())
		}
	}
	require.Equal(t, map[string]bool{"ingest": true, "ingest replay": true, "featurize": true, "featurize rebuild": true,
		"featurize backfill": true, "serve": true, "freshet demo": true, "freshet dev": true, "freshet validate": true,
		"freshet plan": true}, names)
	for _, v := range []string{"FRESHET_EVENT", "FRESHET_BATCH", "FRESHET_INGEST_URL", "FRESHET_REDIS_URL"} {
		require.Contains(t, known, v)
	}
	for _, v := range []string{"FRESHET_CLEAR", "FRESHET_JSON", "FRESHET_ALLOW_PARTIAL", "FRESHET_SPINE", "FRESHET_LIMIT", "FRESHET_REBASE_TIME", "FRESHET_INGEST_ADDR"} {
		require.NotContains(t, known, v, "a flag of one run, or of freshet dev, which reads no variable")
	}
}

// TestKnownVariablesAreTheTables: what the unknown-variable warning knows is
// exactly what `freshet config` lists, and the tools' variables.
func TestKnownVariablesAreTheTables(t *testing.T) {
	var want []string
	for _, p := range cli.Programs() {
		for _, s := range config.Table(p.Flags) {
			want = append(want, s.Env)
		}
	}
	for _, v := range cli.KnownVariables() {
		if !slices.Contains(want, v) {
			require.Contains(t, cli.ToolVariables(), v, "%s is known but `freshet config` does not list it", v)
		}
	}
	for _, v := range want {
		require.Contains(t, cli.KnownVariables(), v)
	}
}

// freshetName matches a whole FRESHET_* variable name (not the bare
// prefix, which code that builds names holds).
var freshetName = regexp.MustCompile(`FRESHET_[A-Z0-9_]*[A-Z0-9]`)

// namesIn returns the FRESHET_* names the files under root's dirs hold,
// each with a file that holds it; keep filters the files.
func namesIn(tb testing.TB, root string, dirs []string, keep func(path string) bool) map[string]string {
	tb.Helper()
	found := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && path == filepath.Join(root, dir) {
					return nil // a directory this checkout lacks
				}
				return err
			}
			if d.IsDir() {
				if d.Name() == ".git" || d.Name() == "results" || d.Name() == "node_modules" {
					return filepath.SkipDir
				}
				return nil
			}
			if !keep(path) {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			for _, name := range freshetName.FindAllString(string(b), -1) {
				if _, ok := found[name]; !ok {
					found[name] = rel
				}
			}
			return nil
		})
		require.NoError(tb, err)
	}
	return found
}

// docExamples are FRESHET_* names that stand in the code as examples of a
// misspelling, not as variables anything reads.
var docExamples = map[string]bool{"FRESHET_REDIS_ULR": true}

// TestRepositoryVariablesAreKnown: every FRESHET_* variable that the
// programs, scripts, CI and deployment files of the repository read or set
// is known, so that exporting it never makes a service warn. Tests are left
// out: they hold misspellings on purpose.
func TestRepositoryVariablesAreKnown(t *testing.T) {
	root := testenv.RepoRoot(t)
	known := cli.KnownVariables()
	found := namesIn(t, root, []string{"scripts", ".ci", "bench", "deploy", "pipeline", "cmd", "Dockerfile", "Makefile"},
		func(path string) bool { return !strings.HasSuffix(path, "_test.go") && !strings.HasSuffix(path, ".md") })
	require.Contains(t, found, "FRESHET_TEST_REDIS_URL", "the scan reads the repository")
	for name, file := range found {
		if !docExamples[name] {
			require.Contains(t, known, name, "%s (in %s) is read or set but unknown: a flag's variable, or add it to toolVariables in pipeline/cli/known.go", name, file)
		}
	}
}

// TestToolVariablesAreRead: each variable kept by hand for the tools is
// still read somewhere in the repository (tests included), so the list does
// not keep names nothing reads.
func TestToolVariablesAreRead(t *testing.T) {
	root := testenv.RepoRoot(t)
	found := namesIn(t, root, []string{"scripts", ".ci", "bench", "deploy", "pipeline", "cmd"}, func(path string) bool {
		// This package's own files name them all.
		return !strings.HasPrefix(path, filepath.Join(root, "pipeline", "cli")+string(filepath.Separator))
	})
	derived := map[string]bool{}
	for _, c := range cli.Commands() {
		for _, v := range c.Variables() {
			derived[v] = true
		}
	}
	for _, name := range cli.KnownVariables() {
		if derived[name] {
			continue
		}
		require.Contains(t, found, name, "%s is in toolVariables but nothing reads it", name)
	}
}

// TestCommandsUsage: every command's usage names it, says what it does and
// lists its flags with their variables; the services list their
// subcommands.
func TestCommandsUsage(t *testing.T) {
	subcommands := map[string][]string{"ingest": {"replay"}, "featurize": {"rebuild", "backfill"}}
	for _, c := range cli.Commands() {
		var b strings.Builder
		c.WriteUsage(&b)
		name := c.Flags.Name()
		require.True(t, strings.HasPrefix(b.String(), "usage: "+name+" "), b.String())
		require.NotEmpty(t, c.About, name)
		require.Contains(t, b.String(), "--schemas string\n", name)
		if c.Env {
			require.Contains(t, b.String(), "FRESHET_SCHEMAS", name)
		} else {
			require.NotContains(t, b.String(), "FRESHET_", name)
		}
		for _, sub := range subcommands[name] {
			require.Contains(t, b.String(), "\n  "+sub+" ", "%s lists %s", name, sub)
			require.Contains(t, b.String(), name+" "+sub, "%s shows how to call %s", name, sub)
		}
	}
}
