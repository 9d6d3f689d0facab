// Package aggregate holds freshet's window arithmetic: how a feature view's
// aggregations are kept as per-hop partial aggregates (tiles), how tiles are
// built from events and merged, and how a feature's value as of a time is read
// from them. The online path (featurize and serve) and the offline path share
// this one implementation, so training and serving agree.
//
// The window formula: the value of a feature with window w and hop h as of
// time t aggregates the events with event time e such that
//
//	floor((t-w)/h)*h <= e <= t
//
// which is every tile from index floor((t-w)/h) to floor(t/h). The tile that
// holds t is taken whole, so a lookup is exact when no event later than t lies
// in t's own tile.
//
// The package must not know about Kafka, Redis or HTTP. pipeline/store packs
// tiles with AppendPacked and merges them with Acc.Merge, in Go: its Redis
// script only writes what was merged.
package aggregate

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/freshet-ml/freshet/schemas"
)

// Column is the partial aggregate kept per tile for one event field (or, with
// Field == "", for the plain event count). N is always kept; the flags say
// which other statistics follow it.
type Column struct {
	Field string
	// Index of Field in the source event's fields; -1 for the plain count.
	Index int
	Type  schemas.FieldType
	// Time keeps the newest event time of the tile's events (in
	// Acc.LastT). Only the plain count column of each group has it: with
	// it, an as-of lookup can say which event is the newest at or before
	// its time (Layout.EventTime).
	Time bool
	Sum  bool // sum of values
	M2   bool // sum of squared deviations from the tile mean (needs Sum)
	Min  bool
	Max  bool
	Last bool // event time and JSON value of the latest event
}

// integer reports whether the column's values are integers (int or
// timestamp fields), whose sum, min and max are kept exactly.
func (c Column) integer() bool { return c.Type == schemas.Int || c.Type == schemas.Timestamp }

// ops are the merge operations of the column's packed elements, in packing
// order: a add, e newest event time (max), v m2 (merged with the two
// elements before it), n min, x max, t last (time, then value at the next
// element, l). They go into the layout's fingerprint.
func (c Column) ops() string {
	var b strings.Builder
	b.WriteByte('a')
	if c.Time {
		b.WriteByte('e')
	}
	if c.Sum {
		b.WriteByte('a')
	}
	if c.M2 {
		b.WriteByte('v')
	}
	if c.Min {
		b.WriteByte('n')
	}
	if c.Max {
		b.WriteByte('x')
	}
	if c.Last {
		b.WriteString("tl")
	}
	return b.String()
}

// Group is every column kept at one hop.
type Group struct {
	Hop int64
	// Keep is how many tiles before the newest one are kept per entity:
	// enough for exact lookups as of any time within the view's retention
	// before the entity's newest event.
	Keep int64
	// Reach is how many tiles before the newest one a lookup at or after
	// the newest event can read: the group's largest window in tiles, and
	// one. A timeline that only moves forward needs no more.
	Reach   int64
	Columns []Column
}

// Ops is the merge program of one packed tile of the group.
func (g *Group) Ops() string {
	var b strings.Builder
	for _, c := range g.Columns {
		b.WriteString(c.ops())
	}
	return b.String()
}

// slot locates a feature's statistics: group and column.
type slot struct {
	group, column int
}

// Layout is how one view's features are kept as tiles. It is derived from the
// view's definition alone, so every process that loads the same definitions
// agrees on it.
type Layout struct {
	View   *schemas.View
	Groups []Group
	// Fingerprint changes whenever the layout does; stored state carries it
	// so that a changed definition never reads tiles packed the old way.
	Fingerprint string

	slots    []slot // by feature index
	entity   int    // index of the entity field
	columns  int    // columns of all groups
	maxHop   int64
	features map[string]int
}

