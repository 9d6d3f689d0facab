package backfill

import (
	"errors"
	"flag"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// RegisterFlags registers what to compute as flags of one run, with their
// defaults: `featurize backfill` reads them from its command line only.
// Event files may also follow the flags; the command adds them to Events.
// Times has flags of its own (events.TimeRule.RegisterFlags).
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*config.Strings)(&o.Events), "events", "event files (any replay format); more files may follow the flag")
	fs.StringVar(&o.Spine, "spine", "", "spine file: rows with an entity and a time column, plus any columns passed through")
	fs.StringVar(&o.Out, "out", "", "output file: .parquet, .arrow, .feather, .arrows or .csv")
	fs.Var((*config.Strings)(&o.Views), "view", "feature view to compute (repeatable; default: every view)")
	fs.StringVar(&o.EntityColumn, "entity-column", "", "spine column of the entity (default: each view's entity field)")
	fs.StringVar(&o.AtColumn, "at-column", "", "spine column of the time (default: the event's timestamp field)")
	fs.IntVar(&o.MaxErrors, "max-errors", 0, "invalid event rows tolerated before the backfill fails")
	fs.StringVar(&o.Rejects, "rejects", "", "file receiving every invalid event row")
}

// Validate reports every missing input or output and every impossible
// value, joined: a backfill reads its events, its spine and writes its
// output, so all three are required.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Events) == 0 {
		errs = append(errs, errors.New("--events is required: one or more event files, after --events or after the flags"))
	}
	if o.Spine == "" {
		errs = append(errs, errors.New("--spine is required: the file of rows (an entity and a time) to compute features for"))
	}
	if o.Out == "" {
		errs = append(errs, errors.New("--out is required: the output file (.parquet, .arrow, .feather, .arrows or .csv)"))
	}
	if o.MaxErrors < 0 {
		errs = append(errs, errors.New("--max-errors is negative: a number of invalid rows of at least 0"))
	}
	return errors.Join(errs...)
}
