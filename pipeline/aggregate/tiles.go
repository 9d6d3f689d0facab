package aggregate

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// Acc is the partial aggregate of one column over a set of events. Min, Max
// and the last value mean something only when N > 0.
type Acc struct {
	N   float64 // events counted (with the field present, for a field column)
	Sum float64
	M2  float64 // sum of squared deviations from Sum/N
	Min float64
	Max float64
	// ISum, IMin and IMax are the exact sum, min and max of an integer
	// column (int or timestamp), which float64 would round beyond 2^53.
	// Sum, Min and Max are kept beside them for the mean and the
	// deviations.
	ISum       Int128
	IMin, IMax int64
	// LastT and LastV are the event time and JSON text of the latest value;
	// on equal times the greater JSON text wins, so the result never depends
	// on the order events arrive in. A column with Time (the plain count)
	// keeps the newest event time in LastT and no value.
	LastT int64
	LastV string
}

// add folds one value observed at event time t into a: Merge with an
// accumulator of that one value, spelled out because it runs per event.
func (a *Acc) add(v events.Value, t int64, text string) {
	x := v.Float()
	integer := v.Kind == events.Int || v.Kind == events.Time
	if a.N == 0 {
		*a = Acc{N: 1, Sum: x, Min: x, Max: x, LastT: t, LastV: text}
		if integer {
			a.ISum, a.IMin, a.IMax = Int128Of(v.I), v.I, v.I
		}
		return
	}
	delta := x - a.Sum/a.N
	a.M2 += delta * delta * a.N / (a.N + 1)
	a.N++
	a.Sum += x
	a.Min = math.Min(a.Min, x)
	a.Max = math.Max(a.Max, x)
	if integer {
		a.ISum = a.ISum.Add(Int128Of(v.I))
		a.IMin = min(a.IMin, v.I)
		a.IMax = max(a.IMax, v.I)
	}
	if t > a.LastT || (t == a.LastT && text > a.LastV) {
		a.LastT, a.LastV = t, text
	}
}

// Merge folds b into a. It is associative and commutative up to float
// rounding (and exactly so for the integer statistics). pipeline/store
// merges a unit's tiles into the stored ones with it, in Go; its Redis
// script only writes the result.
func (a *Acc) Merge(b *Acc) {
	switch {
	case b.N == 0:
		return
	case a.N == 0:
		*a = *b
		return
	}
	// Chan et al.'s pairwise update: exact for any split of the events.
	delta := b.Sum/b.N - a.Sum/a.N
	a.M2 = a.M2 + b.M2 + delta*delta*a.N*b.N/(a.N+b.N)
	a.N += b.N
	a.Sum += b.Sum
	a.Min = math.Min(a.Min, b.Min)
	a.Max = math.Max(a.Max, b.Max)
	a.ISum = a.ISum.Add(b.ISum)
	a.IMin = min(a.IMin, b.IMin)
	a.IMax = max(a.IMax, b.IMax)
	if b.LastT > a.LastT || (b.LastT == a.LastT && b.LastV > a.LastV) {
		a.LastT, a.LastV = b.LastT, b.LastV
	}
}

// Tile is the accumulators of one group's columns over one hop.
type Tile struct {
	Group int
	Index int64 // tile start = Index * hop
	Accs  []Acc
}

// Tiles is a sparse set of one entity's tiles being built from events. It is
// small (an entity's events in one micro-batch touch few tiles), so a slice
// beats a map.
type Tiles struct {
	l     *Layout
	tiles []Tile
	// MaxTime is the greatest event time added.
	MaxTime int64
	// Events is how many events were added.
	Events int
	text   []byte
	slab   []Acc // unused accumulators, handed out to new tiles
}

// NewTiles returns an empty tile set for the layout's view.
func (l *Layout) NewTiles() *Tiles { return &Tiles{l: l, MaxTime: math.MinInt64} }

// Reset empties t for reuse.
func (t *Tiles) Reset() {
	t.tiles = t.tiles[:0]
	t.MaxTime = math.MinInt64
	t.Events = 0
}

