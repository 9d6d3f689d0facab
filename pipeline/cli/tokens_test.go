package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestTokensSetting: the services with an HTTP API and freshet dev take
// --tokens (the services from FRESHET_TOKENS too, which is known); the
// commands without an API do not.
func TestTokensSetting(t *testing.T) {
	with := map[string]bool{"ingest": true, "serve": true, "featurize": true, "freshet dev": true}
	for _, c := range Commands() {
		f := c.Flags.Lookup("tokens")
		require.Equal(t, with[c.Flags.Name()], f != nil, "%s --tokens", c.Flags.Name())
		require.Equal(t, with[c.Flags.Name()], c.Tokens != nil, "%s opens the tokens file", c.Flags.Name())
	}
	for _, p := range Programs() {
		require.Equal(t, p.Name != "demo", p.Flags.Lookup("tokens") != nil, "freshet config %s lists --tokens", p.Name)
	}
	require.Contains(t, KnownVariables(), "FRESHET_TOKENS")
	dev, _ := DevCommand()
	var logs testenv.Buffer
	g, err := dev.Tokens.Open(slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	require.Nil(t, g)
	require.Contains(t, logs.String(), `msg="no tokens file (--tokens): the HTTP API`, "freshet dev reads no variable: its warning names none")
	require.Contains(t, KnownVariables(), "FRESHET_TOKEN", "the variable of freshet dev's curls is no misspelling")
}

// TestTokensFileIsCheckedAtStart: a tokens file that cannot be read or is
// malformed stops the command with status 2, naming every bad line and
// the variable that set it.
func TestTokensFileIsCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	tok, line, err := auth.New("shop", auth.Scopes(auth.Ingest))
	require.NoError(t, err)
	bad := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(bad, []byte("# tokens\n"+line+"\nmodel srve "+strings.Fields(line)[2]+"\n"+tok+"\n"), 0o600))

	for _, mk := range []func() *Command{
		func() *Command { _, c := IngestCommand(); return c },
		func() *Command { _, c := ServeCommand(); return c },
		func() *Command { _, c := FeaturizeCommand(); return c },
		func() *Command { _, c := DevCommand(); return c },
	} {
		c := mk()
		t.Run(c.Flags.Name(), func(t *testing.T) {
			c.SetOutput(io.Discard, io.Discard)
			err := c.Start([]string{"--tokens", bad})
			require.Equal(t, 2, app.ExitCode(err), "%v", err)
			require.ErrorContains(t, err, bad+`:3: unknown scope "srve" (scopes: ingest, serve, metrics, admin); did you mean serve?`)
			require.ErrorContains(t, err, bad+":4: want NAME SCOPES sha256:HEX [rate=EVENTS_PER_SECOND], got 1 field(s)")
			require.NotContains(t, err.Error(), tok)

			c = mk()
			c.SetOutput(io.Discard, io.Discard)
			err = c.Start([]string{"--tokens", filepath.Join(dir, "missing")})
			require.ErrorContains(t, err, "cannot be read: no such file")
		})
	}

	t.Setenv("FRESHET_TOKENS", bad)
	_, c := ServeCommand()
	c.SetOutput(io.Discard, io.Discard)
	err = c.Start(nil)
	require.Equal(t, 2, app.ExitCode(err))
	require.ErrorContains(t, err, "(set by FRESHET_TOKENS)")
}

// TestPrologueOpensTokens: the prologue hands the body the tokens in
// force and logs the file (never a token); without a file it hands nil
// and warns once that the API is open.
func TestPrologueOpensTokens(t *testing.T) {
	tok, line, err := auth.New("shop", auth.Scopes(auth.Ingest))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte(line+"\n"), 0o600))
	schemas := filepath.Join(testenv.RepoRoot(t), "schemas", "example")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tokens", path}, `msg="bearer tokens required" tokens_file=` + path + " tokens=1 names=shop"},
		{nil, `level=WARN msg="no tokens file (--tokens, FRESHET_TOKENS): the HTTP API is open to anyone who can reach it"`},
	} {
		_, c := IngestCommand()
		c.SetOutput(io.Discard, io.Discard)
		require.NoError(t, c.Start(append([]string{"--schemas", schemas, "--http-addr", "127.0.0.1:0"}, tc.args...)))
		var logs testenv.Buffer
		var got *auth.Guard
		require.NoError(t, c.Exec(slog.New(slog.NewTextHandler(&logs, nil)), func(ctx context.Context, rt *Runtime) error {
			got = rt.Tokens
			return nil
		}))
		require.Contains(t, logs.String(), tc.want)
		require.Equal(t, 1, strings.Count(logs.String(), "bearer tokens required")+strings.Count(logs.String(), "no tokens file"),
			"one line says it: %s", logs.String())
		require.NotContains(t, logs.String(), tok)
		if tc.args == nil {
			require.Nil(t, got)
			continue
		}
		require.NotNil(t, got)
		require.NotNil(t, got.Tokens().Lookup(tok))
	}
}
