package ingest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/pipeline/arrowio"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// DefaultBatch is the default number of events per publish of a replay.
const DefaultBatch = 1000

// shownRejects is how many invalid rows a replay reports on Stderr; the
// rejects file gets all of them.
const shownRejects = 10

// ReplayOptions says what to replay and how.
type ReplayOptions struct {
	// Event is the event type of every row.
	Event string
	// Speed > 0 paces the replay by event time at Speed times real time;
	// 0 publishes as fast as possible.
	Speed float64
	// MaxErrors is how many invalid rows are tolerated: beyond it Replay
	// fails before publishing anything (it reads every file once first to
	// count them).
	MaxErrors int
	// Rejects, when set, is a file that receives every invalid row, one
	// line each: "file:line: reason<TAB>raw row".
	Rejects string
	// Files are read in order, in any format pipeline/arrowio reads:
	// Parquet, Arrow IPC file or stream, CSV, NDJSON (CSV and NDJSON
	// optionally .gz or .zst).
	Files []string
	// RebaseTime shifts every event time by the same amount so that the
	// latest event is now (a live demo from history). It reads the files
	// twice.
	RebaseTime bool
	// Limit stops the replay after this many valid events; 0 means all.
	Limit int
	// Now is the clock RebaseTime uses; nil means time.Now.
	Now func() time.Time
	// Stderr receives the first invalid rows and the closing summary; nil
	// discards them.
	Stderr io.Writer
	// Batch is the number of events per publish; 0 means DefaultBatch.
	Batch int
	// Times is which event times are plausible (the ingest service's
	// setting); an implausible row is invalid. nil means the defaults.
	Times *events.TimeRule
	// StrictLateness refuses, before publishing anything, a replay with
	// rows featurize would drop as late (see Lateness); without it they
	// are published after a warning.
	StrictLateness bool
}

// ReplayFlags registers the replay flags event, speed, max-errors,
// rejects, rebase-time and limit on fs and returns the options they fill, with Stderr set to
// os.Stderr and the default Batch. The caller sets Files from fs.Args().
func ReplayFlags(fs *flag.FlagSet) *ReplayOptions {
	o := &ReplayOptions{Stderr: os.Stderr, Batch: DefaultBatch}
	fs.StringVar(&o.Event, "event", "", "event type of the rows (required)")
	fs.Float64Var(&o.Speed, "speed", 0, "replay at this multiple of real time, by event time; 0 = as fast as possible")
	fs.IntVar(&o.MaxErrors, "max-errors", 0, "invalid rows tolerated before the replay fails (invalid rows are skipped either way)")
	fs.StringVar(&o.Rejects, "rejects", "", "file receiving every invalid row as file:line: reason<TAB>row")
	fs.BoolVar(&o.RebaseTime, "rebase-time", false, "shift every event time so that the latest event is now")
	fs.IntVar(&o.Limit, "limit", 0, "stop after this many valid events (0: all)")
	fs.BoolVar(&o.StrictLateness, "strict-lateness", false, "publish nothing when rows would be dropped as late by featurize (older than their partition's newest event time minus a view's max_lateness)")
	return o
}

// ReplaySummary is what a replay did.
type ReplaySummary struct {
	// Published is the number of events Kafka acknowledged.
	Published int
	// Invalid is the number of rows skipped as invalid.
	Invalid int
	// Elapsed is the duration of the replay.
	Elapsed time.Duration
	// Late is the estimate, made before publishing, of the rows featurize
	// will drop as late; nil when there are none (or it could not be
	// made, which the replay warns about).
	Late *Lateness
}

// TooManyInvalidError is the error of a replay that met more invalid rows
// than MaxErrors.
type TooManyInvalidError struct {
	Invalid, MaxErrors int
}

func (e *TooManyInvalidError) Error() string {
	return fmt.Sprintf("%d invalid rows exceed --max-errors %d: nothing was published "+
		"(fix or remove the rows, or raise --max-errors, and replay again)", e.Invalid, e.MaxErrors)
}

