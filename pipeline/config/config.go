// Package config binds each component's settings to command-line flags and
// FRESHET_* environment variables from one table: the flag set itself. A flag
// named kafka-brokers is read from FRESHET_KAFKA_BROKERS when not given on
// the command line, so the two can never mean different things, and the
// README table and the compose checks read the same flag set.
//
// It also words what goes wrong with them: a value a setting cannot take is
// a *SettingError naming the setting, the value (passwords masked) and the
// form expected, whether it came from a flag or a variable; and a FRESHET_*
// variable no program knows is found by Unknown with the known name it most
// likely misspells.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"
)

// EnvName is the environment variable of a flag: FRESHET_ and the flag name
// upper-cased with dashes as underscores.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// EnvPrefix starts the name of every freshet environment variable.
const EnvPrefix = "FRESHET_"

// Parse parses args into fs, then sets every flag not given on the command
// line from its environment variable, if set. Flags win over the
// environment, which wins over defaults.
func Parse(fs *flag.FlagSet, args []string) error {
	_, err := Read(fs, args, ReadOptions{Lookup: os.LookupEnv})
	return err
}

// ParseLookup is Parse with the environment read through lookup instead of
// the process's: a compose service's environment, for the checks that the
// stack's settings are ones the services accept.
func ParseLookup(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	_, err := Read(fs, args, ReadOptions{Lookup: lookup})
	return err
}

// ReadOptions says how Read takes a command line.
type ReadOptions struct {
	// Lookup reads an environment variable; nil reads none, so only the
	// command line sets flags.
	Lookup func(string) (string, bool)
	// Interspersed lets positional arguments stand between flags.
	Interspersed bool
	// Local names the flags read from the command line only, never from
	// a variable: those that say what one run does (its files, an event
	// type, --clear) rather than how a deployment is set up.
	Local map[string]bool
}

// Line is what Read took from a command line and the environment.
type Line struct {
	// Args are the positional arguments, in order.
	Args []string
	// FromEnv maps the name of each flag set from a variable to that
	// variable.
	FromEnv map[string]string
	// Given holds the name of each flag set on the command line.
	Given map[string]bool
}

// Read parses args into fs and then, with opt.Lookup, sets every flag not
// given on the command line from its FRESHET_* variable. A value a flag
// cannot take is a *SettingError; so is each bad variable, joined with
// errors.Join (all of them are reported, as a deployment sets them all at
// once). The flags of opt.Local are never read from a variable. The flag package's own errors come back otherwise unchanged,
// flag.ErrHelp included, except that an undefined flag gets the closest
// defined name as a suggestion.
func Read(fs *flag.FlagSet, args []string, opt ReadOptions) (Line, error) {
	r := Line{FromEnv: map[string]string{}, Given: map[string]bool{}}
	if err := parseArgs(fs, args, opt.Interspersed, &r); err != nil {
		return r, err
	}
	fs.Visit(func(f *flag.Flag) { r.Given[f.Name] = true })
	if opt.Lookup == nil {
		return r, nil
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if r.Given[f.Name] || opt.Local[f.Name] {
			return
		}
		env := EnvName(f.Name)
		v, ok := opt.Lookup(env)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			se := describe(f.Name, f.DefValue, f.Value, v, err)
			se.Env = env
			errs = append(errs, se)
			return
		}
		r.FromEnv[f.Name] = env
	})
	return r, errors.Join(errs...)
}

// parseArgs parses the command line into fs with every flag's value wrapped,
// so that a value it refuses is described with the form it expects rather
// than as the flag package's "invalid value ... parse error".
func parseArgs(fs *flag.FlagSet, args []string, interspersed bool, r *Line) error {
	var refused *SettingError
	fs.VisitAll(func(f *flag.Flag) { f.Value = &checked{Value: f.Value, f: f, refused: &refused} })
	// The wrappers must go even when parsing fails: the flag package names a
	// flag's type in its usage from the value's own type.
	defer fs.VisitAll(func(f *flag.Flag) {
		if c, ok := f.Value.(*checked); ok {
			f.Value = c.Value
		}
	})
	err := parseLine(fs, args, interspersed, r)
	switch {
	case err == nil:
		return nil
	case refused != nil:
		// Parse stops at the first refused value: this is it.
		return refused
	}
	return suggestFlag(fs, err)
}

func parseLine(fs *flag.FlagSet, args []string, interspersed bool, r *Line) error {
	if !interspersed {
		if err := fs.Parse(args); err != nil {
			return err
		}
		r.Args = fs.Args()
		return nil
	}
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
		for len(rest) > 0 && (rest[0] == "-" || !strings.HasPrefix(rest[0], "-")) {
			r.Args = append(r.Args, rest[0])
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return nil
		}
		if rest[0] == "--" {
			r.Args = append(r.Args, rest[1:]...)
			return nil
		}
	}
}

