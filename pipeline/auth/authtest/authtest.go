// Package authtest makes tokens files for the tests of the services that
// require bearer tokens.
package authtest

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/auth"
)

// File is a tokens file of a test and the Guard of it.
type File struct {
	// Path is the file's.
	Path string
	// Guard holds its tokens.
	Guard *auth.Guard
	// Tokens maps each name to its token, as last written.
	Tokens map[string]string
}

// New writes a tokens file with a new token for each spec, "NAME:SCOPES"
// ("shop:ingest,serve") or "NAME:SCOPES:rate=N", and opens it with log (nil discards) and opts.
func New(tb testing.TB, log *slog.Logger, specs []string, opts ...auth.Option) *File {
	tb.Helper()
	f := &File{Path: filepath.Join(tb.TempDir(), "tokens")}
	f.Write(tb, specs...)
	g, err := auth.Open(f.Path, log, opts...)
	require.NoError(tb, err)
	f.Guard = g
	return f
}

// Write replaces the file with a new token for each spec, as an editor
// does (a new file renamed over the old), and returns the new tokens by
// name; Tokens holds them too.
func (f *File) Write(tb testing.TB, specs ...string) map[string]string {
	tb.Helper()
	f.Tokens = map[string]string{}
	var b strings.Builder
	b.WriteString("# test tokens\n")
	for _, spec := range specs {
		name, list, ok := strings.Cut(spec, ":")
		require.True(tb, ok, "spec %q is not NAME:SCOPES[:rate=N]", spec)
		list, rate, _ := strings.Cut(list, ":")
		scopes, err := auth.ParseScopes(list)
		require.NoError(tb, err)
		tok, line, err := auth.New(name, scopes)
		require.NoError(tb, err)
		f.Tokens[name] = tok
		if rate != "" {
			line += " " + rate
		}
		b.WriteString(line + "\n")
	}
	tmp := f.Path + ".new"
	require.NoError(tb, os.WriteFile(tmp, []byte(b.String()), 0o600))
	require.NoError(tb, os.Rename(tmp, f.Path))
	return f.Tokens
}

// Authorize sets the Authorization header of r: "" sends none, and a
// value starting with "Bearer" or "Basic" is sent as it is; any other is
// the name of a token of the file, sent as Bearer.
func (f *File) Authorize(r *http.Request, who string) {
	switch {
	case who == "":
	case strings.HasPrefix(who, "Bearer") || strings.HasPrefix(who, "Basic"):
		r.Header.Set("Authorization", who)
	default:
		tok, ok := f.Tokens[who]
		if !ok {
			panic("authtest: no token named " + who)
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
}
