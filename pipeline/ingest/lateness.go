package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// tailMessages is how many of a partition's newest messages the lateness
// estimate reads for the partition's watermark.
const tailMessages = 1000

// Lateness is a replay's estimate, made before it publishes anything, of
// the rows featurize will drop as late: featurize judges lateness per
// partition against the newest event time it has seen there, so a row
// older than that minus a view's max_lateness is applied to no state of
// that view.
type Lateness struct {
	// Rows is how many rows are late for at least one view; Checked is how
	// many rows were judged.
	Rows, Checked int64
	// Views are the views of the event type with their late rows, in
	// declaration order.
	Views []ViewLateness
	// TopicNewest is the newest event time already in the topic (epoch
	// ms), and found is false for an empty topic.
	TopicNewest int64
	topicFound  bool
	// First and Last are the replay's oldest and newest event times.
	First, Last int64
}

// ViewLateness is one view's late rows.
type ViewLateness struct {
	View string
	// MaxLateness is the view's, in ms.
	MaxLateness int64
	Rows        int64
}

// lateEstimate counts the rows of a replay that featurize will drop as
// late, simulating featurize's per-partition watermarks: the newest
// plausible event time among each partition's last tailMessages messages,
// then each row in file order, as the replay will publish it.
type lateEstimate struct {
	est     *Lateness
	pw      *partitionWatermarks
	perView []int64
}

// newLateEstimate reads the topic's watermarks; the rows come through add.
func newLateEstimate(ctx context.Context, kc broker.Config, typ *schemas.Event, views []*schemas.View, times events.TimeRule) (*lateEstimate, error) {
	topic := kc.Topic(typ.Name)
	marks, parts, err := partitionMarks(ctx, kc, topic, typ, times, time.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	est := &Lateness{}
	for _, m := range marks {
		if !est.topicFound || m > est.TopicNewest {
			est.TopicNewest, est.topicFound = m, true
		}
	}
	for _, v := range views {
		est.Views = append(est.Views, ViewLateness{View: v.Name, MaxLateness: v.MaxLateness})
	}
	return &lateEstimate{est: est, pw: newPartitionWatermarks(typ, views, parts, marks), perView: make([]int64, len(views))}, nil
}

// add judges the next row the replay will publish: ev, already shifted and
// found plausible.
func (e *lateEstimate) add(ev *events.Event) {
	t, est := ev.Time, e.est
	if e.pw.add(ev, t, e.perView) {
		est.Rows++
	}
	if est.Checked == 0 || t < est.First {
		est.First = t
	}
	if est.Checked == 0 || t > est.Last {
		est.Last = t
	}
	est.Checked++
}

// result is the estimate of the rows added so far.
func (e *lateEstimate) result() *Lateness {
	for i, n := range e.perView {
		e.est.Views[i].Rows = n
	}
	return e.est
}

// partitionWatermarks follows featurize's lateness over one event type's
// topic: each partition's newest event time, against which an event is late
// for a view when it is older than that minus the view's max_lateness. The
// replay's estimate and the HTTP API's 202 both judge with it.
type partitionWatermarks struct {
	views  []*schemas.View
	entity []int // index of each view's entity field
	ids    []int // the partitions, for the balancer
	marks  map[int]int64
	bal    kafka.Murmur2Balancer
}

// newPartitionWatermarks follows a topic of parts partitions whose newest
// event times are marks (no entry: an empty partition); it keeps marks.
func newPartitionWatermarks(typ *schemas.Event, views []*schemas.View, parts int, marks map[int]int64) *partitionWatermarks {
	pw := &partitionWatermarks{views: views, ids: make([]int, parts), marks: marks}
	for i := range pw.ids {
		pw.ids[i] = i
	}
	for _, v := range views {
		f, _ := typ.Field(v.Entity)
		pw.entity = append(pw.entity, f.Index)
	}
	return pw
}

// add judges ev, published at event time t after everything judged
// before, as featurize will: it adds one to perView (by view) for each
// view that drops it as late and says whether any does, then raises its
// partition's mark. An event without a view's entity field is not that
// view's, late or not.
func (pw *partitionWatermarks) add(ev *events.Event, t int64, perView []int64) bool {
	p := pw.bal.Balance(kafka.Message{Key: []byte(ev.Key())}, pw.ids...)
	mark, seen := pw.marks[p]
	late := false
	for i, v := range pw.views {
		if seen && ev.Values[pw.entity[i]].Present() && t < mark-v.MaxLateness {
			perView[i]++
			late = true
		}
	}
	if !seen || t > mark {
		pw.marks[p] = t
	}
	return late
}

// lateList lists the views with late events, "user_spend: 3, max_lateness
// 1h; …", for the warnings.
func lateList(views []ViewLateness) string {
	var per []string
	for _, v := range views {
		if v.Rows > 0 {
			per = append(per, fmt.Sprintf("%s: %d, max_lateness %s", v.View, v.Rows, schemas.FormatDuration(v.MaxLateness)))
		}
	}
	return strings.Join(per, "; ")
}

// partitionMarks returns, per partition of topic, the newest plausible
// event time among its last tailMessages messages (no entry for an empty
// partition), and the topic's partition count.
func partitionMarks(ctx context.Context, kc broker.Config, topic string, typ *schemas.Event, rule events.TimeRule, now int64) (map[int]int64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	spans, err := kc.Spans(ctx, []string{topic}, false)
	if err != nil {
		return nil, 0, err
	}
	parts := spans[topic]
	if len(parts) == 0 {
		return nil, 0, fmt.Errorf("kafka metadata of %s: no partitions", topic)
	}
	client := kc.Client()
	marks := map[int]int64{}
	for _, po := range parts {
		from := max(po.First, po.Last-tailMessages)
		for off := from; off < po.Last; {
			res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: po.Partition, Offset: off, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: time.Second})
			if err == nil {
				err = res.Error
			}
			if err != nil {
				return nil, 0, fmt.Errorf("read the newest messages of %s/%d: %w", topic, po.Partition, err)
			}
			next, err := markRecords(res.Records, off, typ, rule, now, po.Partition, marks)
			if err != nil {
				return nil, 0, fmt.Errorf("read the newest messages of %s/%d: %w", topic, po.Partition, err)
			}
			if next == off {
				break // nothing more came back
			}
			off = next
		}
	}
	return marks, len(parts), nil
}

