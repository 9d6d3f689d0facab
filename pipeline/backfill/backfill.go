// Package backfill builds point-in-time training data: for each row of a
// spine (an entity, a time, and any other columns such as labels), every
// feature of the chosen views as of the row's time, computed from event files
// with the window arithmetic the online path uses. Only events at or before a
// row's time count, whatever their order in the files, so no label leaks into
// its own features.
//
// Both inputs are walked in time order: events through an external sort that
// spills sorted runs to disk, spine rows sorted in memory (a spine row is a
// few dozen bytes). Memory grows with entities × tiles, not with events.
// The package owns that walk; file formats are pipeline/arrowio's.
package backfill

import (
	"bufio"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/arrowio"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// Options says what to compute.
type Options struct {
	// Events are the event files, read in order (any replay format).
	Events []string
	// Spine is the file of rows to compute features for.
	Spine string
	// Out is the output file: .parquet, .arrow/.feather, .arrows or .csv.
	Out string
	// Views to compute; empty means every view. They must share a source.
	Views []string
	// EntityColumn names the spine's entity column; empty means each
	// view's entity field.
	EntityColumn string
	// AtColumn names the spine's time column; empty means the event's
	// timestamp field.
	AtColumn string
	// MaxErrors is how many invalid event rows are tolerated.
	MaxErrors int
	// Rejects, when set, receives every invalid event row.
	Rejects string
	// Stderr receives the first invalid rows and the summary.
	Stderr io.Writer
	// RunSize is how many events are sorted in memory before a run is
	// spilled to disk; 0 means DefaultRunSize.
	RunSize int
	// TempDir holds the spilled runs; empty means the system's.
	TempDir string
	// Times is which event times are plausible; a row outside is invalid,
	// as ingest refuses it (an event in microseconds would otherwise
	// count nowhere, silently). nil means the defaults.
	Times *events.TimeRule
}

// DefaultRunSize bounds the events held in memory while sorting.
const DefaultRunSize = 500_000

// shownRejects is how many invalid rows go to Stderr.
const shownRejects = 10

// Summary is what a backfill did.
type Summary struct {
	Events, Invalid, SpineRows int
	// Sorted says the events were out of time order in the files, so they
	// were sorted (through runs spilled to disk when large).
	Sorted  bool
	Elapsed time.Duration
	// Overflow counts, per view__feature column, the values that did not
	// fit their type (aggregate.Overflow): null in the output although
	// their window held events.
	Overflow map[string]int
	// Duplicates counts, per view, the events skipped because the entity
	// had an event with the same id within the dedupe window, as featurize
	// skips them online.
	Duplicates map[string]int
}

// TooManyInvalidError is returned when more event rows were invalid than
// Options.MaxErrors; the output is still written.
type TooManyInvalidError struct{ Invalid, MaxErrors int }

func (e *TooManyInvalidError) Error() string {
	return fmt.Sprintf("%d invalid event rows exceed --max-errors %d", e.Invalid, e.MaxErrors)
}

// view is one view being computed.
type view struct {
	l         *aggregate.Layout
	entityCol string
	entity    int // index of the entity field in the event
	timelines map[string]*aggregate.Timeline
	// rows of the spine in time order, for this view's entity column
	rows []spineRow
	// values[feature][spine row]
	values [][]events.Value
	// overflow[feature] counts the values that overflowed their type.
	overflow []int
	// ids are the ids applied, per entity, within the dedupe window of the
	// walk's time; nil when the event declares no id.
	ids *idSet
	// dups counts the events ids skipped.
	dups int
}

type spineRow struct {
	entity string
	at     int64
	row    int // position in the spine file
	valid  bool
}

// Run computes the training set and writes it to opt.Out.
func Run(ctx context.Context, reg *schemas.Registry, opt Options) (Summary, error) {
	start := time.Now()
	if opt.Stderr == nil {
		opt.Stderr = io.Discard
	}
	views, source, err := pick(reg, opt)
	if err != nil {
		return Summary{}, err
	}
	at := opt.AtColumn
	if at == "" {
		at = source.Timestamp
	}
	n, err := readSpines(views, opt, at)
	if err != nil {
		return Summary{}, err
	}

	// Event history is usually kept in time order: walk it as it is read,
	// and sort (spilling to disk) only if an event turns out of order.
	w := newWalker(views, n)
	var last int64
	sum, err := readEvents(ctx, source, opt, func(ev *events.Event) error {
		if w.added > 0 && ev.Time < last {
			return errUnsorted
		}
		last = ev.Time
		return w.event(ev)
	})
	if errors.Is(err, errUnsorted) {
		_ = w.finish() // what it computed is discarded
		w = newWalker(views, n)
		sum, err = sortedWalk(ctx, source, opt, w)
		sum.Sorted = true
	}
	if ferr := w.finish(); err == nil {
		err = ferr
	}
	if err != nil {
		return sum, err
	}
	if err := write(opt, at, views); err != nil {
		return sum, err
	}
	sum.SpineRows = n
	sum.Elapsed = time.Since(start)
	order := "in time order"
	if sum.Sorted {
		order = "sorted by time"
	}
	fmt.Fprintf(opt.Stderr, "backfilled %d spine rows × %d view(s) from %d events (%s) in %s, %d invalid event rows%s%s\n",
		n, len(views), sum.Events, order, sum.Elapsed.Round(time.Millisecond), sum.Invalid,
		duplicates(views, &sum), overflows(views, &sum))
	if sum.Invalid > opt.MaxErrors {
		return sum, &TooManyInvalidError{Invalid: sum.Invalid, MaxErrors: opt.MaxErrors}
	}
	return sum, nil
}

// duplicates records the events skipped as duplicates in sum and describes
// them for the summary line ("" when none were).
func duplicates(views []*view, sum *Summary) string {
	var parts []string
	for _, v := range views {
		if v.dups == 0 {
			continue
		}
		if sum.Duplicates == nil {
			sum.Duplicates = map[string]int{}
		}
		sum.Duplicates[v.l.View.Name] = v.dups
		parts = append(parts, fmt.Sprintf("%s %d", v.l.View.Name, v.dups))
	}
	if parts == nil {
		return ""
	}
	src := views[0].l.View.Source
	return fmt.Sprintf(", duplicate events skipped (same %s within %s, as featurize does): %s",
		src.ID, schemas.FormatDuration(src.DedupeWindow), strings.Join(parts, ", "))
}

// overflows records the values that overflowed their type in sum and
// describes them for the summary line ("" when none did).
func overflows(views []*view, sum *Summary) string {
	var cols []string
	total := 0
	for _, v := range views {
		for fi, n := range v.overflow {
			if n == 0 {
				continue
			}
			name := v.l.View.Name + "__" + v.l.View.Features[fi].Name
			if sum.Overflow == nil {
				sum.Overflow = map[string]int{}
			}
			sum.Overflow[name] = n
			cols = append(cols, fmt.Sprintf("%s %d", name, n))
			total += n
		}
	}
	if total == 0 {
		return ""
	}
	return fmt.Sprintf(", %d values overflowed their type and are null (%s)", total, strings.Join(cols, ", "))
}

// pick resolves the views to compute and their common source event.
func pick(reg *schemas.Registry, opt Options) ([]*view, *schemas.Event, error) {
	names := opt.Views
	if len(names) == 0 {
		names = reg.ViewNames()
	}
	var out []*view
	var source *schemas.Event
	for _, name := range names {
		v := reg.Views[name]
		if v == nil {
			return nil, nil, unknownView(reg, name)
		}
		if source != nil && v.Source != source {
			return nil, nil, fmt.Errorf("views %s and %s read different events (%s, %s): backfill them separately with --view", out[0].l.View.Name, name, source.Name, v.Source.Name)
		}
		source = v.Source
		l, err := aggregate.NewLayout(v)
		if err != nil {
			return nil, nil, err
		}
		col := v.Entity
		if opt.EntityColumn != "" {
			col = opt.EntityColumn
		}
		out = append(out, &view{l: l, entityCol: col, entity: l.EntityIndex(), timelines: map[string]*aggregate.Timeline{}, overflow: make([]int, len(v.Features))})
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no feature views to backfill")
	}
	return out, source, nil
}

// unknownView is the error of a --view that names no view: it lists them.
func unknownView(reg *schemas.Registry, name string) error {
	names := reg.ViewNames()
	msg := fmt.Sprintf("unknown view %q (views: %s)", name, strings.Join(names, ", "))
	if s := config.Suggest(name, names); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return errors.New(msg)
}

// readSpines reads the spine once per distinct entity column, keeping
// (entity, time, row) in time order for each view, and returns the number
// of rows. Every column is tried before failing, so that the error names
// every view the spine cannot serve.
func readSpines(views []*view, opt Options, at string) (int, error) {
	n := -1
	byCol := map[string][]spineRow{}
	failed := map[string]error{}
	for _, v := range views {
		col := v.entityCol
		if byCol[col] != nil || failed[col] != nil {
			continue
		}
		rows, err := readSpine(opt.Spine, col, at)
		if err != nil {
			failed[col] = err
			continue
		}
		if rows == nil {
			rows = []spineRow{} // read: an empty spine is no failure
		}
		byCol[col], n = rows, len(rows)
	}
	if len(failed) > 0 {
		return 0, unservedViews(views, failed, len(byCol) > 0, opt)
	}
	for _, v := range views {
		v.rows = byCol[v.entityCol]
		v.values = make([][]events.Value, len(v.l.View.Features))
	}
	return n, nil
}

// unservedViews is the error of a spine that cannot serve some views: it
// names each and why, and says how to choose. Failing beats computing the
// views that can be served and warning: a training set that silently lacks
// the columns of views nobody excluded is found out at training time, and
// the spine is read before any event, so the error comes at once.
func unservedViews(views []*view, failed map[string]error, someRead bool, opt Options) error {
	var missing, unfit, served []string
	columns := ""
	for _, v := range views {
		err := failed[v.entityCol]
		if err == nil {
			served = append(served, v.l.View.Name)
			continue
		}
		if opt.EntityColumn != "" {
			return fmt.Errorf("--entity-column %s: %w", opt.EntityColumn, err)
		}
		keyed := fmt.Sprintf("view %s (keyed by %s)", v.l.View.Name, v.l.View.Entity)
		if cols, ok := missingColumn(err, v.entityCol); ok {
			missing = append(missing, fmt.Sprintf("no column %s for %s", v.entityCol, keyed))
			columns = cols
			continue
		}
		if !someRead {
			// The file or its time column failed, not this view's column.
			return err
		}
		unfit = append(unfit, fmt.Sprintf("cannot serve %s: %s", keyed, strings.TrimPrefix(err.Error(), opt.Spine+": ")))
	}
	var how string
	switch {
	case len(served) > 0 && len(opt.Views) == 0:
		how = "choose the views to compute with --view " + strings.Join(served, " --view ") +
			", or name the spine's entity column with --entity-column"
	case len(opt.Views) > 0:
		how = "name the spine's entity column with --entity-column, or leave those views out of --view"
	default:
		how = "name the spine's entity column with --entity-column"
	}
	if columns != "" {
		how += " (spine columns: " + columns + ")"
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "has "+strings.Join(missing, ", "))
	}
	problems = append(problems, unfit...)
	return fmt.Errorf("spine %s %s; %s", opt.Spine, strings.Join(problems, " and "), how)
}