// Replay publishes the events of opt.Files, in file order, as opt.Event
// events. Rows are decoded as the HTTP API decodes events; invalid rows are
// skipped and reported with file, line and reason. Valid events are
// published opt.Batch at a time, one batch after the other, so that the
// events of one key keep their file order on their partition; the next
// batch is decoded while the current one is published.
//
// Before anything is published, every file is read once, as the replay
// will read it: a file that cannot be read to its end (corrupt, truncated,
// a row over arrowio.MaxRowBytes in CSV, a decompression bomb) fails the
// replay, and so do more than opt.MaxErrors invalid rows (a
// *TooManyInvalidError), with nothing published; a re-run after fixing the
// files then counts no event twice. Invalid rows are reported during that
// first pass. Replay returns once every published event was acknowledged,
// or the first publish failed; the summary counts acknowledged events only.
// It writes a closing summary line to opt.Stderr.
func Replay(ctx context.Context, reg *schemas.Registry, pub *Publisher, opt ReplayOptions) (ReplaySummary, error) {
	start := time.Now()
	typ, err := opt.check(reg)
	if err != nil {
		return ReplaySummary{}, fmt.Errorf("replay: %w", err)
	}
	rd, err := newRowReader(ctx, typ, pub, &opt)
	if err != nil {
		return ReplaySummary{}, fmt.Errorf("replay: %w", err)
	}
	if err := rd.openRejects(opt.Rejects); err != nil {
		return ReplaySummary{}, fmt.Errorf("replay: %w", err)
	}
	views := reg.ViewsOf(typ.Name)
	lates := rd.lateEstimate(ctx, views)
	verr := rd.validate(ctx, lates)
	var late *Lateness
	if verr == nil {
		if late, err = rd.judgeLateness(lates, opt.StrictLateness); err != nil {
			return ReplaySummary{Late: late, Invalid: rd.invalid}, errors.Join(err, rd.closeRejects())
		}
	}

	s := sender{pub: pub, progress: rd.progress}
	if opt.Speed > 0 {
		s.pace = &pacer{speed: opt.Speed}
	}
	var errs []error
	if verr != nil {
		errs = append(errs, verr, rd.closeRejects())
	} else if rd.invalid > opt.MaxErrors {
		errs = append(errs, rd.closeRejects(), &TooManyInvalidError{Invalid: rd.invalid, MaxErrors: opt.MaxErrors})
	} else {
		errs = append(errs, publishAll(ctx, rd, &s), rd.closeRejects())
		if rd.invalid > opt.MaxErrors { // rows judged by the clock may have changed since
			errs = append(errs, &TooManyInvalidError{Invalid: rd.invalid, MaxErrors: opt.MaxErrors})
		}
	}
	rd.progress.done()
	sum := ReplaySummary{Published: s.published, Invalid: rd.invalid, Elapsed: time.Since(start), Late: late}
	fmt.Fprintf(rd.stderr, "replayed %d events from %d file(s) in %.3fs (%.0f events/s), %d invalid rows%s\n",
		sum.Published, len(opt.Files), sum.Elapsed.Seconds(), float64(sum.Published)/sum.Elapsed.Seconds(), sum.Invalid, late.summary())
	return sum, errors.Join(errs...)
}

// newRowReader returns the reader of opt's files as typ events, ready to
// run: with opt.RebaseTime, after a first pass over the files for the
// latest event time.
func newRowReader(ctx context.Context, typ *schemas.Event, pub *Publisher, opt *ReplayOptions) (*rowReader, error) {
	stderr := opt.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	rd := &rowReader{
		typ:        typ,
		cfg:        &pub.cfg,
		files:      opt.Files,
		batch:      opt.Batch,
		limit:      opt.Limit,
		maxMessage: pub.maxMessage(),
		stderr:     stderr,
		progress:   newProgress(stderr, opt.Files),
		times:      events.DefaultTimeRule(),
	}
	if rd.batch <= 0 {
		rd.batch = DefaultBatch
	}
	if opt.Times != nil {
		rd.times = *opt.Times
	}
	if opt.RebaseTime {
		now := time.Now
		if opt.Now != nil {
			now = opt.Now
		}
		latest, found, err := latestTime(ctx, typ, opt.Files, opt.Limit)
		if err != nil {
			return nil, fmt.Errorf("find the latest event time: %w", err)
		}
		if found {
			rd.shift = now().UnixMilli() - latest
		}
	}
	return rd, nil
}

