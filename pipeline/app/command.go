package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// Command is how a freshet command reads its command line, and what its
// usage says. Every command answers -h and --help with its usage on stdout
// and exit status 0; a bad command line gets the error and the usage on
// stderr and exit status 2; a bad FRESHET_* variable gets the error alone
// (a container log needs no usage), also with status 2.
type Command struct {
	// Flags holds the command's settings; its name is the command's
	// ("ingest replay").
	Flags *flag.FlagSet
	// Usage is the command's synopsis, one line per form:
	// "ingest [flags]".
	Usage []string
	// About says what the command does.
	About string
	// Commands are its subcommands, which the usage lists.
	Commands []Subcommand
	// Env reads every flag not given on the command line from its FRESHET_*
	// variable (config.EnvName), except the flags registered with Options.
	Env bool
	// Positional takes the command's positional arguments (line.Args)
	// into its settings, before they are validated; its error is a usage
	// error, printed with the usage. Without it an argument is an error,
	// naming the closest subcommand when it looks like a misspelt one.
	Positional func(line config.Line) error
	// Interspersed lets positional arguments stand between flags.
	Interspersed bool
	// Validators check the settings once they are all read: Start lists
	// every error of every one. A required setting is checked here, not by
	// the command.
	Validators []Validator

	// local holds the names of the flags registered with Options.
	local map[string]bool
	// stdout, stderr and lookup replace the process's in tests.
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
}

// Options registers, with register, flags that say what one run does (its
// files, an event type, --clear) rather than how a deployment is set up.
// They are read from the command line only, never from a FRESHET_*
// variable, so that a variable left in an environment cannot change what a
// later run does (a --clear that deletes state, a --limit that cuts a
// replay short); the usage lists them apart.
func (c *Command) Options(register func(fs *flag.FlagSet)) {
	opts := flag.NewFlagSet(c.Flags.Name(), flag.ContinueOnError)
	register(opts)
	if c.local == nil {
		c.local = map[string]bool{}
	}
	opts.VisitAll(func(f *flag.Flag) {
		c.Flags.Var(f.Value, f.Name, f.Usage)
		c.local[f.Name] = true
	})
}

// SetOutput sends the usage and the help to stdout and the errors to
// stderr instead of the process's: for tests.
func (c *Command) SetOutput(stdout, stderr io.Writer) { c.stdout, c.stderr = stdout, stderr }

// IsOption reports whether the flag name was registered with Options.
func (c *Command) IsOption(name string) bool { return c.local[name] }

// Variables returns the FRESHET_* variable of every flag the command reads
// from the environment, in flag order: none without Env, and never one of
// a flag registered with Options.
func (c *Command) Variables() []string {
	var out []string
	if !c.Env {
		return nil
	}
	c.Flags.VisitAll(func(f *flag.Flag) {
		if !c.local[f.Name] {
			out = append(out, config.EnvName(f.Name))
		}
	})
	return out
}

// Subcommand is one line of a command's list of subcommands.
type Subcommand struct {
	Name, About string
}

// UsageError is a command line or setting the command cannot take: the
// message has been printed, and the command exits with status 2.
type UsageError struct{ Err error }

// Error is the message printed.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the error printed, a *config.SettingError for a bad value.
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode is the exit status of a command that ended with err: 0 for none
// and after -h or --help (flag.ErrHelp), 2 for a *UsageError, 1 otherwise.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

func (c *Command) out() io.Writer {
	if c.stdout != nil {
		return c.stdout
	}
	return os.Stdout
}

func (c *Command) errOut() io.Writer {
	if c.stderr != nil {
		return c.stderr
	}
	return os.Stderr
}

// Parse reads args into c.Flags and, with c.Env, the FRESHET_* variables.
// It returns what it read, positional arguments included. On -h or --help
// it prints the usage on stdout and returns flag.ErrHelp; on a bad flag,
// argument or variable it prints why on stderr and returns a *UsageError.
func (c *Command) Parse(args []string) (config.Line, error) {
	fs := c.Flags
	fs.Usage = func() { c.WriteUsage(fs.Output()) }
	// The flag package prints its own message and the usage on every
	// error, to the flag set's output: silence it and print here, where
	// help and errors go to different places.
	prev := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(prev)
	opt := config.ReadOptions{Interspersed: c.Interspersed, Local: c.local}
	if c.Env {
		opt.Lookup = c.lookup
		if opt.Lookup == nil {
			opt.Lookup = os.LookupEnv
		}
	}
	line, err := config.Read(fs, args, opt)
	if err == nil && c.Positional == nil && len(line.Args) > 0 {
		err = c.unexpected(line.Args[0])
	}
	switch {
	case err == nil:
		return line, nil
	case errors.Is(err, flag.ErrHelp):
		c.WriteUsage(c.out())
		return line, flag.ErrHelp
	case fromEnv(err):
		// Variables only fail after the command line parsed: the usage
		// would not help, the list of bad variables does.
		return line, c.invalid(err)
	}
	return line, c.Fail(err)
}

// fromEnv reports whether err is, or joins, a *config.SettingError of a
// value read from a variable.
func fromEnv(err error) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if fromEnv(e) {
				return true
			}
		}
		return false
	}
	var se *config.SettingError
	return errors.As(err, &se) && se.Env != ""
}