// markRecords raises marks[p] to the newest plausible event time among the
// records at or after offset from, and returns the offset after the last
// record read.
func markRecords(recs kafka.RecordReader, from int64, typ *schemas.Event, rule events.TimeRule, now int64, p int, marks map[int]int64) (int64, error) {
	next := from
	for {
		r, err := recs.ReadRecord()
		if errors.Is(err, io.EOF) {
			return next, nil
		}
		if err != nil {
			return next, err
		}
		if r.Offset < from {
			continue // a batch can start before the offset asked for
		}
		next = r.Offset + 1
		if r.Value == nil {
			continue
		}
		value, err := protocol.ReadAll(r.Value)
		if err != nil {
			return next, err
		}
		ev, err := events.Decode(typ, value)
		if err != nil || rule.Check(typ.Timestamp, ev.Time, true, now) != nil {
			continue // featurize skips these too
		}
		if m, ok := marks[p]; !ok || ev.Time > m {
			marks[p] = ev.Time
		}
	}
}

// warning is what a replay prints before publishing rows that will be
// dropped as late.
func (l *Lateness) warning(strict bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d rows are older than the newest event time of their Kafka partition minus max_lateness: featurize will drop them as late (%s).\n",
		l.Rows, l.Checked, lateList(l.Views))
	if l.topicFound {
		fmt.Fprintf(&b, "  The topic already holds events up to %s; ", events.FormatTime(l.TopicNewest))
	} else {
		b.WriteString("  The topic is empty, but the rows themselves go back in time; ")
	}
	fmt.Fprintf(&b, "the rows span %s to %s.\n", events.FormatTime(l.First), events.FormatTime(l.Last))
	b.WriteString("  To serve history live, replay it with --rebase-time; for training data use featurize backfill;\n" +
		"  to recompute the online store from Kafka's retained history use featurize rebuild.")
	if strict {
		b.WriteString("\n  Nothing was published (--strict-lateness).")
	} else {
		b.WriteString(" --strict-lateness refuses such a replay.")
	}
	return b.String()
}