// missingColumn reports whether err is pipeline/arrowio's error for a spine
// without column col, and returns the columns it lists.
// TestSpineLacksViewKeys pins the wording this relies on.
func missingColumn(err error, col string) (columns string, ok bool) {
	msg := err.Error()
	i := strings.LastIndex(msg, ": no column "+col+" (columns: ")
	if i < 0 || !strings.HasSuffix(msg, ")") {
		return "", false
	}
	return msg[i+len(": no column "+col+" (columns: ") : len(msg)-1], true
}

func readSpine(path, entityCol, atCol string) ([]spineRow, error) {
	r, err := arrowio.OpenSpine(path, entityCol, atCol)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var rows []spineRow
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for i := range b.Times {
			rows = append(rows, spineRow{entity: b.Entities[i], at: b.Times[i], row: len(rows), valid: b.Valid[i]})
		}
	}
	// Stable: rows at the same time keep their file order.
	slices.SortStableFunc(rows, func(a, b spineRow) int { return cmp.Compare(a.at, b.at) })
	return rows, nil
}

var errUnsorted = errors.New("events out of time order")

// walker feeds events in time order into each view's timelines and reads
// every spine row's features once the events at or before its time are in.
// Each view has its own spine order (views may read different entity
// columns) and its own goroutine: events go to all of them in batches.
type walker struct {
	views []*view
	batch []events.Event
	chans []chan []events.Event
	wg    sync.WaitGroup
	errs  []error
	added int
}