// unexpected is the error of a positional argument the command does not
// take.
func (c *Command) unexpected(arg string) error {
	if len(c.Commands) == 0 || strings.HasPrefix(arg, "-") {
		return fmt.Errorf("unexpected argument %q", arg)
	}
	names := make([]string, len(c.Commands))
	for i, s := range c.Commands {
		names[i] = s.Name
	}
	if s := config.Suggest(arg, names); s != "" {
		return fmt.Errorf("unknown command %q; did you mean %s?", arg, s)
	}
	return fmt.Errorf("unknown command %q (commands: %s)", arg, strings.Join(names, ", "))
}

// Fail prints err and the usage on stderr, and returns err as a
// *UsageError: for a command's own checks of its command line.
func (c *Command) Fail(err error) error {
	w := c.errOut()
	fmt.Fprintf(w, "%s: %v\n\n", c.Flags.Name(), err)
	c.WriteUsage(w)
	return &UsageError{err}
}

// invalid prints settings that are all read but not all valid, one per
// line (errors.Join), and returns them as a *UsageError. The usage follows
// unless a variable set one of them: a container log has no use for it,
// someone at a terminal does.
func (c *Command) invalid(err error) error {
	w := c.errOut()
	msgs := strings.Split(err.Error(), "\n")
	fmt.Fprintf(w, "%s: invalid configuration:\n  %s\n", c.Flags.Name(), strings.Join(msgs, "\n  "))
	if !fromEnv(err) {
		fmt.Fprintln(w)
		c.WriteUsage(w)
	}
	return &UsageError{err}
}

// Start reads the command's settings from args and, with Env, the FRESHET_*
// variables, hands its positional arguments to Positional, and validates
// the settings with every Validator, listing every error. It returns nil
// when the command may run; flag.ErrHelp after printing the usage for -h or
// --help; a *UsageError, already printed, for a command line or setting
// the command cannot take. ExitCode gives the status of each.
func (c *Command) Start(args []string) error {
	line, err := c.Parse(args)
	if err != nil {
		return err
	}
	if c.Positional != nil {
		if err := c.Positional(line); err != nil {
			return c.Fail(err)
		}
	}
	var errs []error
	for _, v := range c.Validators {
		if err := v.Validate(); err != nil {
			// A setting taken from a variable says so, as a refused
			// variable does at parsing: the fix goes there.
			var se *config.SettingError
			if errors.As(err, &se) && se.Env == "" {
				se.Env = line.FromEnv[se.Setting]
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return c.invalid(errors.Join(errs...))
	}
	return nil
}

// WriteUsage writes the command's usage to w: synopsis, what it does, its
// subcommands and its flags, each flag with its FRESHET_* variable when the
// command reads them.
func (c *Command) WriteUsage(w io.Writer) {
	var b strings.Builder
	for i, u := range c.Usage {
		if i == 0 {
			b.WriteString("usage: " + u + "\n")
		} else {
			b.WriteString("       " + u + "\n")
		}
	}
	if c.About != "" {
		b.WriteString("\n" + c.About + "\n")
	}
	if len(c.Commands) > 0 {
		b.WriteString("\ncommands:\n")
		width := 0
		for _, s := range c.Commands {
			width = max(width, len(s.Name))
		}
		for _, s := range c.Commands {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, s.Name, s.About)
		}
	}
	var options, settings []*flag.Flag
	c.Flags.VisitAll(func(f *flag.Flag) {
		if c.local[f.Name] {
			options = append(options, f)
		} else {
			settings = append(settings, f)
		}
	})
	if len(options) > 0 {
		b.WriteString("\nflags of this run (command line only):\n")
		for _, f := range options {
			writeFlag(&b, f, false)
		}
	}
	if len(settings) > 0 {
		if c.Env {
			b.WriteString("\nflags (each also read from the FRESHET_* variable shown when not given; a flag wins):\n")
		} else {
			b.WriteString("\nflags:\n")
		}
		for _, f := range settings {
			writeFlag(&b, f, c.Env)
		}
	}
	_, _ = io.WriteString(w, b.String()) // a usage that cannot be written has nowhere to go either
}

// writeFlag writes one flag as `  --name type` and its meaning, default and
// variable on the next line.
func writeFlag(b *strings.Builder, f *flag.Flag, env bool) {
	typ, usage := flag.UnquoteUsage(f)
	switch f.Value.(type) { // the flag package names any other type "value"
	case *config.List:
		typ = "list"
	case *config.Strings:
		typ = "string"
	}
	b.WriteString("  --" + f.Name)
	if typ != "" {
		b.WriteString(" " + typ)
	}
	var notes []string
	switch f.DefValue {
	case "", "0", "0s", "false":
	default:
		if typ == "string" {
			notes = append(notes, fmt.Sprintf("default %q", f.DefValue))
		} else {
			notes = append(notes, "default "+f.DefValue)
		}
	}
	if env {
		notes = append(notes, config.EnvName(f.Name))
	}
	b.WriteString("\n        " + usage)
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	b.WriteString("\n")
}

// WarnUnknown logs a warning for each FRESHET_* variable of environ that is
// not in known, with the known name it most likely misspells: a misspelt
// setting is otherwise silently ignored, its default used. It warns rather
// than stops the command because the variable may be meant for a newer
// version of another program of the same deployment. A variable's value is
// never logged.
func WarnUnknown(log *slog.Logger, environ, known []string) {
	for _, u := range config.Unknown(environ, known) {
		log.Warn(u.String())
	}
}
