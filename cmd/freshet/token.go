package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/config"
)

// tokenAbout says what tokens are, for both usages.
const tokenAbout = "Bearer tokens of the HTTP APIs. A service started with --tokens FILE (FRESHET_TOKENS) answers 401\n" +
	"to a request without a token of FILE and 403 to one whose token lacks the route's scope: ingest (send\n" +
	"events), serve (lookups, Feast's included), metrics (/metrics, featurize's /v1/stats), admin (operations\n" +
	"endpoints to come; it implies no other scope). FILE holds one line per token, NAME SCOPES sha256:HEX,\n" +
	"never the token itself; it is re-read when it changes and on SIGHUP."

// token is `freshet token new NAME SCOPES`.
func token(args []string) error {
	if len(args) > 0 && args[0] == "new" {
		return tokenNew(args[1:])
	}
	cmd := toolCommand(flag.NewFlagSet("freshet token", flag.ContinueOnError), "freshet token new NAME SCOPES", tokenAbout)
	cmd.Commands = []app.Subcommand{{Name: "new", About: "print a new random token and its line of the tokens file: freshet token new NAME SCOPES"}}
	if err := cmd.Start(args); err != nil {
		return err
	}
	return cmd.Fail(errors.New("name a command: freshet token new NAME SCOPES"))
}

// tokenNew prints a new token and the line of the tokens file that admits
// it, each under a comment saying what it is; the token goes nowhere else.
func tokenNew(args []string) error {
	var (
		name   string
		scopes auth.Scopes
	)
	cmd := toolCommand(flag.NewFlagSet("freshet token new", flag.ContinueOnError), "freshet token new NAME SCOPES",
		"Print a new random token (32 random bytes, base64url) for NAME (letters, digits, '.', '_', '-') with\n"+
			"SCOPES (comma-separated: ingest, serve, metrics, admin), and the line to add to the tokens file.\n"+
			"The token is shown this once and stored nowhere: the file keeps only its SHA-256. Example:\n\n"+
			"  freshet token new prometheus metrics\n\n"+tokenAbout)
	cmd.Positional = func(line config.Line) error {
		if len(line.Args) != 2 {
			return fmt.Errorf("want NAME and SCOPES, got %d argument(s), e.g. freshet token new shop-api ingest,serve", len(line.Args))
		}
		if err := auth.CheckName(line.Args[0]); err != nil {
			return fmt.Errorf("NAME: %w", err)
		}
		ss, err := auth.ParseScopes(line.Args[1])
		if err != nil {
			return fmt.Errorf("SCOPES: %w", err)
		}
		name, scopes = line.Args[0], ss
		return nil
	}
	if err := cmd.Start(args); err != nil {
		return err
	}
	tok, line, err := auth.New(name, scopes)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "# The token of %s (scopes %s). It is shown this once: keep it secret, e.g. in a secret store or\n"+
		"# a file only its client reads (Prometheus: authorization: {credentials_file: FILE}). Send it as\n"+
		"# the header Authorization: Bearer TOKEN.\n%s\n\n"+
		"# The line to add to the tokens file (--tokens, FRESHET_TOKENS); it holds only the token's SHA-256:\n%s\n",
		name, scopes, tok, line)
	return err
}
