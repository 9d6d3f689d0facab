package events

import (
	"errors"
	"flag"
	"strconv"
	"time"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// TimeRule says which event times are plausible: not more than MaxAhead
// ahead of the wall clock, and not before Floor. A time outside is almost
// always a unit mistake (epoch seconds or microseconds where milliseconds
// were meant) or a broken producer clock; taken as it is, one such event
// moves its partition's watermark to the far future and every later event of
// that partition looks late. ingest refuses such events, featurize counts
// them as rejected_time and skips them.
type TimeRule struct {
	// MaxAhead is how far ahead of the wall clock an event time may be.
	MaxAhead time.Duration
	// Floor is the earliest plausible event time, in epoch ms.
	Floor int64
}

// Defaults of TimeRule: five minutes of clock skew (Kafka itself refuses
// message times more than an hour ahead), and nothing before 2000.
const (
	DefaultMaxAhead = 5 * time.Minute
	DefaultFloor    = "2000-01-01"
)

// DefaultTimeRule is the rule with its defaults.
func DefaultTimeRule() TimeRule {
	f, _ := parseFloor(DefaultFloor)
	return TimeRule{MaxAhead: DefaultMaxAhead, Floor: f}
}

// RegisterFlags registers max-clock-skew and min-event-time with their
// defaults.
func (r *TimeRule) RegisterFlags(fs *flag.FlagSet) {
	*r = DefaultTimeRule()
	fs.DurationVar(&r.MaxAhead, "max-clock-skew", DefaultMaxAhead, "how far ahead of this process's clock an event time may be: a later one is implausible (ingest refuses it, featurize skips it as rejected_time)")
	fs.Var((*floorFlag)(&r.Floor), "min-event-time", "earliest plausible event time, YYYY-MM-DD or RFC 3339: an earlier one is implausible (ingest refuses it, featurize skips it as rejected_time)")
}

// Validate reports an invalid setting.
func (r TimeRule) Validate() error {
	if r.MaxAhead < 0 {
		return &config.SettingError{Setting: "max-clock-skew", Value: r.MaxAhead.String(), Problem: "is negative", Expected: "a duration of 0 or more, e.g. 5m"}
	}
	return nil
}

// Check returns nil when t (epoch ms) is plausible at now (epoch ms), else
// a *FieldError for field that names the value read and why it is
// implausible. integer says the value was read as an integer of epoch
// milliseconds (shown as given) rather than a typed time; for an integer
// that read as seconds, microseconds or nanoseconds would be plausible, it
// says so.
func (r TimeRule) Check(field string, t int64, integer bool, now int64) *FieldError {
	hi := now + r.MaxAhead.Milliseconds()
	var why string
	switch {
	case t > hi:
		why = "more than " + ahead(t-now) + " ahead of the clock (at most " + r.MaxAhead.String() + ": --max-clock-skew)"
	case t < r.Floor:
		why = "before " + (*floorFlag)(&r.Floor).String() + " (--min-event-time)"
	default:
		return nil
	}
	read := FormatTime(t)
	if integer {
		read = strconv.FormatInt(t, 10) + " (as epoch milliseconds " + read + ")"
	}
	reason := "implausible event time " + read + ": " + why
	if u := GuessUnit(t, r.Floor, hi); integer && u != "" {
		reason += "; looks like epoch " + u + ": use milliseconds or RFC 3339"
	}
	return &FieldError{Field: field, Reason: reason}
}

// Clamp bounds a watermark candidate t to the latest plausible time at now:
// whatever got through, a partition's watermark never runs ahead of the
// clock by more than MaxAhead.
func (r TimeRule) Clamp(t, now int64) int64 {
	return min(t, now+r.MaxAhead.Milliseconds())
}

// GuessUnit returns the unit ("seconds", "microseconds" or "nanoseconds")
// in which the integer v, meant as epoch milliseconds but outside [lo, hi],
// would name a time within [lo, hi] (epoch ms); "" when none does.
func GuessUnit(v, lo, hi int64) string {
	in := func(ms int64) bool { return ms >= lo && ms <= hi }
	switch {
	case v <= (1<<63-1)/1000 && v >= -(1<<63-1)/1000 && in(v*1000):
		return "seconds"
	case in(v / 1000):
		return "microseconds"
	case in(v / 1_000_000):
		return "nanoseconds"
	}
	return ""
}

// FormatTime writes epoch ms as RFC 3339 in UTC with milliseconds, the
// form freshet answers with; beyond the years RFC 3339 can write it says
// so.
func FormatTime(ms int64) string {
	const minMS, maxMS = -62167219200000, 253402300799999
	switch {
	case ms > maxMS:
		return "after year 9999"
	case ms < minMS:
		return "before year 0"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// ahead says how far d (ms) is, rounded down, in the largest unit that
// reads well.
func ahead(d int64) string {
	const day = 24 * 3600 * 1000
	switch {
	case d >= 2*365*day:
		return strconv.FormatInt(d/(365*day), 10) + " years"
	case d >= 2*day:
		return strconv.FormatInt(d/day, 10) + " days"
	}
	return (time.Duration(d) * time.Millisecond).Truncate(time.Second).String()
}

// floorFlag is min-event-time: a date or an RFC 3339 time, kept in epoch ms.
type floorFlag int64

func (f *floorFlag) String() string {
	if f == nil {
		return DefaultFloor
	}
	t := time.UnixMilli(int64(*f)).UTC()
	if t.Equal(t.Truncate(24 * time.Hour)) {
		return t.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339Nano)
}

func (f *floorFlag) Set(s string) error {
	ms, err := parseFloor(s)
	if err != nil {
		return err
	}
	*f = floorFlag(ms)
	return nil
}

func parseFloor(s string) (int64, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UnixMilli(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), nil
	}
	return 0, errors.New("want a date (2000-01-01) or an RFC 3339 time (2000-01-01T00:00:00Z)")
}
