package store

// merge.go owns the merge of one entity's units into the state read for
// it, between Apply's two round trips, in the steps merge lists. It is the
// one place a unit's tiles are built (unitTiles).

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
)

// merge applies w's units to the state read for the entity (vals, in the
// order of w.fields) and returns cas.lua's arguments, or nil when nothing
// changes (every unit's offsets were applied before). It records each
// unit's result in w.res. The steps, in order:
//
//  1. readHeader: the version, the newest event time, the lowest tile of
//     each group and the oldest remembered id.
//  2. Per unit, pick: the events not applied before, by offset and by id.
//  3. Per unit, unitTiles then mergeTiles: the tiles of the events picked,
//     merged into those read.
//  4. planSweep: whether the write also drops tiles and ids past the
//     retention.
//  5. encode: the script's arguments.
func merge(l *aggregate.Layout, units []Unit, w *entityWork, vals []any, ttl string) ([]any, error) {
	m := &entityMerge{l: l, fields: w.fields, vals: vals}
	m.idIdx, m.window = idField(l)
	if err := m.readHeader(); err != nil {
		return nil, err
	}
	w.res = make([]Result, len(w.units))
	changed := false
	for j, ui := range w.units {
		u := &units[ui]
		pick, fresh, err := m.pick(u)
		if err != nil {
			return nil, err
		}
		w.res[j] = Result{Applied: len(pick), Duplicates: len(u.Offsets) - len(pick)}
		if !fresh {
			continue // every offset applied before: not even the offset moves
		}
		changed = true
		m.setOffset(u.Source, u.last())
		if err := m.mergeTiles(m.unitTiles(u, pick)); err != nil {
			return nil, err
		}
	}
	if !changed {
		return nil, nil
	}
	return m.encode(ttl, m.planSweep())
}

// entityMerge is one entity's merge in progress: what was read, and what
// the units merged so far change.
type entityMerge struct {
	l      *aggregate.Layout
	fields []string // the fields read, in the order of vals
	vals   []any
	idIdx  int   // the source event's id field, -1 without one
	window int64 // how long ids are remembered (ms)

	header                 // as read, then as the units move it
	offsets []sourceOffset // the last offset applied per source, changed by the units
	ids     []seenID       // the ids applied by the units
	// By id, for seenID: a hot entity can bring thousands of ids in one
	// batch, too many for linear search. Built on first use.
	idRead    map[string]string  // the ids read: their remembered event time
	idApplied map[string][]int64 // the ids in ids: their event times
	tiles     []changedTile      // the tiles changed, in the order first touched
	picked    []int              // pick's scratch
	scratch   *aggregate.Tiles   // unitTiles' scratch
}

// header is an entity's bookkeeping fields (headerFields).
type header struct {
	version     string // as read, "" for an entity without state
	newest      int64  // the newest event time applied
	hasNewest   bool
	lows        []int64 // per group, the lowest tile index written
	hasLow      []bool
	oldestID    int64 // the earliest event time of a remembered id
	hasOldestID bool
}

// sourceOffset is the last offset applied from a source partition.
type sourceOffset struct {
	source string
	last   int64
}

// seenID is an event id and its event time.
type seenID struct {
	id string
	t  int64
}

// changedTile is a tile being merged for a write.
type changedTile struct {
	tileAt
	field string
	accs  []aggregate.Acc
}

// read returns the value read for field f, and whether the hash had it.
func (m *entityMerge) read(f string) (string, bool) {
	i := slices.Index(m.fields, f)
	if i < 0 {
		return "", false
	}
	s, ok := m.vals[i].(string)
	return s, ok
}

// readHeader reads the bookkeeping fields, the first ones read. The
// version is parsed only when a write needs the next one (encode); an
// unreadable oldest-id time counts as none.
func (m *entityMerge) readHeader() error {
	m.version, _ = m.vals[0].(string)
	if s, ok := m.vals[1].(string); ok {
		t, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("field %s: %w", fieldNewest, err)
		}
		m.newest, m.hasNewest = int64(t), true
	}
	m.lows = make([]int64, len(m.l.Groups))
	m.hasLow = make([]bool, len(m.l.Groups))
	if s, _ := m.vals[2].(string); s != "" {
		for g := 0; s != "" && g < len(m.lows); g++ {
			var p string
			p, s, _ = strings.Cut(s, ",")
			if p == "" {
				continue
			}
			x, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				return fmt.Errorf("field %s: %w", fieldLows, err)
			}
			m.lows[g], m.hasLow[g] = x, true
		}
	}
	if s, ok := m.vals[3].(string); ok && s != "" {
		if x, err := strconv.ParseInt(s, 10, 64); err == nil {
			m.oldestID, m.hasOldestID = x, true
		}
	}
	return nil
}