func (t *Tiles) tile(group int, index int64) *Tile {
	for i := range t.tiles {
		if t.tiles[i].Group == group && t.tiles[i].Index == index {
			return &t.tiles[i]
		}
	}
	n := len(t.l.Groups[group].Columns)
	if len(t.slab) < n {
		// One allocation serves the new tiles of several groups: an event
		// usually opens a tile in every group at once.
		t.slab = make([]Acc, max(n, t.l.columns))
	}
	accs := t.slab[:n:n]
	t.slab = t.slab[n:]
	t.tiles = append(t.tiles, Tile{Group: group, Index: index, Accs: accs})
	return &t.tiles[len(t.tiles)-1]
}

// TileIndex is the index of the tile of a group that holds event time t
// (ms): floor(t / hop). Tiles.Add folds an event into that tile of every
// group.
func (l *Layout) TileIndex(group int, t int64) int64 { return FloorDiv(t, l.Groups[group].Hop) }

// Add folds one event of the view's source into the tiles. The caller has
// checked that the event belongs to this entity.
func (t *Tiles) Add(ev *events.Event) {
	t.Events++
	t.MaxTime = max(t.MaxTime, ev.Time)
	for gi := range t.l.Groups {
		t.l.Groups[gi].fold(t.tile(gi, t.l.TileIndex(gi, ev.Time)).Accs, ev, &t.text)
	}
}

// fold adds one event to a tile's accumulators of group g; text is scratch
// space for last values' JSON.
func (g *Group) fold(accs []Acc, ev *events.Event, text *[]byte) {
	for ci, c := range g.Columns {
		if c.Index < 0 {
			a := &accs[ci]
			// The first event sets the time: 0 is no bound for events
			// before 1970.
			if c.Time && (a.N == 0 || ev.Time > a.LastT) {
				a.LastT = ev.Time
			}
			a.N++
			continue
		}
		v := ev.Values[c.Index]
		if !v.Present() {
			continue
		}
		last := ""
		if c.Last {
			*text = v.AppendJSON((*text)[:0])
			last = string(*text)
		}
		accs[ci].add(v, ev.Time, last)
	}
}

// Merge folds every tile of o into t.
func (t *Tiles) Merge(o *Tiles) {
	t.Events += o.Events
	t.MaxTime = max(t.MaxTime, o.MaxTime)
	for _, ot := range o.tiles {
		tl := t.tile(ot.Group, ot.Index)
		for i := range ot.Accs {
			tl.Accs[i].Merge(&ot.Accs[i])
		}
	}
}

// Len is the number of tiles.
func (t *Tiles) Len() int { return len(t.tiles) }