// walkBatch is how many events travel to the views' goroutines at once.
const walkBatch = 4096

func newWalker(views []*view, rows int) *walker {
	w := &walker{views: views, errs: make([]error, len(views))}
	for vi, v := range views {
		// A walk starts afresh: a second one (after sorting) must not
		// inherit the first one's state or counts.
		v.timelines = map[string]*aggregate.Timeline{}
		v.ids = newIDSet(v.l.View.Source)
		v.dups = 0
		clear(v.overflow)
		for i := range v.values {
			v.values[i] = make([]events.Value, rows)
		}
		ch := make(chan []events.Event, 4)
		w.chans = append(w.chans, ch)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			cursor := 0
			for b := range ch {
				if w.errs[vi] != nil {
					continue // drain
				}
				for i := range b {
					v.emit(&cursor, b[i].Time, false)
					if err := v.add(&b[i]); err != nil {
						w.errs[vi] = err
						break
					}
				}
			}
			if w.errs[vi] == nil {
				v.emit(&cursor, 0, true)
			}
		}()
	}
	return w
}

// event adds the next event (copied: the caller may reuse it).
func (w *walker) event(ev *events.Event) error {
	w.batch = append(w.batch, *ev)
	w.added++
	if len(w.batch) == walkBatch {
		w.dispatch()
	}
	return nil
}