// suggestFlag adds the closest defined flag to the flag package's error
// about an undefined one.
func suggestFlag(fs *flag.FlagSet, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return err
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if s := Suggest(name, names); s != "" {
		return fmt.Errorf("%w; did you mean --%s?", err, s)
	}
	return err
}

// checked wraps a flag's value while the command line is parsed, recording
// the first value it refuses as a *SettingError.
type checked struct {
	flag.Value
	f       *flag.Flag
	refused **SettingError
}

// Set implements flag.Value.
func (c *checked) Set(v string) error {
	err := c.Value.Set(v)
	if err != nil && *c.refused == nil {
		*c.refused = describe(c.f.Name, c.f.DefValue, c.Value, v, err)
	}
	return err
}

// IsBoolFlag lets a wrapped boolean flag stand alone ("--clear"), as the
// flag package allows for its own boolean values.
func (c *checked) IsBoolFlag() bool {
	b, ok := c.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// SettingError is a value a setting cannot take.
type SettingError struct {
	// Setting is the flag's name: batch-wait.
	Setting string
	// Value is the value refused, as given; Error masks passwords in it.
	Value string
	// Problem says what is wrong with it: "is not a duration".
	Problem string
	// Expected is the form the setting takes: "a number with a unit, e.g.
	// 20ms, 5s, 1m"; empty when Problem says it all.
	Expected string
	// Env is the FRESHET_* variable the value came from; empty for the
	// command line (or unknown).
	Env string
}

// Error is `batch-wait: "20" is not a duration; expected a number with a
// unit, e.g. 20ms, 5s, 1m (set by FRESHET_BATCH_WAIT)`.
func (e *SettingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %q %s", e.Setting, Mask(e.Value), Redact(e.Problem, e.Value))
	if e.Expected != "" {
		b.WriteString("; expected " + e.Expected)
	}
	if e.Env != "" {
		b.WriteString(" (set by " + e.Env + ")")
	}
	return b.String()
}

// describe words the error the Set of the value of flag name (default def)
// returned for v: the flag package's own values say only "parse error", so
// the form expected is derived from the type the value holds.
func describe(name, def string, value flag.Value, v string, err error) *SettingError {
	e := &SettingError{Setting: name, Value: v}
	outOfRange := err.Error() == "value out of range" // the flag package's errRange
	var kind any
	if g, ok := value.(flag.Getter); ok {
		kind = g.Get()
	}
	switch kind.(type) {
	case time.Duration:
		e.Problem, e.Expected = "is not a duration", "a number with a unit, e.g. 20ms, 5s, 1m"
	case bool:
		e.Problem, e.Expected = "is not a boolean", "true or false"
	case int, int64:
		e.Problem, e.Expected = "is not an integer", "a whole number, e.g. "+example(def, "10")
	case uint, uint64:
		e.Problem, e.Expected = "is not a non-negative integer", "a whole number, e.g. "+example(def, "10")
	case float64:
		e.Problem, e.Expected = "is not a number", "a number, e.g. "+example(def, "1.5")
	default:
		e.Problem = "is not valid: " + err.Error()
	}
	if outOfRange {
		e.Problem = "is out of range"
	}
	return e
}

// example is a flag's default as an example of its form, unless it is the
// zero value, which says little.
func example(def, otherwise string) string {
	if def == "" || def == "0" {
		return otherwise
	}
	return def
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

// masked replaces a password.
const masked = "xxxxx"

// Mask hides the password of every URL in a comma-separated value. It works
// on the text, not on a parsed URL, so that a URL too malformed to parse
// (the very one an error message quotes) is masked too: whatever stands
// between the first colon of the userinfo and the last @ of the authority
// goes.
func Mask(v string) string {
	parts := strings.Split(v, ",")
	for i, p := range parts {
		if _, pw, ok := password(p); ok {
			parts[i] = strings.Replace(p, ":"+pw+"@", ":"+masked+"@", 1)
		}
	}
	return strings.Join(parts, ",")
}

// Redact hides in msg every password of the URLs in value: for the text of
// an error from a parser that quotes its input.
func Redact(msg, value string) string {
	for _, p := range strings.Split(value, ",") {
		if _, pw, ok := password(p); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, masked)
		}
	}
	return msg
}

// password finds the password of a URL, with or without a scheme:
// [scheme://]user:password@host... The authority ends at the first slash
// after the scheme, except that a password may itself hold slashes, so the
// last @ before the path (or anywhere, when no path follows it) is taken.
func password(u string) (user, pw string, ok bool) {
	rest := u
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", "", false
	}
	userinfo := rest[:at]
	user, pw, ok = strings.Cut(userinfo, ":")
	return user, pw, ok
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

// FileProblem is why a settings file (a CA, a certificate, a tokens or
// password file) cannot be read, without the path the SettingError
// already quotes: "no such file", "permission denied", or the system's
// reason.
func FileProblem(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
