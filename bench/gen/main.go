// Command gen writes synthetic example transactions to an event file of any
// format pipeline/arrowio writes, for benchmarks and memory checks:
//
//	go run ./bench/gen --rows 5000000 --out /tmp/events.parquet
//
// The rows are held in memory while written (about 400 bytes each): fine
// for the few million rows a benchmark needs. The rows themselves come from
// bench/internal/synth, which the benchmark harness (go run ./bench) shares.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/freshet-ml/freshet/bench/internal/synth"
	"github.com/freshet-ml/freshet/pipeline/arrowio"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows to write")
	out := flag.String("out", "events.parquet", "output file (.parquet, .arrow, .arrows, .csv, .ndjson, ...)")
	users := flag.Int("users", 100_000, "distinct users")
	merchants := flag.Int("merchants", 5_000, "distinct merchants")
	defs := flag.String("schemas", "schemas/example", "definitions holding the transaction event")
	seed := flag.Uint64("seed", 1, "random seed")
	spine := flag.Bool("spine", false, "write a training spine instead (user_id, merchant_id, ts, label) over the same span")
	flag.Parse()
	run := transactions
	if *spine {
		run = spineRows
	}
	if err := run(*rows, *out, *users, *merchants, *defs, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// spineRows writes rows spread at random over the span events covers.
func spineRows(rows int, out string, users, merchants int, _ string, seed uint64) error {
	typ, evs, err := synth.Spine(rows, users, merchants, seed)
	if err != nil {
		return err
	}
	return write(out, typ, evs)
}

func write(out string, typ *schemas.Event, evs []events.Event) error {
	start := time.Now()
	if err := arrowio.WriteEvents(out, typ, evs, 128_000); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %d rows, %.1f MB in %s\n", len(evs), float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
	return nil
}

// transactions writes example transactions 10ms apart.
func transactions(rows int, out string, users, merchants int, defs string, seed uint64) error {
	reg, err := schemas.Load(defs)
	if err != nil {
		return err
	}
	typ := reg.Events["transaction"]
	if typ == nil {
		return fmt.Errorf("no transaction event in %s", defs)
	}
	evs, err := synth.NewTransactions(typ, synth.Spec{Users: users, Merchants: merchants, Seed: seed}).Take(rows)
	if err != nil {
		return err
	}
	return write(out, typ, evs)
}
