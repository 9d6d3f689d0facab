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
	// variable (config.EnvName).
	Env bool
	// Args lets the command take positional arguments. Without it an
	// argument is an error, naming the closest subcommand when it looks
	// like a misspelt one.
	Args bool
	// Interspersed lets positional arguments stand between flags; it
	// implies Args.
	Interspersed bool

	// stdout, stderr and lookup replace the process's in tests.
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
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
	opt := config.ReadOptions{Interspersed: c.Interspersed}
	if c.Env {
		opt.Lookup = c.lookup
		if opt.Lookup == nil {
			opt.Lookup = os.LookupEnv
		}
	}
	line, err := config.Read(fs, args, opt)
	if err == nil && !c.Args && !c.Interspersed && len(line.Args) > 0 {
		err = c.unexpected(line.Args[0])
	}
	var se *config.SettingError
	switch {
	case err == nil:
		return line, nil
	case errors.Is(err, flag.ErrHelp):
		c.WriteUsage(c.out())
		return line, flag.ErrHelp
	case errors.As(err, &se) && se.Env != "":
		// Variables only fail after the command line parsed: the usage
		// would not help, the list of bad variables does.
		c.printInvalid(err)
		return line, &UsageError{err}
	}
	return line, c.Fail(err)
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

// printInvalid prints errors joined with errors.Join one per line.
func (c *Command) printInvalid(err error) {
	msgs := strings.Split(err.Error(), "\n")
	fmt.Fprintf(c.errOut(), "%s: invalid configuration:\n  %s\n", c.Flags.Name(), strings.Join(msgs, "\n  "))
}

// Start is Parse and the validation of a service's settings: it returns the
// positional arguments of a command whose settings are all valid, and
// otherwise exits, with status 0 after --help and 2 after printing every
// invalid setting.
func Start(c *Command, args []string, cfgs ...Validator) []string {
	pos, err := c.start(args, cfgs...)
	if err != nil {
		os.Exit(ExitCode(err))
	}
	return pos
}

func (c *Command) start(args []string, cfgs ...Validator) ([]string, error) {
	line, err := c.Parse(args)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, v := range cfgs {
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
		err := errors.Join(errs...)
		c.printInvalid(err)
		return nil, &UsageError{err}
	}
	return line.Args, nil
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
	n := 0
	c.Flags.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		if c.Env {
			b.WriteString("\nflags (each also read from the FRESHET_* variable shown when not given; a flag wins):\n")
		} else {
			b.WriteString("\nflags:\n")
		}
		c.Flags.VisitAll(func(f *flag.Flag) { writeFlag(&b, f, c.Env) })
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
