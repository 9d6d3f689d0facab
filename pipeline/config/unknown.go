package config

import (
	"slices"
	"strings"
)

// UnknownVariable is a FRESHET_* variable of the environment that no freshet
// program reads.
type UnknownVariable struct {
	// Name is the variable's name.
	Name string
	// Suggestion is the known name it most likely misspells; empty when
	// none is close.
	Suggestion string
}

// String is `FRESHET_REDIS_ULR is not a freshet setting; did you mean
// FRESHET_REDIS_URL?`. It never holds the variable's value, which may be a
// secret.
func (u UnknownVariable) String() string {
	if u.Suggestion != "" {
		return u.Name + " is not a freshet setting; did you mean " + u.Suggestion + "?"
	}
	return u.Name + " is not a freshet setting (`freshet config` lists the settings)"
}

// Unknown returns the FRESHET_* variables of environ (KEY=value entries, as
// os.Environ gives them) that are not in known, sorted by name, each with
// the known name it most likely misspells.
func Unknown(environ, known []string) []UnknownVariable {
	isKnown := make(map[string]bool, len(known))
	for _, k := range known {
		isKnown[k] = true
	}
	var out []UnknownVariable
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || isKnown[name] || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, UnknownVariable{Name: name, Suggestion: Suggest(name, known)})
	}
	slices.SortFunc(out, func(a, b UnknownVariable) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Suggest returns the candidate closest to name when it is close enough to
// be a misspelling of it, else "": every "did you mean" of freshet (flags,
// FRESHET_* variables, subcommands, views, features, request members).
// Closeness is the number of letters inserted, deleted, replaced or swapped
// with a neighbour (so ULR is one edit from URL), ignoring case and the
// FRESHET_ prefix both share; at most one edit per four letters is a
// misspelling, and at least one always is, but never as many edits as the
// longer name has letters ("x" does not suggest "y"). Ties go to the
// candidate that sorts first, so the answer never depends on the
// candidates' order.
func Suggest(name string, candidates []string) string {
	key := normalize(name)
	limit := max(1, len([]rune(key))/4)
	best, bestDist := "", limit+1
	for _, c := range candidates {
		nc := normalize(c)
		d := distance(key, nc)
		if d >= max(len([]rune(key)), len([]rune(nc))) {
			continue // nothing in common
		}
		if d < bestDist || (d == bestDist && best != "" && c < best) {
			best, bestDist = c, d
		}
	}
	if bestDist > limit {
		return ""
	}
	return best
}

func normalize(s string) string {
	return strings.TrimPrefix(strings.ToUpper(s), EnvPrefix)
}

// distance is the optimal string alignment distance between a and b:
// Levenshtein's insertions, deletions and substitutions, plus swaps of two
// adjacent letters, each costing one.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
