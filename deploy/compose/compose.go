// Package compose reads freshet's Docker Compose stack (docker-compose.yml
// in this directory) with compose-go, the Compose Specification's reference
// loader, and knows which freshet program each of its services runs, with
// that program's own flag set. The stack's tests check the file against the
// programs' settings, and composeenv turns the file into local processes
// for the end-to-end script, so the stack and the binaries cannot drift
// apart. Nothing here needs or talks to a Docker engine.
package compose

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/freshet-ml/freshet/pipeline/app"
	fcli "github.com/freshet-ml/freshet/pipeline/cli"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

const (
	// File is the stack: Kafka, Redis, ingest, featurize (two replicas) and
	// serve, plus the demo and observability profiles.
	File = "docker-compose.yml"
	// ObservabilityFile is the override that points the services' traces
	// at the observability profile's OpenTelemetry collector.
	ObservabilityFile = "observability.yml"
)

// Load loads compose files, later ones overriding earlier ones, with every
// profile enabled. Relative paths resolve against the first file's
// directory. Variables are interpolated from env only, never from the
// process environment, so the result is the same on every machine.
func Load(ctx context.Context, env map[string]string, files ...string) (*types.Project, error) {
	if len(files) == 0 {
		return nil, errors.New("compose: no file to load")
	}
	kv := make([]string, 0, len(env))
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(filepath.Dir(files[0])),
		cli.WithEnv(kv),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, fmt.Errorf("compose options for %s: %w", strings.Join(files, ", "), err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", strings.Join(files, " with "), err)
	}
	return p, nil
}

// IsFreshet reports whether a service runs a freshet binary: it is built
// from the repository's Dockerfile, as every freshet service of the stack
// is, and no other.
func IsFreshet(s types.ServiceConfig) bool { return s.Build != nil }

// Program is the freshet program a service's command runs, with a fresh
// flag set holding every setting it accepts.
type Program struct {
	// Name is ingest, featurize, serve or "freshet demo".
	Name string
	// Binary is the executable the command starts, its first word: the
	// image has no ENTRYPOINT, so it is one of the binaries it builds.
	Binary string
	// Flags has every setting of the program: its flags and, through
	// config.EnvName, their FRESHET_* variables.
	Flags *flag.FlagSet
	// Args are the command's words after the program's name.
	Args []string

	validators []app.Validator
}

// ProgramOf returns the program a command runs. Only what a stack runs for
// long is known: ingest, featurize and serve without a subcommand, and
// `freshet demo`; anything else is an error.
func ProgramOf(command []string) (*Program, error) {
	if len(command) == 0 {
		return nil, errors.New("no command: a freshet service must name its program (the image runs none by default)")
	}
	p := &Program{Name: command[0], Binary: command[0], Args: command[1:]}
	switch command[0] {
	case "ingest", "featurize", "serve":
		if len(p.Args) > 0 && !strings.HasPrefix(p.Args[0], "-") {
			return nil, fmt.Errorf("%q: subcommand %q is not a service", strings.Join(command, " "), p.Args[0])
		}
		switch command[0] {
		case "ingest":
			c, fs := fcli.NewIngest()
			p.Flags, p.validators = fs, c.Validators()
		case "featurize":
			c, fs := fcli.NewFeaturize()
			p.Flags, p.validators = fs, c.Validators()
		default:
			c, fs := fcli.NewServe()
			p.Flags, p.validators = fs, c.Validators()
		}
	case "freshet":
		if len(p.Args) == 0 || p.Args[0] != "demo" {
			return nil, fmt.Errorf("%q: of the freshet tool, only `freshet demo` runs as a service", strings.Join(command, " "))
		}
		c, fs := devmode.NewDemo()
		p.Name, p.Args, p.Flags, p.validators = "freshet demo", p.Args[1:], fs, c.Validators()
	default:
		return nil, fmt.Errorf("%q runs no freshet program (ingest, featurize, serve or freshet demo)", strings.Join(command, " "))
	}
	p.Flags.SetOutput(io.Discard) // errors are returned, not printed
	return p, nil
}

// Accepts reports whether name is the environment variable of one of the
// program's settings.
func (p *Program) Accepts(name string) bool {
	ok := false
	p.Flags.VisitAll(func(f *flag.Flag) { ok = ok || config.EnvName(f.Name) == name })
	return ok
}

// Parse sets the program's settings from its arguments and from env (a
// service's environment) as the program does at start, flags winning over
// variables, and validates them. Every FRESHET_* variable of env must be
// one of the program's settings; other variables are not its business.
func (p *Program) Parse(env map[string]string) error {
	var errs []error
	for _, name := range sortedKeys(env) {
		if strings.HasPrefix(name, "FRESHET_") && !p.Accepts(name) {
			errs = append(errs, fmt.Errorf("%s is not a setting of %s (see `freshet config`)", name, p.Name))
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.ParseLookup(p.Flags, p.Args, lookup); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
	} else if p.Flags.NArg() > 0 {
		errs = append(errs, fmt.Errorf("%s takes no arguments, got %q", p.Name, p.Flags.Args()))
	}
	if len(errs) == 0 {
		for _, v := range p.validators {
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// HTTPPort is the port of the program's HTTP address (health, metrics and
// its API), once parsed; "" when it has none (freshet demo).
func (p *Program) HTTPPort() (string, error) {
	f := p.Flags.Lookup("http-addr")
	if f == nil {
		return "", nil
	}
	_, port, err := net.SplitHostPort(f.Value.String())
	if err != nil {
		return "", fmt.Errorf("%s: http-addr %q: %w", p.Name, f.Value.String(), err)
	}
	return port, nil
}

// ServiceEnv is the environment a service's container starts with: its
// image's (the ENV instructions of the Dockerfile's last stage), then the
// service's own, which wins.
func ServiceEnv(s types.ServiceConfig) (map[string]string, error) {
	env := map[string]string{}
	if s.Build != nil {
		dockerfile := s.Build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(s.Build.Context, dockerfile)
		}
		img, err := ImageEnv(dockerfile)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		env = img
	}
	for k, v := range s.Environment {
		if v == nil {
			return nil, fmt.Errorf("service %s: %s takes its value from the host's environment: give it one in the file", s.Name, k)
		}
		env[k] = *v
	}
	return env, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