func (w *walker) dispatch() {
	if len(w.batch) == 0 {
		return
	}
	for _, ch := range w.chans {
		ch <- w.batch
	}
	w.batch = make([]events.Event, 0, walkBatch)
}

// finish sends the last events, reads the spine rows after them, and waits.
func (w *walker) finish() error {
	w.dispatch()
	for _, ch := range w.chans {
		close(ch)
	}
	w.wg.Wait()
	return errors.Join(w.errs...)
}

// add folds an event into its entity's timeline, unless its id was applied
// to the entity within the dedupe window.
func (v *view) add(ev *events.Event) error {
	ent := ev.Values[v.entity]
	if !ent.Present() {
		return nil
	}
	key := ent.Text()
	if v.ids != nil && v.ids.seen(key, ev) {
		v.dups++
		return nil
	}
	tl := v.timelines[key]
	if tl == nil {
		tl = v.l.NewTimeline()
		v.timelines[key] = tl
	}
	return tl.Add(ev)
}

// emit computes the spine rows from *cursor on that lie strictly before t
// (every remaining row with all).
func (v *view) emit(cursor *int, t int64, all bool) {
	for *cursor < len(v.rows) && (all || v.rows[*cursor].at < t) {
		r := v.rows[*cursor]
		*cursor++
		if !r.valid {
			continue // nulls in the output
		}
		var st *aggregate.State
		if tl := v.timelines[r.entity]; tl != nil {
			st = tl.State()
		}
		for fi := range v.l.View.Features {
			var status aggregate.Status
			v.values[fi][r.row], status = v.l.Value(st, fi, r.at)
			if status == aggregate.Overflow {
				v.overflow[fi]++
			}
		}
	}
}

