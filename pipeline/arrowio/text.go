package arrowio

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// This file holds the rules for CSV cells, which are text whatever the
// field's type. They follow the JSON rules of events.Decode as closely as
// text allows, and pandas' to_csv conventions where JSON has no say:
//
//   - an empty cell is a missing value for every type (read_csv reads it
//     as NaN/None), so an empty string cannot be told from a missing one;
//   - string: the cell as is, if it is UTF-8;
//   - int: an optional sign and decimal digits, within int64;
//   - float: a decimal number as strconv.ParseFloat reads it, but not NaN,
//     Inf or hexadecimal;
//   - bool: true, false, True, False, TRUE or FALSE;
//   - timestamp: RFC 3339; "YYYY-MM-DD HH:MM:SS[.fff][±hh:mm]" (pandas'
//     format, UTC when no offset is given); or integer epoch milliseconds.
//
// Spaces around a non-string cell are ignored.

// parseCell converts one CSV cell for a field of type ft. It returns an
// Absent value for an empty cell, and a non-empty reason when the cell
// cannot be the field's.
func parseCell(ft schemas.FieldType, cell string) (events.Value, string) {
	if ft == schemas.String {
		if cell == "" {
			return events.Value{}, ""
		}
		text, reason := cloneText(cell)
		if reason != "" {
			return events.Value{}, reason
		}
		return events.Value{Kind: events.String, S: text}, ""
	}
	s := strings.TrimSpace(cell)
	if s == "" {
		return events.Value{}, ""
	}
	switch ft {
	case schemas.Int:
		// pandas writes an int column holding missing values as floats:
		// "12.0" is the integer 12, "12.5" is no integer.
		if whole, frac, ok := strings.Cut(s, "."); ok && whole != "" && strings.Trim(frac, "0") == "" && isDecimalInt(whole) {
			s = whole
		}
		if !isDecimalInt(s) {
			return events.Value{}, "expected int, got " + strconv.Quote(events.Clip(cell))
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return events.Value{}, "expected int, got " + events.Clip(s) + " (out of int64 range)"
		}
		return events.Value{Kind: events.Int, I: v}, ""
	case schemas.Float:
		if !isDecimalFloat(s) {
			return events.Value{}, "expected float, got " + strconv.Quote(events.Clip(cell))
		}
		f, err := strconv.ParseFloat(s, 64)
		if errors.Is(err, strconv.ErrRange) {
			return events.Value{}, "expected float, got " + events.Clip(s) + " (out of float64 range)"
		}
		if err != nil {
			return events.Value{}, "expected float, got " + strconv.Quote(events.Clip(cell))
		}
		return events.Value{Kind: events.Float, F: f}, ""
	case schemas.Bool:
		switch s {
		case "true", "True", "TRUE":
			return events.Value{Kind: events.Bool, B: true}, ""
		case "false", "False", "FALSE":
			return events.Value{Kind: events.Bool, B: false}, ""
		}
		return events.Value{}, "expected bool, got " + strconv.Quote(events.Clip(cell))
	case schemas.Timestamp:
		ms, reason := parseTextTime(s)
		if reason != "" {
			return events.Value{}, reason
		}
		return events.Value{Kind: events.Time, I: ms}, ""
	}
	return events.Value{}, "unknown field type " + string(ft)
}

// parseTextTime reads a timestamp cell: RFC 3339, pandas'
// "YYYY-MM-DD HH:MM:SS[.fff][±hh:mm]" (UTC without an offset), or integer
// epoch milliseconds.
func parseTextTime(s string) (int64, string) {
	if isDecimalInt(s) {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, "expected timestamp, got " + events.Clip(s) + " (out of int64 range)"
		}
		return v, ""
	}
	if len(s) > 10 && s[10] == ' ' {
		layout := "2006-01-02 15:04:05Z07:00"
		if !hasZone(s[11:]) {
			layout = "2006-01-02 15:04:05"
		}
		t, err := time.Parse(layout, s)
		if err != nil {
			return 0, events.TimeReason(s, err)
		}
		return t.UnixMilli(), ""
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if len(s) > 10 && (s[10] == 'T' || s[10] == 't') {
			return 0, events.TimeReason(s, err)
		}
		return 0, "expected timestamp (RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or integer epoch milliseconds), got " + strconv.Quote(events.Clip(s))
	}
	return t.UnixMilli(), ""
}

// hasZone reports whether the time of day clock ends in Z or a ±hh:mm
// offset.
func hasZone(clock string) bool {
	return strings.HasSuffix(clock, "Z") || strings.HasSuffix(clock, "z") ||
		strings.ContainsAny(clock, "+-")
}

// isDecimalInt reports whether s is an integer as events.IsInteger reads
// one, or one with a plus sign, which CSV writers may write.
func isDecimalInt(s string) bool {
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		return !strings.HasPrefix(rest, "-") && events.IsInteger(rest)
	}
	return events.IsInteger(s)
}

// isDecimalFloat reports whether s looks like a decimal number: digits, at
// most a sign, point and exponent. It rejects what ParseFloat would also
// accept but no JSON or CSV writer means as a number: NaN, Inf, hexadecimal
// and underscores.
func isDecimalFloat(s string) bool {
	digits := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits = true
		case c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E':
		default:
			return false
		}
	}
	return digits
}
