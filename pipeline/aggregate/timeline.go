package aggregate

import (
	"fmt"

	"github.com/freshet-ml/freshet/pipeline/events"
)

// Timeline is one entity's tiles built from events in event-time order, as
// a backfill replays history: tiles are appended at the end and fall off the
// front once no lookup at or after the newest event can read them (each
// group keeps its largest window), so its memory is bounded by the windows,
// not by the history.
//
// A value read from it as of time t, after adding exactly the events at or
// before t, is exact: no later event can lie in t's own tile. Lookups as of
// times before the newest event are not supported.
type Timeline struct {
	l    *Layout
	st   State
	text []byte
}

// NewTimeline returns an empty timeline of the layout's view.
func (l *Layout) NewTimeline() *Timeline {
	return &Timeline{l: l, st: State{Groups: make([][]Tile, len(l.Groups))}}
}

// Add folds in an event no earlier than any added before.
func (tl *Timeline) Add(ev *events.Event) error {
	if tl.st.Found && ev.Time < tl.st.EventTime {
		return fmt.Errorf("timeline of %s: event at %d added after one at %d", tl.l.View.Name, ev.Time, tl.st.EventTime)
	}
	tl.st.Found, tl.st.EventTime = true, ev.Time
	for gi := range tl.l.Groups {
		g := &tl.l.Groups[gi]
		idx := FloorDiv(ev.Time, g.Hop)
		tiles := tl.st.Groups[gi]
		if n := len(tiles); n == 0 || tiles[n-1].Index != idx {
			// Drop the tiles past the retention before growing: the
			// slice is compacted in place, so it never grows beyond the
			// tiles one retention holds.
			cut := 0
			for cut < len(tiles) && tiles[cut].Index < idx-g.Reach {
				cut++
			}
			if cut > 0 {
				tiles = append(tiles[:0], tiles[cut:]...)
			}
			tiles = append(tiles, Tile{Group: gi, Index: idx, Accs: make([]Acc, len(g.Columns))})
			tl.st.Groups[gi] = tiles
		}
		g.fold(tiles[len(tiles)-1].Accs, ev, &tl.text)
	}
	return nil
}

// State is the timeline's tiles, for Layout.Value. It is the timeline's own
// and changes with the next Add.
func (tl *Timeline) State() *State { return &tl.st }