// write copies the spine to opt.Out with the feature columns appended.
func write(opt Options, at string, views []*view) error {
	var cols []arrowio.Column
	for _, v := range views {
		for _, f := range v.l.View.Features {
			cols = append(cols, arrowio.Column{Name: v.l.View.Name + "__" + f.Name, Type: f.ValueType()})
		}
	}
	sr, err := arrowio.OpenSpine(opt.Spine, views[0].entityCol, at)
	if err != nil {
		return err
	}
	defer sr.Close()
	w, err := arrowio.CreateOutput(opt.Out, sr, cols)
	if err != nil {
		return err
	}
	row := 0
	vals := make([][]events.Value, len(cols))
	for {
		b, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = w.Close()
			return err
		}
		c := 0
		for _, v := range views {
			for fi := range v.l.View.Features {
				vals[c] = v.values[fi][row : row+len(b.Times)]
				c++
			}
		}
		if err := w.Write(b, vals); err != nil {
			_ = w.Close()
			return err
		}
		row += len(b.Times)
	}
	return w.Close()
}

// sortedEvents yields the valid events of the files in event-time order
// (file order among equal times), merging runs sorted in memory and, when
// the events do not fit in one run, spilled to disk.
type sortedEvents struct {
	mem   []events.Event // the single in-memory run, when nothing spilled
	pos   int
	runs  runHeap
	files []*os.File
}

