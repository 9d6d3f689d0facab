// Command gen writes synthetic example transactions to an event file of any
// format pipeline/arrowio writes, for benchmarks and memory checks:
//
//	go run ./bench/gen --rows 5000000 --out /tmp/events.parquet
//
// The rows are held in memory while written (about 400 bytes each): fine
// for the few million rows a benchmark needs.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

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

// spineSchema declares the spine's columns, so WriteEvents can write them.
const spineSchema = `
events:
  spine:
    key: user_id
    timestamp: ts
    fields: {user_id: string, merchant_id: string, label: int}
`

// spineRows writes rows spread at random over the span events covers.
func spineRows(rows int, out string, users, merchants int, _ string, seed uint64) error {
	reg, err := schemas.Parse("spine.yaml", []byte(spineSchema))
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	span := int64(rows) * 100 // events are 10ms apart; spines span as long as 10× as many events
	evs := make([]events.Event, rows)
	for i := range evs {
		raw := fmt.Appendf(nil, `{"user_id":"u%06d","merchant_id":"m%04d","label":%d,"ts":%d}`,
			rng.IntN(users), rng.IntN(merchants), rng.IntN(2), base+rng.Int64N(span))
		if evs[i], err = events.Decode(reg.Events["spine"], raw); err != nil {
			return err
		}
	}
	return write(out, reg.Events["spine"], evs)
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
	rng := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	evs := make([]events.Event, rows)
	for i := range evs {
		raw := fmt.Appendf(nil, `{"txn_id":"t%09d","user_id":"u%06d","merchant_id":"m%04d","amount":%d.%02d,"items":%d,"card_present":%v,"ts":%d}`,
			i, rng.IntN(users), rng.IntN(merchants), rng.IntN(500), rng.IntN(100), 1+rng.IntN(5), rng.IntN(2) == 0, base+int64(i)*10)
		if evs[i], err = events.Decode(typ, raw); err != nil {
			return err
		}
	}
	return write(out, typ, evs)
}
