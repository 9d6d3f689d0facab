// Package synth makes the synthetic card transactions and training spines
// that the benchmarks load: the rows of `go run ./bench/gen` and of the
// benchmark harness (`go run ./bench`). Rows are deterministic for a seed,
// so two runs load the same workload.
//
// A transaction has the fields of the example event (schemas/example):
// txn_id, user_id, merchant_id, amount, items, card_present and ts; any
// event type declaring those fields decodes it.
package synth

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// DefaultStart is the event time of the first row unless a Spec says
// otherwise: 2024-05-01T00:00:00Z.
var DefaultStart = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// Spec describes a stream of transactions.
type Spec struct {
	// Users and Merchants are the numbers of distinct user and merchant ids.
	Users, Merchants int
	// Seed makes the random draws (amounts, items, card_present and, unless
	// Cycle, the ids) repeatable.
	Seed uint64
	// Start is the event time of row 0 in epoch ms; 0 means DefaultStart.
	Start int64
	// Spacing is the event-time step between rows in ms; 0 means 10.
	Spacing int64
	// Cycle gives row i user i mod Users and merchant (i·7919) mod
	// Merchants, so that n ≥ Users rows name every user (a random draw
	// names only about 63% of them when n = Users). Otherwise both ids are
	// drawn at random.
	Cycle bool
	// Now, when set, gives each row the event time Now() returns instead
	// of Start + row·Spacing: a live feed.
	Now func() int64
}

// Transactions generates transaction rows one at a time.
type Transactions struct {
	spec Spec
	rng  *rand.Rand
	typ  *schemas.Event
	row  int
	buf  []byte
}

// NewTransactions returns a generator of spec's rows decoded as typ.
func NewTransactions(typ *schemas.Event, spec Spec) *Transactions {
	if spec.Start == 0 {
		spec.Start = DefaultStart
	}
	if spec.Spacing == 0 {
		spec.Spacing = 10
	}
	spec.Users, spec.Merchants = max(spec.Users, 1), max(spec.Merchants, 1)
	return &Transactions{spec: spec, rng: rand.New(rand.NewPCG(spec.Seed, 1)), typ: typ}
}

// Row is the index of the row Next returns next.
func (g *Transactions) Row() int { return g.row }

// NextJSON returns the next row as raw event JSON (what a client would post
// to ingest, the timestamp as epoch ms). The slice is reused by the next
// call.
func (g *Transactions) NextJSON() []byte {
	s, i := &g.spec, g.row
	// The draws come in the same order whatever the mode, so a seed gives
	// the same amounts either way.
	user, merchant := g.rng.IntN(s.Users), g.rng.IntN(s.Merchants)
	if s.Cycle {
		user, merchant = i%s.Users, int((int64(i)*7919)%int64(s.Merchants))
	}
	ts := s.Start + int64(i)*s.Spacing
	if s.Now != nil {
		ts = s.Now()
	}
	g.buf = fmt.Appendf(g.buf[:0], `{"txn_id":"t%09d","user_id":"u%06d","merchant_id":"m%04d","amount":%d.%02d,"items":%d,"card_present":%v,"ts":%d}`,
		i, user, merchant, g.rng.IntN(500), g.rng.IntN(100), 1+g.rng.IntN(5), g.rng.IntN(2) == 0, ts)
	g.row++
	return g.buf
}

// Next returns the next row decoded.
func (g *Transactions) Next() (events.Event, error) {
	raw := g.NextJSON()
	ev, err := events.Decode(g.typ, raw)
	if err != nil {
		return events.Event{}, fmt.Errorf("decode synthetic row %d as %s: %w", g.row-1, g.typ.Name, err)
	}
	return ev, nil
}

// Take returns the next n rows decoded.
func (g *Transactions) Take(n int) ([]events.Event, error) {
	evs := make([]events.Event, n)
	for i := range evs {
		var err error
		if evs[i], err = g.Next(); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// SpineSchema declares a training spine's columns (user_id, merchant_id,
// label and ts) as an event type, so arrowio.WriteEvents can write them.
const SpineSchema = `
events:
  spine:
    key: user_id
    timestamp: ts
    fields: {user_id: string, merchant_id: string, label: int}
`

// Spine returns rows spine rows spread at random over the span that as many
// transactions 10 ms apart from DefaultStart would cover, times ten, and
// their event type.
func Spine(rows, users, merchants int, seed uint64) (*schemas.Event, []events.Event, error) {
	reg, err := schemas.Parse("spine.yaml", []byte(SpineSchema))
	if err != nil {
		return nil, nil, fmt.Errorf("parse spine schema: %w", err)
	}
	typ := reg.Events["spine"]
	rng := rand.New(rand.NewPCG(seed, 2))
	span := int64(rows) * 100
	evs := make([]events.Event, rows)
	for i := range evs {
		raw := fmt.Appendf(nil, `{"user_id":"u%06d","merchant_id":"m%04d","label":%d,"ts":%d}`,
			rng.IntN(users), rng.IntN(merchants), rng.IntN(2), DefaultStart+rng.Int64N(span))
		if evs[i], err = events.Decode(typ, raw); err != nil {
			return nil, nil, fmt.Errorf("decode spine row %d: %w", i, err)
		}
	}
	return typ, evs, nil
}
