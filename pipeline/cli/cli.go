// Package cli holds each service's complete settings, built from one flag
// set per service. The commands parse them, `freshet config` prints them as
// the README's table, and the compose checks read the same flag sets, so the
// documented, deployed and accepted settings cannot drift apart.
package cli

import (
	"flag"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/ingest"
	"github.com/freshet-ml/freshet/pipeline/serve"
	"github.com/freshet-ml/freshet/pipeline/store"
)

// Ingest is the ingest service's settings.
type Ingest struct {
	Common app.Common
	Ingest ingest.Config
}

// NewIngest registers ingest's settings on a new flag set.
func NewIngest() (*Ingest, *flag.FlagSet) {
	c := &Ingest{}
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Ingest) Validators() []app.Validator { return []app.Validator{&c.Common, &c.Ingest} }

// Serve is the serve service's settings.
type Serve struct {
	Common app.Common
	Serve  serve.Config
	Store  store.Config
}

// NewServe registers serve's settings on a new flag set.
func NewServe() (*Serve, *flag.FlagSet) {
	c := &Serve{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Serve.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	return c, fs
}

// Validators are the parts to validate after parsing.
func (c *Serve) Validators() []app.Validator { return []app.Validator{&c.Common, &c.Serve, &c.Store} }

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
	_, i := NewIngest()
	_, f := NewFeaturize()
	_, s := NewServe()
	return map[string]*flag.FlagSet{"ingest": i, "featurize": f, "serve": s}
}