// NewLayout plans the tiles of v: one group per distinct hop, one column per
// field used at that hop.
func NewLayout(v *schemas.View) (*Layout, error) {
	l := &Layout{View: v, slots: make([]slot, len(v.Features)), features: map[string]int{}}
	ent, ok := v.Source.Field(v.Entity)
	if !ok {
		return nil, fmt.Errorf("layout of view %s: entity field %q not in event %s", v.Name, v.Entity, v.Source.Name)
	}
	l.entity = ent.Index
	hops := map[int64]bool{}
	for _, f := range v.Features {
		hops[f.Hop] = true
	}
	hopList := make([]int64, 0, len(hops))
	for h := range hops {
		hopList = append(hopList, h)
	}
	sort.Slice(hopList, func(i, j int) bool { return hopList[i] < hopList[j] })
	// Lookups as of any time within the retention before the newest event
	// are exact, so tiles reach back a further largest window.
	reach := v.Retention() + v.MaxWindow()
	for _, h := range hopList {
		g := Group{Hop: h, Keep: (reach+h-1)/h + 1}
		cols := map[string]*Column{}
		for _, f := range v.Features {
			if f.Hop != h {
				continue
			}
			g.Reach = max(g.Reach, (f.Window+h-1)/h+1)
			c := cols[f.Field]
			if c == nil {
				c = &Column{Field: f.Field, Index: -1, Type: f.FieldType}
				if f.Field != "" {
					fd, ok := v.Source.Field(f.Field)
					if !ok {
						return nil, fmt.Errorf("layout of view %s: field %q not in event %s", v.Name, f.Field, v.Source.Name)
					}
					c.Index = fd.Index
				}
				cols[f.Field] = c
			}
			switch f.Agg {
			case schemas.Sum:
				c.Sum = true
			case schemas.Mean:
				c.Sum = true
			case schemas.Stddev:
				c.Sum, c.M2 = true, true
			case schemas.Min:
				c.Min = true
			case schemas.Max:
				c.Max = true
			case schemas.Last:
				c.Last = true
			}
		}
		// Every group keeps the plain count, whether or not a count
		// feature uses it, for the newest event time of each tile: as-of
		// answers need it (Layout.EventTime).
		if cols[""] == nil {
			cols[""] = &Column{Index: -1}
		}
		cols[""].Time = true
		names := make([]string, 0, len(cols))
		for name := range cols {
			names = append(names, name)
		}
		sort.Strings(names) // "" (the plain count) first
		for _, name := range names {
			g.Columns = append(g.Columns, *cols[name])
		}
		l.Groups = append(l.Groups, g)
		l.columns += len(g.Columns)
		l.maxHop = max(l.maxHop, h)
	}
	for i, f := range v.Features {
		l.features[f.Name] = i
		for gi, g := range l.Groups {
			if g.Hop != f.Hop {
				continue
			}
			for ci, c := range g.Columns {
				if c.Field == f.Field {
					l.slots[i] = slot{gi, ci}
				}
			}
		}
	}
	h := fnv.New32a()
	// v2: the plain count column of every group keeps its tile's newest
	// event time (Column.Time).
	fmt.Fprintf(h, "v2|%s|%s", v.Source.Name, v.Entity)
	for _, g := range l.Groups {
		fmt.Fprintf(h, "|%d:%d:", g.Hop, g.Keep)
		for _, c := range g.Columns {
			fmt.Fprintf(h, "%s/%s/%s,", c.Field, c.Type, c.ops())
		}
	}
	l.Fingerprint = fmt.Sprintf("%08x", h.Sum32())
	return l, nil
}

// EntityIndex is the index of the view's entity field in its source event.
func (l *Layout) EntityIndex() int { return l.entity }

// FeatureIndex returns the index of the named feature in View.Features.
func (l *Layout) FeatureIndex(name string) (int, bool) {
	i, ok := l.features[name]
	return i, ok
}

// timeColumn is the index, in every group, of the plain count column that
// keeps the newest event time: names sort "" first.
const timeColumn = 0

// FloorDiv is floor(a/b) for b > 0, also for negative a (events before 1970).
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