// pick returns the indexes of u's events to apply: those after the offset
// the entity applied from u's source (a redelivery cut at other batch
// boundaries can straddle it) and, when the event declares an id, those
// whose id was not applied within the dedupe window, by an earlier write
// or an earlier event of this one. fresh is false when every offset of u
// was applied before. The slice is m's scratch, valid until the next call.
func (m *entityMerge) pick(u *Unit) (pick []int, fresh bool, err error) {
	done, err := m.appliedOffset(u.Source)
	if err != nil || done >= u.last() {
		return nil, false, err
	}
	pick = m.picked[:0]
	for k, off := range u.Offsets {
		if off <= done {
			continue
		}
		if m.idIdx >= 0 {
			if id := u.Events[k].Values[m.idIdx]; id.Present() {
				key, t := id.Text(), u.Events[k].Time
				if m.seenID(key, t) {
					continue
				}
				m.ids = append(m.ids, seenID{key, t})
				m.idApplied[key] = append(m.idApplied[key], t)
			}
		}
		pick = append(pick, k)
	}
	m.picked = pick
	return pick, true, nil
}

// appliedOffset is the last offset applied from source: as an earlier unit
// of this merge left it, else as read, else -1.
func (m *entityMerge) appliedOffset(source string) (int64, error) {
	if k := slices.IndexFunc(m.offsets, func(o sourceOffset) bool { return o.source == source }); k >= 0 {
		return m.offsets[k].last, nil
	}
	s, ok := m.read(offsetPrefix + source)
	if !ok {
		return -1, nil
	}
	x, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field %s%s: %w", offsetPrefix, source, err)
	}
	return x, nil
}

// setOffset records last as the last offset applied from source.
func (m *entityMerge) setOffset(source string, last int64) {
	if k := slices.IndexFunc(m.offsets, func(o sourceOffset) bool { return o.source == source }); k >= 0 {
		m.offsets[k].last = last
		return
	}
	m.offsets = append(m.offsets, sourceOffset{source, last})
}

// seenID reports whether id was applied at an event time within the
// dedupe window of t: by this merge, or as read.
func (m *entityMerge) seenID(id string, t int64) bool {
	if m.idRead == nil {
		m.idRead, m.idApplied = map[string]string{}, map[string][]int64{}
		for i, f := range m.fields {
			if s, ok := m.vals[i].(string); ok && strings.HasPrefix(f, idPrefix) {
				m.idRead[f[len(idPrefix):]] = s
			}
		}
	}
	for _, x := range m.idApplied[id] {
		if abs(t-x) <= m.window {
			return true
		}
	}
	if s, ok := m.idRead[id]; ok {
		if x, err := strconv.ParseInt(s, 10, 64); err == nil && abs(t-x) <= m.window {
			return true
		}
	}
	return false
}

// unitTiles builds the tiles of u's events at the indexes pick: the one
// place the tiles of what featurize applies are built. They are m's
// scratch, valid until the next call.
func (m *entityMerge) unitTiles(u *Unit, pick []int) *aggregate.Tiles {
	if m.scratch == nil {
		m.scratch = m.l.NewTiles()
	} else {
		m.scratch.Reset()
	}
	for _, k := range pick {
		m.scratch.Add(u.Events[k])
	}
	return m.scratch
}

// mergeTiles merges a unit's tiles into the entity's, after raising the
// newest event time to theirs. A tile older than its group's retention
// before the newest event is never read exactly again, so it is not
// written. The groups' lowest tiles follow the tiles written.
func (m *entityMerge) mergeTiles(ts *aggregate.Tiles) error {
	if ts.Events > 0 && (!m.hasNewest || ts.MaxTime > m.newest) {
		m.newest, m.hasNewest = ts.MaxTime, true
	}
	for _, t := range ts.Tiles() {
		if t.Index < m.l.TileIndex(t.Group, m.newest)-m.l.Groups[t.Group].Keep {
			continue
		}
		c, err := m.tile(tileAt{t.Group, t.Index})
		if err != nil {
			return err
		}
		for i := range c.accs {
			c.accs[i].Merge(&t.Accs[i])
		}
		if !m.hasLow[t.Group] || t.Index < m.lows[t.Group] {
			m.lows[t.Group], m.hasLow[t.Group] = t.Index, true
		}
	}
	return nil
}

