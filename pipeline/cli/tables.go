package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/devmode"
)

// Program is a program a deployment runs and configures through FRESHET_*
// variables: a service, or the demo feed. Its subcommands (ingest replay,
// featurize rebuild and backfill) read the same variables with the same
// meanings, plus flags of one run, which no variable sets.
type Program struct {
	// Name is what `freshet config NAME` takes: "ingest".
	Name string
	// Title heads its table: the command that runs it ("freshet demo").
	Title string
	// Flags holds its settings.
	Flags *flag.FlagSet
}

// Programs returns every program with a fresh flag set, in the order
// `freshet config` prints them.
func Programs() []Program {
	_, f := NewFeaturize()
	_, i := NewIngest()
	_, s := NewServe()
	_, d := devmode.NewDemo()
	return []Program{
		{Name: "featurize", Title: "featurize", Flags: f},
		{Name: "ingest", Title: "ingest", Flags: i},
		{Name: "serve", Title: "serve", Flags: s},
		{Name: "demo", Title: "freshet demo", Flags: d},
	}
}

// ProgramNames returns the names `freshet config` takes, in order.
func ProgramNames() []string {
	var names []string
	for _, p := range Programs() {
		names = append(names, p.Name)
	}
	return names
}

// WriteConfig writes the settings of the programs named (every program
// without names) as `freshet config` prints them, which is how the README's
// Configuration section holds them: for each, a "### Title" heading, a
// blank line, the Markdown table of config.WriteMarkdown and a blank line.
func WriteConfig(w io.Writer, names ...string) error {
	for _, p := range Programs() {
		if len(names) > 0 && !contains(names, p.Name) {
			continue
		}
		if _, err := fmt.Fprintf(w, "### %s\n\n", p.Title); err != nil {
			return err
		}
		if err := config.WriteMarkdown(w, p.Flags); err != nil {
			return fmt.Errorf("write the settings of %s: %w", p.Name, err)
		}
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
	}
	return nil
}

// contains reports whether names holds name, ignoring case.
func contains(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}