// lateEstimate starts the estimate of which rows featurize will drop as
// late for views, fed by validate's pass: nil without views, or when the
// topic's watermarks cannot be read (said on stderr).
func (r *rowReader) lateEstimate(ctx context.Context, views []*schemas.View) *lateEstimate {
	if len(views) == 0 {
		return nil
	}
	e, err := newLateEstimate(ctx, *r.cfg, r.typ, views, r.times)
	if err != nil {
		fmt.Fprintf(r.stderr, "warning: cannot tell which rows featurize will drop as late: %v\n", err)
		return nil
	}
	return e
}

// judgeLateness warns on stderr, before anything is published, when the
// estimate finds rows featurize will drop as late. With strict, any are an
// error, a *LateError. The estimate is nil when there are none or no
// estimate.
func (r *rowReader) judgeLateness(lates *lateEstimate, strict bool) (*Lateness, error) {
	if lates == nil {
		return nil, nil
	}
	est := lates.result()
	if est.Rows == 0 {
		return nil, nil
	}
	fmt.Fprintf(r.stderr, "warning: %s\n", est.warning(strict))
	if strict {
		return est, &LateError{Lateness: est}
	}
	return est, nil
}

// publishAll has r read the files in a goroutine of its own while s
// publishes the batches, one after the other, until the files end or a
// publish fails, which stops the reading. The error is the publish's, else
// the reading's.
func publishAll(ctx context.Context, r *rowReader, s *sender) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan batch, 2)
	readDone := make(chan struct{})
	var readErr error
	go func() {
		defer close(readDone)
		defer close(batches)
		readErr = r.run(ctx, batches)
	}()

	var pubErr error
	for b := range batches {
		if pubErr != nil {
			continue // drain until the reader sees the cancellation
		}
		if err := s.send(ctx, b); err != nil {
			pubErr = fmt.Errorf("replay batch starting at %s: %w", b.from, err)
			cancel()
		}
	}
	<-readDone
	if pubErr != nil {
		return pubErr
	}
	return readErr
}

// check validates the options and returns the event type.
func (o *ReplayOptions) check(reg *schemas.Registry) (*schemas.Event, error) {
	if o.Event == "" {
		return nil, errors.New("--event: name the event type of the rows")
	}
	typ := reg.Events[o.Event]
	if typ == nil {
		return nil, fmt.Errorf("--event: unknown event type %q; event types: %s", o.Event, strings.Join(reg.EventNames(), ", "))
	}
	if math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) || o.Speed < 0 {
		return nil, fmt.Errorf("--speed: %v, must be 0 (as fast as possible) or a positive multiple of real time", o.Speed)
	}
	if o.MaxErrors < 0 {
		return nil, fmt.Errorf("--max-errors: %d, must be at least 0", o.MaxErrors)
	}
	if len(o.Files) == 0 {
		return nil, errors.New("no files to replay")
	}
	// Fail on any bad file before publishing anything.
	if o.Limit < 0 {
		return nil, fmt.Errorf("--limit: %d, must be at least 0", o.Limit)
	}
	for _, path := range o.Files {
		if err := arrowio.Supported(path); err != nil {
			return nil, err
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			return nil, fmt.Errorf("%s: is a directory", path)
		}
	}
	// Opening checks a file's columns against the schema (and that it is
	// what its extension says): every file, before publishing anything.
	for _, path := range o.Files {
		src, err := arrowio.OpenEvents(path, typ)
		if err != nil {
			return nil, err
		}
		if err := src.Close(); err != nil {
			return nil, err
		}
	}
	return typ, nil
}

