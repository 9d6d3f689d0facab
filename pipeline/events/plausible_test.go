package events

import (
	"flag"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTimeRuleCheck(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixMilli()
	rule := DefaultTimeRule()
	const minute = int64(60_000)
	cases := []struct {
		name    string
		t       int64
		integer bool
		// want are substrings of the reason; none: the time is plausible.
		want []string
		// not are substrings the reason must not hold.
		not []string
	}{
		{name: "now", t: now, integer: true},
		{name: "within the skew", t: now + 4*minute, integer: true},
		{name: "at the skew", t: now + 5*minute},
		{name: "just past the skew", t: now + 5*minute + 1, want: []string{"ahead of the clock", "--max-clock-skew"}, not: []string{"looks like"}},
		{name: "the floor itself", t: 946684800000, integer: true},
		{name: "just before the floor", t: 946684799999, integer: true, want: []string{"946684799999 (as epoch milliseconds 1999-12-31T23:59:59.999Z)", "before 2000-01-01 (--min-event-time)"}, not: []string{"looks like"}},
		{name: "epoch seconds", t: now / 1000, integer: true, want: []string{strconv.FormatInt(now/1000, 10), "1970-01-21", "before 2000-01-01", "looks like epoch seconds: use milliseconds or RFC 3339"}},
		{name: "epoch microseconds", t: now * 1000, integer: true, want: []string{strconv.FormatInt(now*1000, 10), "years ahead of the clock", "looks like epoch microseconds: use milliseconds or RFC 3339"}},
		{name: "epoch nanoseconds", t: now * 1_000_000, integer: true, want: []string{"after year 9999", "looks like epoch nanoseconds"}},
		{name: "a year ahead, typed", t: now + 366*24*60*minute, want: []string{"2027-12-04T12:00:00.000Z", "more than 366 days ahead"}, not: []string{"looks like", "as epoch"}},
		{name: "negative", t: -5, integer: true, want: []string{"before 2000-01-01"}, not: []string{"looks like"}},
		{name: "int64 max", t: 1<<63 - 1, integer: true, want: []string{"after year 9999"}, not: []string{"looks like"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fe := rule.Check("ts", c.t, c.integer, now)
			if len(c.want) == 0 {
				require.Nil(t, fe)
				return
			}
			require.NotNil(t, fe)
			require.Equal(t, "ts", fe.Field)
			for _, w := range c.want {
				require.Contains(t, fe.Reason, w)
			}
			for _, n := range c.not {
				require.NotContains(t, fe.Reason, n)
			}
		})
	}
}

func TestGuessUnit(t *testing.T) {
	lo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	ms := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	for _, c := range []struct {
		v    int64
		want string
	}{
		{ms / 1000, "seconds"},
		{ms * 1000, "microseconds"},
		{ms*1000 + 999, "microseconds"},
		{ms * 1_000_000, "nanoseconds"},
		{0, ""},
		{-ms / 1000, ""},
		{1<<63 - 1, ""},
		{-1 << 63, ""},
		{hi/1000 + 1, ""}, // seconds just past hi
	} {
		require.Equal(t, c.want, GuessUnit(c.v, lo, hi), "GuessUnit(%d)", c.v)
	}
}

func TestTimeRuleDecodeListsEveryField(t *testing.T) {
	e, _ := loadTestSchemas(t)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixMilli()
	rule := DefaultTimeRule()
	micros := strconv.FormatInt(now*1000, 10)

	_, err := rule.Decode(e, []byte(`{"id":"a","n":"one","ts":`+micros+`,"ok":2}`), now)
	errs := Each(err)
	var fields []string
	for _, fe := range errs {
		fields = append(fields, fe.Field)
	}
	// Declaration order, whatever the order in the object.
	var want []string
	for _, f := range e.Fields {
		if f.Name == "n" || f.Name == "ts" || f.Name == "ok" {
			want = append(want, f.Name)
		}
	}
	require.Equal(t, want, fields, "every bad field, the implausible time among them: %v", err)
	for _, fe := range errs {
		if fe.Field == "ts" {
			require.Contains(t, fe.Reason, "looks like epoch microseconds")
		}
	}

	// Plain Decode does not judge the time.
	ev, err := Decode(e, []byte(`{"id":"a","n":1,"ts":`+micros+`}`))
	require.NoError(t, err)
	require.Equal(t, now*1000, ev.Time)

	// The time rule alone: one *FieldError.
	_, err = rule.Decode(e, []byte(`{"id":"a","n":1,"ts":"2031-01-01T00:00:00Z"}`), now)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "ts", fe.Field)
	require.Contains(t, fe.Reason, "2031-01-01T00:00:00.000Z")
	require.Len(t, Each(err), 1)

	// A plausible time passes.
	ev, err = rule.Decode(e, []byte(`{"id":"a","n":1,"ts":"2026-12-03T11:00:00Z"}`), now)
	require.NoError(t, err)
	require.Equal(t, now-3_600_000, ev.Time)

	// A syntax error stays alone.
	_, err = rule.Decode(e, []byte(`{"id":1,"n":"x","ts":0,}`), now)
	require.Len(t, Each(err), 1)
	require.Contains(t, err.Error(), "invalid JSON")
}

func TestTimeRuleFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		floor   string
		skew    time.Duration
		wantErr string
	}{
		{args: nil, floor: "2000-01-01T00:00:00Z", skew: 5 * time.Minute},
		{args: []string{"--min-event-time", "2015-06-01", "--max-clock-skew", "1h"}, floor: "2015-06-01T00:00:00Z", skew: time.Hour},
		{args: []string{"--min-event-time", "2015-06-01T12:30:00+02:00"}, floor: "2015-06-01T10:30:00Z", skew: 5 * time.Minute},
		{args: []string{"--min-event-time", "June 2015"}, wantErr: "want a date (2000-01-01) or an RFC 3339 time"},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var r TimeRule
		r.RegisterFlags(fs)
		err := fs.Parse(c.args)
		if c.wantErr != "" {
			require.ErrorContains(t, err, c.wantErr)
			continue
		}
		require.NoError(t, err)
		want, err := time.Parse(time.RFC3339, c.floor)
		require.NoError(t, err)
		require.Equal(t, want.UnixMilli(), r.Floor, "%v", c.args)
		require.Equal(t, c.skew, r.MaxAhead)
		require.NoError(t, r.Validate())
	}
	require.Error(t, TimeRule{MaxAhead: -time.Second}.Validate())
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var r TimeRule
	r.RegisterFlags(fs)
	require.Equal(t, "2000-01-01", fs.Lookup("min-event-time").DefValue)
}
