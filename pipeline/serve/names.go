package serve

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Refusals of an unknown name (view, feature, request member) list the
// valid names, sorted, and suggest the closest one when a typo is likely:
//
//	unknown view "user_spendd"; views: merchant_activity, user_spend; did you mean "user_spend"?

// maxListed bounds the names a refusal lists, so a view of hundreds of
// features does not answer with a page of text.
const maxListed = 50

// nameList writes sorted names comma-separated, at most maxListed of them.
func nameList(sorted []string) string {
	if len(sorted) == 0 {
		return "(none)"
	}
	if len(sorted) <= maxListed {
		return strings.Join(sorted, ", ")
	}
	return strings.Join(sorted[:maxListed], ", ") + fmt.Sprintf(", … (%d more)", len(sorted)-maxListed)
}

// unknownName is the refusal of name, unknown as what (e.g. `view
// "user_spendd"`): the valid names under label, and the closest of them
// when it is a likely typo.
func unknownName(what, name, label string, sorted []string) string {
	msg := fmt.Sprintf("unknown %s; %s: %s", what, label, nameList(sorted))
	if s, ok := closest(name, sorted); ok {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

// closest returns the name nearest to name by edit distance, when that is
// at most 2 and the two share at least one letter in place (the distance
// is below the longer one's length, so that "x" does not suggest "y"); the
// first in order on a tie.
func closest(name string, names []string) (string, bool) {
	const most = 2
	best, bestD := "", most+1
	n := utf8.RuneCountInString(name)
	for _, c := range names {
		if d := editDistance(name, c, bestD); d < bestD && d < max(n, utf8.RuneCountInString(c)) {
			best, bestD = c, d
		}
	}
	return best, bestD <= most
}

// editDistance is the Levenshtein distance between a and b in runes; any
// result of at least limit is reported as limit, which lets it stop early.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(rb)], limit)
}