// Tiles returns the tiles sorted by group and index. The slice is t's own.
func (t *Tiles) Tiles() []Tile {
	slices.SortFunc(t.tiles, func(a, b Tile) int {
		if c := cmp.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return t.tiles
}

// State returns the tiles as a State, as if read back from the store.
func (t *Tiles) State() *State {
	st := &State{Found: t.Events > 0, EventTime: t.MaxTime, Groups: make([][]Tile, len(t.l.Groups))}
	for _, tl := range t.Tiles() {
		accs := make([]Acc, len(tl.Accs))
		copy(accs, tl.Accs)
		st.Groups[tl.Group] = append(st.Groups[tl.Group], Tile{Group: tl.Group, Index: tl.Index, Accs: accs})
	}
	return st
}

// sep separates packed elements. A JSON text never holds a raw 0x1f byte
// (JSON escapes control characters), so last values need no escaping.
const sep = '\x1f'

// AppendPacked encodes a tile's accumulators for the store, in the element
// order Group.Ops describes.
func (l *Layout) AppendPacked(b []byte, group int, accs []Acc) []byte {
	first := true
	put := func(s []byte) {
		if !first {
			b = append(b, sep)
		}
		first = false
		b = append(b, s...)
	}
	var num [48]byte // an Int128 has up to 40 characters
	f := func(x float64) []byte { return strconv.AppendFloat(num[:0], x, 'g', -1, 64) }
	for ci, c := range l.Groups[group].Columns {
		a := accs[ci]
		put(f(a.N))
		if c.Time {
			put(optional(a.N > 0, strconv.AppendInt(num[:0], a.LastT, 10)))
		}
		exact := c.integer()
		if c.Sum {
			if exact {
				put(a.ISum.Append(num[:0]))
			} else {
				put(f(a.Sum))
			}
		}
		if c.M2 {
			put(f(a.M2))
		}
		if c.Min {
			if exact {
				put(optional(a.N > 0, strconv.AppendInt(num[:0], a.IMin, 10)))
			} else {
				put(optional(a.N > 0, f(a.Min)))
			}
		}
		if c.Max {
			if exact {
				put(optional(a.N > 0, strconv.AppendInt(num[:0], a.IMax, 10)))
			} else {
				put(optional(a.N > 0, f(a.Max)))
			}
		}
		if c.Last {
			put(optional(a.N > 0, strconv.AppendInt(num[:0], a.LastT, 10)))
			put(optional(a.N > 0, []byte(a.LastV)))
		}
	}
	return b
}

func optional(ok bool, b []byte) []byte {
	if !ok {
		return nil
	}
	return b
}

// DecodePacked decodes a tile packed by AppendPacked.
func (l *Layout) DecodePacked(group int, s string) ([]Acc, error) {
	if group < 0 || group >= len(l.Groups) {
		return nil, fmt.Errorf("tile group %d out of range", group)
	}
	cols := l.Groups[group].Columns
	accs := make([]Acc, len(cols))
	c := cursor{rest: s, more: true}
	for ci, col := range cols {
		a := &accs[ci]
		c.num(&a.N, false)
		if col.Time {
			c.integer(&a.LastT)
		}
		if col.integer() {
			c.exact(col, a)
		} else {
			for _, st := range []struct {
				on       bool
				dst      *float64
				optional bool
			}{{col.Sum, &a.Sum, false}, {col.M2, &a.M2, false}, {col.Min, &a.Min, true}, {col.Max, &a.Max, true}} {
				if st.on {
					c.num(st.dst, st.optional)
				}
			}
		}
		if col.Last {
			var t float64
			c.num(&t, true)
			a.LastT = int64(t)
			a.LastV = c.next()
		}
	}
	if c.err == nil && c.more {
		c.err = fmt.Errorf("more elements than its layout")
	}
	if c.err != nil {
		return nil, fmt.Errorf("decode tile %q: %w", s, c.err)
	}
	return accs, nil
}

// cursor walks the elements of a packed tile, keeping the first error.
type cursor struct {
	rest string
	more bool
	err  error
}

func (c *cursor) next() string {
	if !c.more {
		if c.err == nil {
			c.err = fmt.Errorf("too few elements")
		}
		return ""
	}
	i := strings.IndexByte(c.rest, sep)
	if i < 0 {
		e := c.rest
		c.rest, c.more = "", false
		return e
	}
	e := c.rest[:i]
	c.rest = c.rest[i+1:]
	return e
}

// num reads a number; optional elements (min, max, last of an empty
// column) may be empty.
func (c *cursor) num(dst *float64, optional bool) {
	e := c.next()
	if c.err != nil || (e == "" && optional) {
		return
	}
	x, err := strconv.ParseFloat(e, 64)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("element %q: %w", e, err)
	}
	*dst = x
}

// exact reads the sum, m2, min and max of an integer column: the sum,
// min and max as exact integers. Their float twins are derived from them.
func (c *cursor) exact(col Column, a *Acc) {
	if col.Sum {
		e := c.next()
		if c.err != nil {
			return
		}
		s, err := ParseInt128(e)
		if err != nil {
			c.err = fmt.Errorf("element %q: %w", e, err)
			return
		}
		a.ISum, a.Sum = s, s.Float()
	}
	if col.M2 {
		c.num(&a.M2, false)
	}
	if col.Min {
		c.integer(&a.IMin)
		a.Min = float64(a.IMin)
	}
	if col.Max {
		c.integer(&a.IMax)
		a.Max = float64(a.IMax)
	}
}

// integer reads an optional integer (the newest event time of an empty column
// is empty); integers are read as such, so any event time reads back
// exactly.
func (c *cursor) integer(dst *int64) {
	e := c.next()
	if c.err != nil || e == "" {
		return
	}
	x, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		// Before integer columns were exact, their min and max were
		// stored as float text: an integral one still reads.
		f, ferr := strconv.ParseFloat(e, 64)
		if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			c.err = fmt.Errorf("element %q: %w", e, err)
			return
		}
		x = int64(f)
	}
	*dst = x
}

