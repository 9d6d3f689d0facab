// Package auth is bearer tokens on freshet's HTTP APIs: the tokens file
// (FRESHET_TOKENS: one token a line, `NAME SCOPES sha256:HEX`, only the
// token's SHA-256 stored), the set of tokens it holds, swapped atomically
// when the file changes or on SIGHUP (Guard.Run), and the middleware that
// declares the scope a route needs where the route is registered
// (Guard.Require): 401 for a missing or unknown token, 403 for a known one
// without the scope.
//
// A token is a secret: it never appears in a log, an error, a metric or a
// trace. What identifies a caller everywhere is its NAME, which the
// middleware records on the request (httpx.Principal) for the access log
// and the request metrics. Business handlers know nothing of this package.
//
// The package must not know what the routes do: which scope each needs is
// said by the service that registers it.
package auth

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// Scope is what a token may do. A route needs exactly one; a token holds
// any number. No scope implies another: admin in particular is not a
// superset (see Admin).
type Scope uint8

const (
	// Ingest: send events (ingest's POST /v1/events/{event}).
	Ingest Scope = 1 << iota
	// Serve: look features up (serve's /v1/features lookups, native and
	// Arrow, and Feast's POST /get-online-features).
	Serve
	// Metrics: read what a service reports about itself (GET /metrics
	// of every service, featurize's GET /v1/stats).
	Metrics
	// Admin: the operations endpoints to come (profiling, #16). It
	// implies no other scope, as a Kafka or Redis operator expects of an
	// administrative credential: a token that looks features up says
	// serve.
	Admin
)

// scopeNames is every scope in the order they are written.
var scopeNames = []struct {
	scope Scope
	name  string
}{{Ingest, "ingest"}, {Serve, "serve"}, {Metrics, "metrics"}, {Admin, "admin"}}

// ScopeNames returns the name of every scope, in the order they are
// written: ingest, serve, metrics, admin.
func ScopeNames() []string {
	out := make([]string, len(scopeNames))
	for i, s := range scopeNames {
		out[i] = s.name
	}
	return out
}

// String is the scope's name: "serve".
func (s Scope) String() string {
	for _, n := range scopeNames {
		if n.scope == s {
			return n.name
		}
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// Scopes is a set of scopes.
type Scopes uint8

// Has reports whether the set holds s.
func (ss Scopes) Has(s Scope) bool { return Scope(ss)&s != 0 }

// String is the set as the tokens file writes it: "ingest,serve", in the
// order of ScopeNames; "" for none.
func (ss Scopes) String() string {
	names := make([]string, 0, bits.OnesCount8(uint8(ss)))
	for _, n := range scopeNames {
		if ss.Has(n.scope) {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// ParseScopes reads a comma-separated list of scope names, such as
// "ingest,serve". It refuses an empty list, an empty name and an unknown
// one, suggesting the scope a misspelt name likely means. A name given
// twice counts once.
func ParseScopes(list string) (Scopes, error) {
	if list == "" {
		return 0, fmt.Errorf("no scope: give a comma-separated list of %s", strings.Join(ScopeNames(), ", "))
	}
	var ss Scopes
	for _, name := range strings.Split(list, ",") {
		s, err := parseScope(name)
		if err != nil {
			return 0, err
		}
		ss |= Scopes(s)
	}
	return ss, nil
}

// maxQuoted is the longest unknown scope name an error quotes: a longer
// one may be a token pasted in the wrong place, which must not be echoed.
const maxQuoted = 16

func parseScope(name string) (Scope, error) {
	for _, n := range scopeNames {
		if n.name == name {
			return n.scope, nil
		}
	}
	known := strings.Join(ScopeNames(), ", ")
	switch {
	case name == "":
		return 0, fmt.Errorf("empty scope name in the list (scopes: %s, comma-separated without spaces)", known)
	case len(name) > maxQuoted:
		return 0, fmt.Errorf("unknown scope of %d characters (scopes: %s)", len(name), known)
	}
	msg := fmt.Sprintf("unknown scope %q (scopes: %s)", name, known)
	if s := config.Suggest(name, ScopeNames()); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return 0, fmt.Errorf("%s", msg)
}