// batch is a run of encoded events, ready to publish.
type batch struct {
	msgs []kafka.Message
	// from is "file:line" of the first event, for error messages.
	from string
}

// rowReader reads the files, decodes their rows and sends batches of
// encoded events, reporting invalid rows.
type rowReader struct {
	typ        *schemas.Event
	cfg        *broker.Config
	files      []string
	batch      int
	limit      int   // 0: no limit
	shift      int64 // ms added to every event time (--rebase-time)
	maxMessage int64
	progress   *progress
	valid      int

	times       events.TimeRule
	stderr      io.Writer
	rejectsFile *os.File      // nil without a rejects file
	rejects     *bufio.Writer // on rejectsFile
	rejectsName string
	invalid     int
	// reported is how many invalid rows were reported, by validate's pass:
	// the publishing pass reports only rows beyond them.
	reported int
	// visit, when set (validate's pass), sees every row run would publish.
	visit func(*events.Event)
}

// validate reads every file as run does, reporting invalid rows but
// publishing nothing, and leaves r ready for run with the count of invalid
// rows in r.invalid. Every row that run would publish goes to lates too
// (when not nil), so one pass serves both. The error is the first fatal
// error of reading.
func (r *rowReader) validate(ctx context.Context, lates *lateEstimate) error {
	prog := r.progress
	r.progress = newProgress(r.stderr, r.files)
	if lates != nil {
		r.visit = lates.add
	}
	err := r.run(ctx, nil)
	r.visit = nil
	r.progress.done()
	r.progress = prog
	r.reported, r.valid = r.invalid, 0
	if err != nil {
		return fmt.Errorf("replay: nothing was published: %w", err)
	}
	return nil
}

// openRejects creates the rejects file at path, if any.
func (r *rowReader) openRejects(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r.rejectsFile, r.rejects, r.rejectsName = f, bufio.NewWriterSize(f, 64<<10), path
	return nil
}

// closeRejects writes out and closes the rejects file, if any.
func (r *rowReader) closeRejects() error {
	if r.rejectsFile == nil {
		return nil
	}
	var errs []error
	if err := r.rejects.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("write %s: %w", r.rejectsName, err))
	}
	if err := r.rejectsFile.Close(); err != nil {
		errs = append(errs, fmt.Errorf("write %s: %w", r.rejectsName, err))
	}
	return errors.Join(errs...)
}

