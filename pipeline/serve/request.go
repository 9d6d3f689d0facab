package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/httpx"
)

// maxBody bounds a request body; a larger one is refused with 413.
const maxBody = 16 << 20

// maxFeatures bounds the feature names of one lookup (Feast's "view:feature"
// references included); a request naming more is refused with 400 as soon
// as its list is read that far. A request may name a feature once only, so
// an answer holds at most entities × features values; without the bound, a
// 5 MB Feast request repeating 200,000 references for 200 entities was
// answered with 1.6 GB after 75 s.
const maxFeatures = 1000

// The lookup times that have an RFC 3339 form: years 0000 to 9999.
const (
	minAt = -62167219200000 // 0000-01-01T00:00:00.000Z
	maxAt = 253402300799999 // 9999-12-31T23:59:59.999Z
)

func tooLarge(limit int64) error {
	size := fmt.Sprintf("%d bytes", limit)
	if limit%(1<<20) == 0 {
		size = fmt.Sprintf("%d MiB", limit>>20)
	}
	return &apiError{http.StatusRequestEntityTooLarge, "request body larger than " + size}
}

func jsonKind(c byte) string {
	switch c {
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	}
	return "a number"
}

// Integer lookup times are epoch milliseconds in [minIntAt, maxIntAt):
// 1973-03-03 to 5138-11-16. An integer outside is almost always a unit
// mistake: epoch seconds read as milliseconds would answer as of 1970, with
// every window empty, and look like a valid answer.
const (
	minIntAt = 100_000_000_000     // 1973-03-03T09:46:40Z
	maxIntAt = 100_000_000_000_000 // 5138-11-16T09:46:40Z, excluded
)

// parseAt reads a lookup time: integer epoch milliseconds within [minIntAt,
// maxIntAt), or an RFC 3339 time of the years 0000 to 9999 (sub-millisecond
// digits truncated towards the past, as events are).
func parseAt(s string) (int64, error) {
	if events.IsInteger(s) {
		return parseIntAt(s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, badAt(strconv.Quote(clip(s)))
	}
	ms := t.UnixMilli()
	if ms < minAt || ms > maxAt {
		return 0, badRequest("invalid at %s: outside years 0000 to 9999", strconv.Quote(clip(s)))
	}
	return ms, nil
}

// parseIntAt reads the digits s (an optional minus first) as epoch
// milliseconds; out of range, the refusal says which unit the value looks
// like, with the milliseconds it would then be.
func parseIntAt(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil { // beyond int64: no unit makes it a time
		return 0, intAtRange(clip(s))
	}
	if v >= minIntAt && v < maxIntAt {
		return v, nil
	}
	unit := events.GuessUnit(v, minIntAt, maxIntAt-1)
	var ms int64
	switch unit {
	case "seconds":
		ms = v * 1000
	case "microseconds":
		ms = v / 1000
	case "nanoseconds":
		ms = v / 1_000_000
	default:
		return 0, intAtRange(s)
	}
	return 0, badRequest("invalid at %s: looks like epoch %s; use milliseconds (%d) or RFC 3339", s, unit, ms)
}

func intAtRange(shown string) error {
	return badRequest("invalid at %s: integer epoch milliseconds must lie in [%d, %d) (1973-03-03 to 5138-11-16); use RFC 3339 for other times", shown, int64(minIntAt), int64(maxIntAt))
}

// queryAt reads the at query parameter, defaulting to now.
func (s *Server) queryAt(values []string) (int64, error) {
	switch len(values) {
	case 0:
		return s.now().UnixMilli(), nil
	case 1:
	default:
		return 0, badRequest("at given %d times", len(values))
	}
	v := values[0]
	// A + in a query string reads as a space: an unescaped offset such as
	// ?at=2024-06-01T02:00:00+02:00 arrives with a space, which RFC 3339
	// never holds.
	if strings.IndexByte(v, ' ') >= 0 {
		v = strings.ReplaceAll(v, " ", "+")
	}
	return parseAt(v)
}

// jsonAt reads the at member of a JSON body: a string (RFC 3339, or epoch
// milliseconds as digits), an integer of epoch milliseconds, or null or
// missing for now.
func (s *Server) jsonAt(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return s.now().UnixMilli(), nil
	}
	switch c := raw[0]; {
	case c == '"':
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, badAt(clip(string(raw)))
		}
		return parseAt(str)
	case c == '-' || (c >= '0' && c <= '9'):
		if !events.IsInteger(string(raw)) {
			return 0, badAt(clip(string(raw)))
		}
		return parseAt(string(raw))
	}
	return 0, badAt(clip(string(raw)))
}

func badAt(shown string) error {
	return badRequest("invalid at %s: want an RFC 3339 time or integer epoch milliseconds", shown)
}

// features resolves requested feature names of v to indexes, in request
// order; none means every feature in declaration order.
func (v *view) features(names []string) ([]int, error) {
	if len(names) == 0 {
		return v.all, nil
	}
	out := make([]int, 0, len(names))
	for _, n := range names {
		i, ok := v.layout.FeatureIndex(n)
		if !ok {
			return nil, v.unknownFeature(n)
		}
		for _, j := range out {
			if j == i {
				return nil, badRequest("feature %q of view %q requested twice", n, v.name)
			}
		}
		out = append(out, i)
	}
	return out, nil
}

// unknownFeature is the refusal of a feature name v does not have.
func (v *view) unknownFeature(name string) error {
	return badRequest("%s", unknownName(fmt.Sprintf("feature %q in view %q", name, v.name), name, "its features", v.sortedFeatures))
}

// clip shortens a value quoted in a refusal.
func clip(s string) string { return httpx.Truncate(s, 64) }

// invalidUTF8 says where s, which is not valid UTF-8, stops being text, in
// the words events.AppendText uses for a JSON string.
func invalidUTF8(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		i += n
	}
	if i == len(s) {
		return "valid UTF-8" // not reached: callers check first
	}
	where := " at the start"
	if i > 0 {
		before := s[:i]
		if len(before) > 32 { // the end, where the problem is
			before = "..." + strings.ToValidUTF8(before[len(before)-32:], "")
		}
		where = " after " + strconv.Quote(before)
	}
	return fmt.Sprintf("invalid UTF-8: byte 0x%02x%s; send text as UTF-8", s[i], where)
}