// tile returns the changed tile at, adding it as read (or empty) when this
// merge has not touched it yet. The pointer is valid until the next call.
func (m *entityMerge) tile(at tileAt) (*changedTile, error) {
	if k := slices.IndexFunc(m.tiles, func(c changedTile) bool { return c.tileAt == at }); k >= 0 {
		return &m.tiles[k], nil
	}
	c := changedTile{tileAt: at, field: tileField(at.group, at.index)}
	if s, had := m.read(c.field); had {
		old, err := m.l.DecodePacked(at.group, s)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", c.field, err)
		}
		c.accs = old
	} else {
		c.accs = make([]aggregate.Acc, len(m.l.Groups[at.group].Columns))
	}
	m.tiles = append(m.tiles, c)
	return &m.tiles[len(m.tiles)-1], nil
}

// planSweep decides whether the write also drops what is past the
// retention: the tiles below each group's cutoff (the newest event's tile
// minus the tiles kept) and the ids older than the dedupe window before
// the newest event. It sweeps only once the oldest tile of some group is a
// quarter of the retention behind its cutoff, or the oldest id a quarter of
// the window past it, so the sweep's cost (an HGETALL in the script) is
// amortized. It returns the script's sweep argument, "" for none.
func (m *entityMerge) planSweep() string {
	for _, s := range m.ids {
		if !m.hasOldestID || s.t < m.oldestID {
			m.oldestID, m.hasOldestID = s.t, true
		}
	}
	idsStale := m.hasOldestID && m.oldestID < m.newest-m.window-max(1, m.window/4)
	for g := range m.l.Groups {
		keep := m.l.Groups[g].Keep
		cutoff := m.l.TileIndex(g, m.newest) - keep
		if idsStale || (m.hasLow[g] && m.lows[g] < cutoff-max(1, keep/4)) {
			return m.sweep()
		}
	}
	return ""
}

// sweep returns the sweep argument, "c0,c1,...[;t]": each group's cutoff,
// and with ids the time below which they go. It moves the lows and the
// oldest id to what the sweep leaves.
func (m *entityMerge) sweep() string {
	var b strings.Builder
	for g := range m.l.Groups {
		c := m.l.TileIndex(g, m.newest) - m.l.Groups[g].Keep
		if m.hasLow[g] {
			m.lows[g] = max(m.lows[g], c)
		}
		if g > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(c, 10))
	}
	if m.idIdx >= 0 {
		fmt.Fprintf(&b, ";%d", m.newest-m.window)
		m.oldestID = max(m.oldestID, m.newest-m.window)
	}
	return b.String()
}

// encode returns cas.lua's arguments: the version read, the TTL and the
// sweep, then the fields to set: the next version, the newest event time,
// the lowest tiles, each changed source's last offset, the ids applied and
// the oldest one, and the tiles changed, packed.
func (m *entityMerge) encode(ttl, sweep string) ([]any, error) {
	next := int64(1)
	if m.version != "" {
		v, err := strconv.ParseInt(m.version, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", fieldVersion, err)
		}
		next = v + 1
	}
	var lows []byte
	for g := range m.lows {
		if g > 0 {
			lows = append(lows, ',')
		}
		if m.hasLow[g] {
			lows = strconv.AppendInt(lows, m.lows[g], 10)
		}
	}
	args := make([]any, 0, 11+2*(len(m.offsets)+len(m.ids)+len(m.tiles)))
	args = append(args, m.version, ttl, sweep,
		fieldVersion, strconv.FormatInt(next, 10),
		fieldNewest, strconv.FormatInt(m.newest, 10),
		fieldLows, string(lows))
	for _, o := range m.offsets {
		args = append(args, offsetPrefix+o.source, strconv.FormatInt(o.last, 10))
	}
	for _, s := range m.ids {
		args = append(args, idPrefix+s.id, strconv.FormatInt(s.t, 10))
	}
	if m.hasOldestID {
		args = append(args, fieldOldestID, strconv.FormatInt(m.oldestID, 10))
	}
	var packed []byte
	for _, c := range m.tiles {
		packed = m.l.AppendPacked(packed[:0], c.group, c.accs)
		args = append(args, c.field, string(packed))
	}
	return args, nil
}