// run reads every file in order and sends its events to out. It never
// closes out. With out nil it only judges the rows, counting and reporting
// the invalid ones.
func (r *rowReader) run(ctx context.Context, out chan<- batch) error {
	var enc encoder
	r.invalid = 0
	b := batch{msgs: make([]kafka.Message, 0, r.batch)}
	flush := func() error {
		if out == nil { // nothing kept: reuse the memory
			b.msgs, enc.buf = b.msgs[:0], enc.buf[:0]
			return nil
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		// Handed over: the next batch gets new memory.
		b = batch{msgs: make([]kafka.Message, 0, r.batch)}
		enc.reset()
		return nil
	}
	for _, path := range r.files {
		src, err := arrowio.OpenEvents(path, r.typ)
		if err != nil {
			return err
		}
		r.progress.file(src)
		for rows := 0; ; rows++ {
			if rows%4096 == 0 {
				if ctx.Err() != nil {
					_ = src.Close()
					return ctx.Err()
				}
				r.progress.tick()
			}
			ev, err := src.Next()
			if err == io.EOF {
				break
			}
			var bad *arrowio.RowError
			if errors.As(err, &bad) {
				r.reject(bad)
				continue
			}
			if err != nil {
				_ = src.Close()
				return fmt.Errorf("read %s: %w", path, err)
			}
			if r.shift != 0 {
				ev = ev.At(ev.Time + r.shift)
			}
			// Judged as the HTTP API judges it, after any rebase. The
			// column type is not known here, so the value is shown as
			// epoch ms: what an integer column holds.
			if fe := r.times.Check(r.typ.Timestamp, ev.Time, true, time.Now().UnixMilli()); fe != nil {
				r.reject(&arrowio.RowError{File: path, Row: src.Rows(), Field: fe.Field, Reason: fe.Reason, Raw: ev.AppendJSON(nil)})
				continue
			}
			m := enc.message(r.cfg, &ev)
			if reason := tooLarge(r.typ, len(m.Key), len(m.Value), r.maxMessage); reason != "" {
				r.reject(&arrowio.RowError{File: path, Row: src.Rows(), Reason: reason})
				continue
			}
			if r.visit != nil {
				r.visit(&ev)
			}
			if len(b.msgs) == 0 {
				b.from = fmt.Sprintf("%s:%d", path, src.Rows())
			}
			b.msgs = append(b.msgs, m)
			r.valid++
			done := r.limit > 0 && r.valid >= r.limit
			if len(b.msgs) == r.batch || (done && len(b.msgs) > 0) {
				if err := flush(); err != nil {
					_ = src.Close()
					return err
				}
			}
			if done {
				return src.Close()
			}
		}
		r.progress.fileDone()
		if err := src.Close(); err != nil {
			return fmt.Errorf("close %s: %w", path, err)
		}
	}
	if len(b.msgs) > 0 {
		return flush()
	}
	return nil
}

// messageOverhead bounds what a record adds to its key and value.
const messageOverhead = 64

// tooLarge says why an event of typ whose message has a key and a value of
// these sizes exceeds the message limit, or "" when it does not. The key
// field's value is in both the key and the value, so a long one counts
// twice: the reason says so.
func tooLarge(typ *schemas.Event, key, value int, limit int64) string {
	size := int64(key + value + messageOverhead)
	if size <= limit {
		return ""
	}
	reason := fmt.Sprintf("event of about %d bytes exceeds the %d-byte message limit", size, limit)
	if int64(2*key) > limit/4 {
		reason += fmt.Sprintf(" (its %s of %d bytes counts twice: it is the message key and in the value)", typ.Key, key)
	}
	return reason
}

// reject reports an invalid row: on stderr for the first few, in the
// rejects file for all (with the row's text, where the format has one).
func (r *rowReader) reject(bad *arrowio.RowError) {
	r.invalid++
	if r.invalid <= r.reported {
		return // reported by validate
	}
	r.progress.clear()
	switch {
	case r.invalid <= shownRejects:
		fmt.Fprintln(r.stderr, bad.Error())
	case r.invalid == shownRejects+1 && r.rejects != nil:
		fmt.Fprintf(r.stderr, "further invalid rows are only written to %s\n", r.rejectsName)
	case r.invalid == shownRejects+1:
		fmt.Fprintf(r.stderr, "further invalid rows are not shown (see --rejects)\n")
	}
	if r.rejects != nil {
		_, _ = r.rejects.WriteString(bad.Error())
		_ = r.rejects.WriteByte('\t')
		_, _ = r.rejects.Write(bad.Raw)
		_ = r.rejects.WriteByte('\n')
	}
}

// sender publishes batches one after the other, pacing them if asked.
type sender struct {
	pub       *Publisher
	pace      *pacer // nil: as fast as possible
	published int
	progress  *progress
}

func (s *sender) send(ctx context.Context, b batch) error {
	if err := ctx.Err(); err != nil {
		return err // do not start what cannot be awaited
	}
	if s.pace == nil {
		if err := s.pub.publish(ctx, b.msgs); err != nil {
			return err
		}
		s.published += len(b.msgs)
		s.progress.published(len(b.msgs))
		return nil
	}
	msgs := b.msgs
	offs := s.pace.offsets(msgs)
	for len(msgs) > 0 {
		n, wait := ready(offs, s.pace.elapsed())
		if n == 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		if err := s.pub.publish(ctx, msgs[:n]); err != nil {
			return err
		}
		s.published += n
		s.progress.published(n)
		msgs, offs = msgs[n:], offs[n:]
	}
	return nil
}

// pacer paces a replay by event time: the first event goes at once, and an
// event whose time is d after the first event's goes no earlier than
// d/speed after it.
type pacer struct {
	speed   float64
	started bool
	first   int64     // event time of the first event, epoch ms
	start   time.Time // when the first event went
}

// offsets returns the earliest send offsets of msgs, starting the clock at
// the first event of the replay.
func (p *pacer) offsets(msgs []kafka.Message) []time.Duration {
	if len(msgs) == 0 {
		return nil
	}
	if !p.started {
		p.started, p.first, p.start = true, msgs[0].Time.UnixMilli(), time.Now()
	}
	offs := make([]time.Duration, len(msgs))
	for i := range msgs {
		offs[i] = sendOffset(p.first, msgs[i].Time.UnixMilli(), p.speed)
	}
	return offs
}

func (p *pacer) elapsed() time.Duration { return time.Since(p.start) }

// sendOffsets returns, for events with the given times (epoch ms) replayed
// at speed times real time, how long after the start of the replay each may
// be sent at the earliest: (t - times[0]) / speed, and 0 for events older
// than the first.
func sendOffsets(times []int64, speed float64) []time.Duration {
	offs := make([]time.Duration, len(times))
	for i, t := range times {
		offs[i] = sendOffset(times[0], t, speed)
	}
	return offs
}

// sendOffset is (t - first) / speed, with t and first in epoch ms; 0 when t
// is not after first.
func sendOffset(first, t int64, speed float64) time.Duration {
	if t <= first {
		return 0
	}
	d := float64(t-first) * float64(time.Millisecond) / speed
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// ready returns how many of the events with the given send offsets may go
// elapsed after the start: the longest prefix whose offsets have passed
// (events keep their order, so an event out of order in time goes with its
// neighbours, without waiting). When that is none, wait is how long until
// the first may go.
func ready(offs []time.Duration, elapsed time.Duration) (n int, wait time.Duration) {
	for n < len(offs) && offs[n] <= elapsed {
		n++
	}
	if n == 0 && len(offs) > 0 {
		wait = offs[0] - elapsed
	}
	return n, wait
}

// latestTime returns the greatest event time among the valid events the
// replay will publish (the first limit of them, when limit > 0).
func latestTime(ctx context.Context, typ *schemas.Event, files []string, limit int) (int64, bool, error) {
	var latest int64
	found := false
	err := eachEvent(ctx, typ, files, limit, func(ev *events.Event) {
		if !found || ev.Time > latest {
			latest, found = ev.Time, true
		}
	})
	if err != nil {
		return 0, false, err
	}
	return latest, found, nil
}

// eachEvent calls visit with every valid event of the files, in order, the
// first limit of them when limit > 0: a pass over what a replay publishes,
// before it does. Invalid rows are skipped; the replay reports them.
func eachEvent(ctx context.Context, typ *schemas.Event, files []string, limit int, visit func(*events.Event)) error {
	n := 0
	for _, path := range files {
		src, err := arrowio.OpenEvents(path, typ)
		if err != nil {
			return err
		}
		for {
			ev, err := src.Next()
			if err == io.EOF {
				break
			}
			var bad *arrowio.RowError
			if errors.As(err, &bad) {
				continue
			}
			if err != nil {
				_ = src.Close()
				return err
			}
			visit(&ev)
			if n++; limit > 0 && n >= limit {
				return src.Close()
			}
			if n%4096 == 0 && ctx.Err() != nil {
				_ = src.Close()
				return ctx.Err()
			}
		}
		if err := src.Close(); err != nil {
			return err
		}
	}
	return nil
}