// readEvents reads every valid event of the files in file order and hands
// it to visit; invalid rows are counted and reported. It stops at visit's
// first error.
func readEvents(ctx context.Context, t *schemas.Event, opt Options, visit func(*events.Event) error) (Summary, error) {
	var sum Summary
	var rejects *bufio.Writer
	if opt.Rejects != "" {
		f, err := os.Create(opt.Rejects)
		if err != nil {
			return sum, fmt.Errorf("create rejects file: %w", err)
		}
		defer f.Close()
		rejects = bufio.NewWriter(f)
		defer rejects.Flush()
	}
	rule := events.DefaultTimeRule()
	if opt.Times != nil {
		rule = *opt.Times
	}
	now := time.Now().UnixMilli()
	for _, path := range opt.Events {
		r, err := arrowio.OpenEvents(path, t)
		if err != nil {
			return sum, err
		}
		for {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				if fe := rule.Check(t.Timestamp, ev.Time, true, now); fe != nil {
					err = &arrowio.RowError{File: path, Row: r.Rows(), Field: fe.Field, Reason: fe.Reason}
				}
			}
			var rowErr *arrowio.RowError
			if errors.As(err, &rowErr) {
				sum.Invalid++
				if sum.Invalid <= shownRejects {
					fmt.Fprintf(opt.Stderr, "invalid row: %v\n", rowErr)
				}
				if rejects != nil {
					fmt.Fprintln(rejects, rowErr)
				}
				continue
			}
			if err == nil {
				sum.Events++
				err = visit(&ev)
				if err == nil && sum.Events%65536 == 0 {
					err = ctx.Err()
				}
			}
			if err != nil {
				_ = r.Close()
				return sum, err
			}
		}
		if err := r.Close(); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// sortedWalk sorts the events through runs spilled to disk and walks them.
func sortedWalk(ctx context.Context, t *schemas.Event, opt Options, w *walker) (Summary, error) {
	runSize := opt.RunSize
	if runSize <= 0 {
		runSize = DefaultRunSize
	}
	out := &sortedEvents{}
	defer out.Close()
	run := make([]events.Event, 0, min(runSize, 1<<16))
	spill := func() error {
		slices.SortStableFunc(run, func(a, b events.Event) int { return cmp.Compare(a.Time, b.Time) })
		f, err := os.CreateTemp(opt.TempDir, "freshet-backfill-run-*.ndjson")
		if err != nil {
			return fmt.Errorf("spill sorted events: %w", err)
		}
		_ = os.Remove(f.Name()) // unlinked: the space is freed when closed
		out.files = append(out.files, f)
		bw := bufio.NewWriterSize(f, 1<<20)
		var line []byte
		for i := range run {
			line = run[i].AppendJSON(line[:0])
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return fmt.Errorf("spill sorted events: %w", err)
			}
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("spill sorted events: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		run = run[:0]
		return nil
	}
	sum, err := readEvents(ctx, t, opt, func(ev *events.Event) error {
		run = append(run, *ev)
		if len(run) >= runSize {
			return spill()
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	if len(out.files) == 0 {
		slices.SortStableFunc(run, func(a, b events.Event) int { return cmp.Compare(a.Time, b.Time) })
		out.mem = run
	} else {
		if len(run) > 0 {
			if err := spill(); err != nil {
				return sum, err
			}
		}
		for i, f := range out.files {
			rr := &runReader{r: bufio.NewReaderSize(f, 1<<20), t: t, order: i}
			if err := rr.advance(); err != nil {
				if errors.Is(err, io.EOF) {
					continue
				}
				return sum, err
			}
			heap.Push(&out.runs, rr)
		}
	}
	for {
		ev, err := out.Next()
		if errors.Is(err, io.EOF) {
			return sum, nil
		}
		if err != nil {
			return sum, err
		}
		if err := w.event(&ev); err != nil {
			return sum, err
		}
	}
}

// Next returns the next event in time order, or io.EOF.
func (s *sortedEvents) Next() (events.Event, error) {
	if s.files == nil {
		if s.pos >= len(s.mem) {
			return events.Event{}, io.EOF
		}
		s.pos++
		return s.mem[s.pos-1], nil
	}
	if s.runs.Len() == 0 {
		return events.Event{}, io.EOF
	}
	rr := s.runs[0]
	ev := rr.head
	if err := rr.advance(); err != nil {
		if !errors.Is(err, io.EOF) {
			return events.Event{}, err
		}
		heap.Pop(&s.runs)
	} else {
		heap.Fix(&s.runs, 0)
	}
	return ev, nil
}

// Close releases the spilled runs.
func (s *sortedEvents) Close() {
	for _, f := range s.files {
		_ = f.Close()
	}
	s.files = nil
}

// runReader reads one spilled run back.
type runReader struct {
	r     *bufio.Reader
	t     *schemas.Event
	head  events.Event
	order int // runs hold earlier file positions first: ties go by run
}

func (rr *runReader) advance() error {
	line, err := rr.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return io.EOF
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("read spilled events: %w", err)
		}
	}
	ev, derr := events.Decode(rr.t, line)
	if derr != nil {
		return fmt.Errorf("read spilled events: %w", derr)
	}
	rr.head = ev
	return nil
}

type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if h[i].head.Time != h[j].head.Time {
		return h[i].head.Time < h[j].head.Time
	}
	return h[i].order < h[j].order
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// idSet is the ids a walk applied per entity, within the dedupe window of
// its time: featurize's rule (an event whose id the entity applied at an
// event time within the window is skipped) for events that arrive in time
// order. Its memory is bounded by the window, not by the history: ids
// older than the window are dropped as the walk moves on.
type idSet struct {
	field  int
	window int64
	// applied is the newest event time each entity applied each id at.
	applied map[entityID]int64
	pruneAt int // prune when applied grows to this many
}

type entityID struct{ entity, id string }

// newIDSet returns the id set of the event type, nil when it declares no id.
func newIDSet(src *schemas.Event) *idSet {
	if src.ID == "" {
		return nil
	}
	f, _ := src.Field(src.ID)
	return &idSet{field: f.Index, window: src.DedupeWindow, applied: map[entityID]int64{}, pruneAt: 1 << 16}
}

// seen reports whether the entity applied ev's id within the window before
// ev, and records it as applied when not. Events come in time order.
func (s *idSet) seen(entity string, ev *events.Event) bool {
	id := ev.Values[s.field]
	if !id.Present() {
		return false
	}
	key := entityID{entity, id.Text()}
	if t, ok := s.applied[key]; ok && ev.Time-t <= s.window {
		return true
	}
	s.applied[key] = ev.Time
	if len(s.applied) >= s.pruneAt {
		for k, t := range s.applied {
			if ev.Time-t > s.window {
				delete(s.applied, k)
			}
		}
		s.pruneAt = max(1<<16, 2*len(s.applied))
	}
	return false
}
