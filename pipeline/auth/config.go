package auth

import (
	"flag"
	"log/slog"
	"os"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// Config is the tokens setting of a service with an HTTP API.
type Config struct {
	// Tokens is the path of the tokens file; empty: no tokens, every
	// route open. The path is no secret (the file holds only hashes)
	// and is logged.
	Tokens string
	// FlagOnly says that the command reads --tokens from its command line
	// only (freshet dev), so that its messages do not send anyone to
	// FRESHET_TOKENS.
	FlagOnly bool

	// content and set are the file as Validate read it, which Open puts
	// in force, so that what was checked is what runs.
	content []byte
	set     *Set
}

// RegisterFlags registers --tokens (FRESHET_TOKENS).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Tokens, "tokens", "", "file of the bearer tokens the HTTP API accepts, one NAME SCOPES sha256:HEX a line "+
		"(scopes: ingest, serve, metrics, admin; freshet token new prints a token and its line); re-read when it changes and on SIGHUP; "+
		"empty: the API is open to anyone who can reach it")
}

// Validate reads and checks the tokens file: one that cannot be read or
// is malformed is a *config.SettingError naming every bad line.
func (c *Config) Validate() error {
	c.content, c.set = nil, nil
	if c.Tokens == "" {
		return nil
	}
	b, err := os.ReadFile(c.Tokens)
	if err != nil {
		return &config.SettingError{Setting: "tokens", Value: c.Tokens, Problem: "cannot be read: " + config.FileProblem(err),
			Expected: "a file of lines NAME SCOPES sha256:HEX (freshet token new prints one)"}
	}
	set, err := Parse(c.Tokens, b)
	if err != nil {
		return &config.SettingError{Setting: "tokens", Value: c.Tokens, Problem: "is malformed: " + err.Error()}
	}
	c.content, c.set = b, set
	return nil
}

// Open returns the Guard of the tokens file, to Run for reloads, or nil
// without one; it logs which, once: the file's path and how many tokens
// it holds, or a warning that the API is open. It reads the file unless
// Validate did.
func (c *Config) Open(log *slog.Logger, opts ...Option) (*Guard, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Tokens == "" {
		setting := "--tokens, FRESHET_TOKENS"
		if c.FlagOnly {
			setting = "--tokens"
		}
		log.Warn("no tokens file (" + setting + "): the HTTP API is open to anyone who can reach it")
		return nil, nil
	}
	var g *Guard
	if c.set != nil {
		g = newGuard(c.Tokens, c.content, c.set, log, opts)
	} else {
		var err error
		if g, err = Open(c.Tokens, log, opts...); err != nil {
			return nil, err
		}
	}
	set := g.Tokens()
	if set.Len() == 0 {
		log.Warn("the tokens file holds no token: every route that needs one answers 401", "tokens_file", c.Tokens)
	} else {
		log.Info("bearer tokens required", "tokens_file", c.Tokens, "tokens", set.Len(), "names", strings.Join(set.names(), ","))
	}
	return g, nil
}
