// Package config binds each component's settings to command-line flags and
// FRESHET_* environment variables from one table: the flag set itself. A flag
// named kafka-brokers is read from FRESHET_KAFKA_BROKERS when not given on
// the command line, so the two can never mean different things, and the
// README table and the compose checks read the same flag set.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
)

// EnvName is the environment variable of a flag: FRESHET_ and the flag name
// upper-cased with dashes as underscores.
func EnvName(flagName string) string {
	return "FRESHET_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag not given on the command
// line from its environment variable, if set. Flags win over the
// environment, which wins over defaults.
func Parse(fs *flag.FlagSet, args []string) error {
	return parse(fs, args, os.LookupEnv)
}

// ParseLookup is Parse with the environment read through lookup instead of
// the process's: a compose service's environment, for the checks that the
// stack's settings are ones the services accept.
func ParseLookup(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	return parse(fs, args, lookup)
}

func parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v, ok := lookup(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("invalid %s=%q: %w", EnvName(f.Name), Mask(v), err))
			}
		}
	})
	return errors.Join(errs...)
}

// Setting is one row of a component's configuration table.
type Setting struct {
	Flag, Env, Default, Usage string
}

// Table lists the settings of fs sorted by flag name.
func Table(fs *flag.FlagSet) []Setting {
	var out []Setting
	fs.VisitAll(func(f *flag.Flag) {
		out = append(out, Setting{Flag: f.Name, Env: EnvName(f.Name), Default: f.DefValue, Usage: f.Usage})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Flag < out[j].Flag })
	return out
}

// WriteMarkdown writes the settings of fs as a Markdown table.
func WriteMarkdown(w io.Writer, fs *flag.FlagSet) error {
	if _, err := fmt.Fprintln(w, "| flag | environment | default | meaning |\n|---|---|---|---|"); err != nil {
		return err
	}
	for _, s := range Table(fs) {
		def := s.Default
		if def != "" {
			def = "`" + def + "`"
		}
		if _, err := fmt.Fprintf(w, "| `--%s` | `%s` | %s | %s |\n", s.Flag, s.Env, def, s.Usage); err != nil {
			return err
		}
	}
	return nil
}

// Effective returns the current value of every flag of fs as key/value pairs
// for one start-up log line, with passwords in URLs masked.
func Effective(fs *flag.FlagSet) []any {
	var kv []any
	fs.VisitAll(func(f *flag.Flag) { kv = append(kv, f.Name, Mask(f.Value.String())) })
	return kv
}

// Mask hides the password of every URL in a comma-separated value.
func Mask(v string) string {
	parts := strings.Split(v, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// List is a comma-separated list flag.
type List []string

// String implements flag.Value.
func (l *List) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *List) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// Strings is a repeatable flag: each use adds a value.
type Strings []string

// String implements flag.Value.
func (s *Strings) String() string { return strings.Join(*s, ",") }

// Set implements flag.Value.
func (s *Strings) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// ParseInterspersed parses args into fs like Parse, but lets positional
// arguments stand between flags ("--events a.parquet b.parquet --spine s"),
// returning them in order.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		for len(rest) > 0 && (rest[0] == "-" || !strings.HasPrefix(rest[0], "-")) {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
	}
	return pos, parse(fs, nil, os.LookupEnv)
}
