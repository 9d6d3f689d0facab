package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
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

// estimateLateness reads the topic's watermarks, then the files (as the
// replay will publish them: shifted, plausible, the first limit), and
// counts the rows featurize will drop as late, simulating featurize's
// per-partition watermarks: the newest plausible event time among the
// partition's last tailMessages messages, then each row in file order.
func estimateLateness(ctx context.Context, kc broker.Config, typ *schemas.Event, views []*schemas.View, rd *rowReader) (*Lateness, error) {
	topic := kc.Topic(typ.Name)
	now := time.Now().UnixMilli()
	marks, parts, err := partitionMarks(ctx, kc, topic, typ, rd.times, now)
	if err != nil {
		return nil, err
	}
	est := &Lateness{}
	for _, m := range marks {
		if !est.topicFound || m > est.TopicNewest {
			est.TopicNewest, est.topicFound = m, true
		}
	}
	lm := make([]int64, len(views))
	entity := make([]int, len(views))
	for i, v := range views {
		est.Views = append(est.Views, ViewLateness{View: v.Name, MaxLateness: v.MaxLateness})
		lm[i] = v.MaxLateness
		f, _ := typ.Field(v.Entity)
		entity[i] = f.Index
	}
	ids := make([]int, parts)
	for i := range ids {
		ids[i] = i
	}
	bal := &kafka.Murmur2Balancer{}
	err = eachEvent(ctx, typ, rd.files, rd.limit, func(ev *events.Event) {
		t := ev.Time + rd.shift
		if rd.times.Check(typ.Timestamp, t, true, now) != nil {
			return // an invalid row of the replay
		}
		p := bal.Balance(kafka.Message{Key: []byte(ev.Key())}, ids...)
		mark, seen := marks[p]
		late := false
		for i := range views {
			if !ev.Values[entity[i]].Present() {
				continue
			}
			if seen && t < mark-lm[i] {
				est.Views[i].Rows++
				late = true
			}
		}
		if late {
			est.Rows++
		}
		if !seen || t > mark {
			marks[p] = t
		}
		if est.Checked == 0 || t < est.First {
			est.First = t
		}
		if est.Checked == 0 || t > est.Last {
			est.Last = t
		}
		est.Checked++
	})
	if err != nil {
		return nil, err
	}
	return est, nil
}

// partitionMarks returns, per partition of topic, the newest plausible
// event time among its last tailMessages messages (no entry for an empty
// partition), and the topic's partition count.
func partitionMarks(ctx context.Context, kc broker.Config, topic string, typ *schemas.Event, rule events.TimeRule, now int64) (map[int]int64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(kc.Brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, 0, fmt.Errorf("kafka metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) == 0 {
		return nil, 0, fmt.Errorf("kafka metadata of %s: no partitions", topic)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range md.Topics[0].Partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("kafka offsets of %s: %w", topic, err)
	}
	marks := map[int]int64{}
	for _, po := range offs.Topics[topic] {
		if po.Error != nil {
			return nil, 0, fmt.Errorf("kafka offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		from := max(po.FirstOffset, po.LastOffset-tailMessages)
		for off := from; off < po.LastOffset; {
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
	return marks, len(md.Topics[0].Partitions), nil
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
	fmt.Fprintf(&b, "%d of %d rows are older than the newest event time of their Kafka partition minus max_lateness: featurize will drop them as late (", l.Rows, l.Checked)
	first := true
	for _, v := range l.Views {
		if v.Rows == 0 {
			continue
		}
		if !first {
			b.WriteString("; ")
		}
		first = false
		fmt.Fprintf(&b, "%s: %d, max_lateness %s", v.View, v.Rows, schemas.FormatDuration(v.MaxLateness))
	}
	b.WriteString(").\n")
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