// State is what the store holds for one entity of a view.
type State struct {
	Found bool
	// Pending says the view's state is being recomputed (or is not kept
	// for these definitions): every value is unknown, not empty (Value
	// says Pending).
	Pending bool
	// EventTime is the newest event time applied for the entity.
	EventTime int64
	// Groups holds each group's tiles sorted by index.
	Groups [][]Tile
}

// EventTime returns the newest event time of st at or before at (ms), and
// false when no retained event is at or before at.
//
// At or after the entity's newest event (a lookup as of now) that is
// State.EventTime. Before it, the answer comes from the tiles of the
// finest hop, which keep the newest event time of each tile, under the
// exactness rule of values: it is exact whenever no event later than at
// lies in at's own finest tile (always at t = k·hop − 1 ms). When at's own
// tile holds events later than at, which of its events are at or before at
// cannot be told, so the answer is the newest event of the tiles entirely
// before it: never later than at, possibly older than the true one, and
// false when those tiles are empty. Like values, it is meant for times
// within the retention before the newest event; older tiles are dropped.
func (l *Layout) EventTime(st *State, at int64) (int64, bool) {
	if st == nil || !st.Found {
		return 0, false
	}
	if at >= st.EventTime {
		return st.EventTime, true
	}
	if len(st.Groups) == 0 || len(l.Groups) == 0 {
		return 0, false
	}
	// Groups are sorted by hop: the first is the finest.
	return newestAtOrBefore(st.Groups[0], l.Groups[0].Hop, at)
}

// newestAtOrBefore is the newest event time at or before at that the tiles
// of one group (sorted by index) tell for sure: the newest of the tiles
// before at's own, or of at's own when none of its events is later than at.
func newestAtOrBefore(tiles []Tile, hop, at int64) (int64, bool) {
	own := FloorDiv(at, hop)
	// j: the last tile that starts at or before at.
	j := sort.Search(len(tiles), func(k int) bool { return tiles[k].Index > own }) - 1
	for ; j >= 0; j-- {
		if len(tiles[j].Accs) <= timeColumn {
			return 0, false // a malformed state: nothing is known
		}
		a := tiles[j].Accs[timeColumn]
		if a.N == 0 {
			continue
		}
		if tiles[j].Index < own || a.LastT <= at {
			return a.LastT, true
		}
		// at's own tile holds an event later than at: its events at or
		// before at, if any, cannot be told apart; the tiles before it can.
	}
	return 0, false
}

// Status says whether a feature's value is an ordinary one.
type Status uint8

const (
	// OK is an ordinary value, null for an empty window.
	OK Status = iota
	// Overflow is a value that does not fit its type: an int sum beyond
	// int64, or a float sum (and the mean and stddev beside it) or sum of
	// squared deviations beyond float64. The value is null, but the window
	// is not empty: answers say OVERFLOW beside it.
	Overflow
	// Pending is a value not known yet: the view's state is being
	// recomputed from Kafka after a definitions change. The value is
	// null; answers say PENDING beside it.
	Pending
)

// String is the status as answers name it.
func (s Status) String() string {
	switch s {
	case Overflow:
		return "OVERFLOW"
	case Pending:
		return "PENDING"
	}
	return "OK"
}