// summary is the late rows for the replay's closing line, "" for none.
func (l *Lateness) summary() string {
	if l == nil || l.Rows == 0 {
		return ""
	}
	var per []string
	for _, v := range l.Views {
		if v.Rows > 0 {
			per = append(per, fmt.Sprintf("%s %d", v.View, v.Rows))
		}
	}
	sort.Strings(per)
	return fmt.Sprintf("; %d will be dropped as late by featurize (%s)", l.Rows, strings.Join(per, ", "))
}

// LateError is the error of a --strict-lateness replay that holds rows
// featurize would drop as late: nothing was published.
type LateError struct{ Lateness *Lateness }

func (e *LateError) Error() string {
	return fmt.Sprintf("%d rows would be dropped as late; nothing published (--strict-lateness)", e.Lateness.Rows)
}

// watermarkRefresh is how often the HTTP API reads the topics' newest event
// times again, for what other producers and ingest replicas wrote.
const watermarkRefresh = 30 * time.Second

// watermarks is the HTTP API's view of how far each partition of each event
// type's topic is in event time: read from the topics' newest messages when
// they are ready and every watermarkRefresh, and raised by every event this
// process publishes. With it a 202 says which accepted events featurize will
// drop as late. It is an estimate: another producer's events since the last
// refresh are not in it.
type watermarks struct {
	rule   events.TimeRule
	topics map[string]*topicMarks // by event name
}

// topicMarks is one event type's partitions.
type topicMarks struct {
	typ   *schemas.Event
	views []*schemas.View
	mu    sync.Mutex
	pw    *partitionWatermarks // nil until the partition count is known
}

func newWatermarks(reg *schemas.Registry, rule events.TimeRule) *watermarks {
	w := &watermarks{rule: rule, topics: map[string]*topicMarks{}}
	for _, name := range reg.EventNames() {
		w.topics[name] = &topicMarks{typ: reg.Events[name], views: reg.ViewsOf(name)}
	}
	return w
}

// refresh reads the newest event times of every topic; a topic whose
// partitions cannot be read keeps what it had.
func (w *watermarks) refresh(ctx context.Context, kc broker.Config) error {
	var errs []error
	now := time.Now().UnixMilli()
	for name, tm := range w.topics {
		if len(tm.views) == 0 {
			continue
		}
		marks, parts, err := partitionMarks(ctx, kc, kc.Topic(name), tm.typ, w.rule, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tm.mu.Lock()
		if tm.pw == nil || len(tm.pw.ids) != parts {
			tm.pw = newPartitionWatermarks(tm.typ, tm.views, parts, marks)
		} else {
			for p, t := range marks {
				if m, ok := tm.pw.marks[p]; !ok || t > m {
					tm.pw.marks[p] = t
				}
			}
		}
		tm.mu.Unlock()
	}
	return errors.Join(errs...)
}

// lateAnswer is what a 202 adds when featurize will drop some of the
// request's events as late.
type lateAnswer struct {
	Late    int    `json:"late,omitempty"`
	Warning string `json:"warning,omitempty"`
}

// judge returns which of evs (one event type's, in publish order) featurize
// will drop as late, and raises the partitions' marks with them as if they
// were published: call it once the publish succeeded.
func (w *watermarks) judge(name string, evs []events.Event) lateAnswer {
	tm := w.topics[name]
	if tm == nil {
		return lateAnswer{}
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.pw == nil {
		return lateAnswer{} // no view, or the partitions are not known yet
	}
	perView := make([]int64, len(tm.views))
	late := 0
	for i := range evs {
		if tm.pw.add(&evs[i], evs[i].Time, perView) {
			late++
		}
	}
	if late == 0 {
		return lateAnswer{}
	}
	vs := make([]ViewLateness, len(tm.views))
	for i, v := range tm.views {
		vs[i] = ViewLateness{View: v.Name, MaxLateness: v.MaxLateness, Rows: perView[i]}
	}
	return lateAnswer{Late: late, Warning: fmt.Sprintf("%d of %d events are older than the newest event time of their Kafka partition minus max_lateness: featurize will drop them as late (%s); send current event times, or history with ingest replay --rebase-time",
		late, len(evs), lateList(vs))}
}
