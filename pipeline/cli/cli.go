// Package cli holds each service's complete settings, built from one flag
// set per service. The commands parse them, `freshet config` prints them as
// the README's table, and the compose checks read the same flag sets, so the
// documented, deployed and accepted settings cannot drift apart.
package cli

import (
	"flag"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/store"
)

// Featurize is the featurize service's settings.
type Featurize struct {
	Common    app.Common
	Featurize featurize.Config
	Store     store.Config
}

// NewFeaturize registers featurize's settings on a new flag set.
func NewFeaturize() (*Featurize, *flag.FlagSet) {
	c := &Featurize{}
	fs := flag.NewFlagSet("featurize", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Featurize.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Featurize) Validators() []app.Validator {
	return []app.Validator{&c.Common, &c.Featurize, &c.Store}
}

// FlagSets returns a fresh flag set of every service, by name.
func FlagSets() map[string]*flag.FlagSet {
	_, f := NewFeaturize()
	return map[string]*flag.FlagSet{"featurize": f}
}