// Value computes feature i of the view as of time at (ms) from st.
// Absent means null: an empty window for every aggregation but count and sum,
// or a value that overflows its type, which the status tells.
func (l *Layout) Value(st *State, i int, at int64) (events.Value, Status) {
	if st != nil && st.Pending {
		return events.Value{}, Pending
	}
	f := l.View.Features[i]
	s := l.slots[i]
	col := l.Groups[s.group].Columns[s.column]
	var acc Acc
	if st != nil && st.Found {
		tiles := st.Groups[s.group]
		lo, hi := FloorDiv(at-f.Window, f.Hop), FloorDiv(at, f.Hop)
		j := sort.Search(len(tiles), func(k int) bool { return tiles[k].Index >= lo })
		for ; j < len(tiles) && tiles[j].Index <= hi; j++ {
			acc.Merge(&tiles[j].Accs[s.column])
		}
	}
	return finalize(f.Agg, col, acc)
}

func finalize(agg schemas.Agg, col Column, a Acc) (events.Value, Status) {
	exact := col.integer()
	switch agg {
	case schemas.Count:
		return events.Value{Kind: events.Int, I: int64(a.N)}, OK
	case schemas.Sum:
		if exact {
			s, ok := a.ISum.Int64()
			if !ok {
				return events.Value{}, Overflow
			}
			return events.Value{Kind: events.Int, I: s}, OK
		}
		return finite(a.Sum)
	}
	if a.N == 0 {
		return events.Value{}, OK
	}
	switch agg {
	case schemas.Mean:
		if exact {
			// From the exact sum: never beyond float64.
			return events.Value{Kind: events.Float, F: a.ISum.Float() / a.N}, OK
		}
		if _, s := finite(a.Sum); s != OK {
			return events.Value{}, s
		}
		return finite(a.Sum / a.N)
	case schemas.Stddev:
		if _, s := finite(a.Sum); s != OK && !exact {
			return events.Value{}, s
		}
		if _, s := finite(a.M2); s != OK {
			return events.Value{}, s
		}
		return events.Value{Kind: events.Float, F: math.Sqrt(max(a.M2, 0) / a.N)}, OK
	case schemas.Min:
		if exact {
			return typed(col.Type, a.IMin), OK
		}
		return events.Value{Kind: events.Float, F: a.Min}, OK
	case schemas.Max:
		if exact {
			return typed(col.Type, a.IMax), OK
		}
		return events.Value{Kind: events.Float, F: a.Max}, OK
	case schemas.Last:
		v, err := parseJSONValue(col.Type, a.LastV)
		if err != nil {
			// The value was written by AppendJSON; failing to read it back
			// means the stored state is corrupt. Null is the honest answer.
			return events.Value{}, OK
		}
		return v, OK
	}
	return events.Value{}, OK
}

// finite is x as a float value, or Overflow when a float sum left float64
// (infinite, or NaN from infinities of both signs).
func finite(x float64) (events.Value, Status) {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return events.Value{}, Overflow
	}
	return events.Value{Kind: events.Float, F: x}, OK
}

func typed(t schemas.FieldType, x int64) events.Value {
	if t == schemas.Timestamp {
		return events.Value{Kind: events.Time, I: x}
	}
	return events.Value{Kind: events.Int, I: x}
}

func parseJSONValue(t schemas.FieldType, text string) (events.Value, error) {
	switch t {
	case schemas.String:
		var s string
		err := json.Unmarshal([]byte(text), &s)
		return events.Value{Kind: events.String, S: s}, err
	case schemas.Int:
		i, err := strconv.ParseInt(text, 10, 64)
		return events.Value{Kind: events.Int, I: i}, err
	case schemas.Timestamp:
		i, err := strconv.ParseInt(text, 10, 64)
		return events.Value{Kind: events.Time, I: i}, err
	case schemas.Float:
		f, err := strconv.ParseFloat(text, 64)
		return events.Value{Kind: events.Float, F: f}, err
	case schemas.Bool:
		switch text {
		case "true":
			return events.Value{Kind: events.Bool, B: true}, nil
		case "false":
			return events.Value{Kind: events.Bool, B: false}, nil
		}
	}
	return events.Value{}, fmt.Errorf("cannot read %q as %s", text, t)
}
