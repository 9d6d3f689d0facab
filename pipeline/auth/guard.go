package auth

// guard.go owns the tokens in force: loading them, reloading them without
// a restart, and the middleware that checks requests against them.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/freshet-ml/freshet/pipeline/httpx"
)

// DefaultPoll is how often Run reads the tokens file for changes.
const DefaultPoll = time.Second

// Guard holds the tokens in force and checks requests against them. A
// nil *Guard is valid and means no tokens: every route is open, as
// without FRESHET_TOKENS. It is safe for concurrent use.
type Guard struct {
	path string
	log  *slog.Logger
	poll time.Duration
	set  atomic.Pointer[Set]

	// mu serializes reloads; sum is the SHA-256 of the content last
	// read, good or bad, so that a file that did not change is not
	// parsed (or its error logged) again.
	mu  sync.Mutex
	sum [sha256.Size]byte

	// budgets are the rates of the tokens with rate= (Spend).
	budgets budgets
}

// Option changes how Open builds a Guard.
type Option func(*Guard)

// PollEvery makes Run read the file every d instead of every DefaultPoll.
func PollEvery(d time.Duration) Option { return func(g *Guard) { g.poll = d } }

// Open loads the tokens file at path. Its error, for a file that cannot
// be read or is malformed (naming every bad line), is a start-up error.
// A nil log discards.
func Open(path string, log *slog.Logger, opts ...Option) (*Guard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &readError{err}
	}
	set, err := Parse(path, b)
	if err != nil {
		return nil, err
	}
	return newGuard(path, b, set, log, opts), nil
}

func newGuard(path string, content []byte, set *Set, log *slog.Logger, opts []Option) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{path: path, log: log, poll: DefaultPoll, sum: sha256.Sum256(content)}
	for _, o := range opts {
		o(g)
	}
	g.set.Store(set)
	return g
}

// Path is the tokens file's path; "" without tokens.
func (g *Guard) Path() string {
	if g == nil {
		return ""
	}
	return g.path
}

// Tokens is the set in force; nil without tokens.
func (g *Guard) Tokens() *Set {
	if g == nil {
		return nil
	}
	return g.set.Load()
}

// Reload reads the file again and, when its content changed and parses,
// puts its tokens in force. A file that cannot be read or is malformed
// leaves the tokens in force as they were; the error says why. A
// malformed content is reported once: read again unchanged, it is no
// change and no error, so a file left malformed is not reported every
// poll. It reports whether the tokens changed.
func (g *Guard) Reload() (bool, error) {
	b, err := os.ReadFile(g.path)
	if err != nil {
		return false, &readError{err}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	sum := sha256.Sum256(b)
	if sum == g.sum {
		return false, nil
	}
	g.sum = sum
	set, err := Parse(g.path, b)
	if err != nil {
		return false, err
	}
	g.set.Store(set)
	return true, nil
}

// Run keeps the tokens in force in step with the file until ctx ends: it
// reads the file every poll interval (a second by default) and at once on
// SIGHUP, and logs each change (the file's path and the token names,
// never a token) and each error. It returns nil when ctx ends; on a nil
// Guard it returns at once.
func (g *Guard) Run(ctx context.Context) error {
	if g == nil {
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(g.poll)
	defer t.Stop()
	var lastReadErr string // a missing file is reported once, not every poll
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-hup:
			g.log.Info("SIGHUP: reading the tokens file", "tokens_file", g.path)
		}
		changed, err := g.Reload()
		var re *readError
		switch {
		case errors.As(err, &re):
			// A file being replaced can be missing for an instant:
			// say so once, not every poll, and keep the tokens.
			if err.Error() != lastReadErr {
				g.log.Error("cannot read the tokens file; the tokens in force stay", "tokens_file", g.path, "error", err)
				lastReadErr = err.Error()
			}
			continue
		case err != nil:
			g.log.Error("malformed tokens file; the tokens in force stay", "tokens_file", g.path, "error", err)
		case changed:
			set := g.set.Load()
			g.log.Info("tokens reloaded", "tokens_file", g.path, "tokens", set.Len(), "names", strings.Join(set.names(), ","))
		}
		lastReadErr = ""
	}
}

// readError is a tokens file that cannot be read.
type readError struct{ err error }

func (e *readError) Error() string { return "read tokens file: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// names returns every token's name, each once, in file order.
func (s *Set) names() []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range s.tokens {
		if !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t.Name)
		}
	}
	return out
}

// Require returns the middleware of a route that needs scope: a request
// without a token, with a malformed Authorization header or with an
// unknown token is answered 401 with WWW-Authenticate: Bearer; one whose
// token lacks scope, 403 naming the scope. Both answer in JSON
// (httpx.Error). An admitted request goes on to the route with the
// token's name recorded on its httpx.Principal, for the access log and
// the request metrics. On a nil Guard (no tokens) it returns the route
// unchanged.
func (g *Guard) Require(scope Scope) func(http.Handler) http.Handler {
	if g == nil {
		return func(h http.Handler) http.Handler { return h }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, problem := bearer(r.Header)
			if problem != "" {
				unauthorized(w, problem)
				return
			}
			t := g.set.Load().Lookup(token)
			if t == nil {
				unauthorized(w, "unknown token: it is not in the server's tokens file (revoked, or mistyped)")
				return
			}
			// The observers' Principal when they attached one, else one
			// of the route's own: Spend needs it.
			ctx, p := httpx.WithPrincipal(r.Context())
			p.Token, p.Rate = t.Name, t.Rate
			if ctx != r.Context() {
				r = r.WithContext(ctx)
			}
			if !t.Scopes.Has(scope) {
				held := t.Scopes.String()
				httpx.Error(w, http.StatusForbidden, fmt.Sprintf("token %q lacks the %q scope this route needs (it has: %s)", t.Name, scope.String(), held))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// bearer returns the token of an Authorization: Bearer TOKEN header, or
// why there is none. The reason never quotes the header: it may hold a
// token.
func bearer(h http.Header) (token, problem string) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", `missing token: send the header "Authorization: Bearer TOKEN"`
	case len(values) > 1:
		return "", "malformed Authorization header: sent more than once"
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimSpace(rest)
	switch {
	case !strings.EqualFold(scheme, "Bearer"):
		return "", `malformed Authorization header: want "Bearer TOKEN"`
	case token == "":
		return "", `malformed Authorization header: no token after "Bearer"`
	case strings.ContainsAny(token, " \t"):
		return "", `malformed Authorization header: want "Bearer TOKEN", one token without spaces`
	}
	return token, ""
}

// unauthorized answers 401 with the challenge of RFC 6750.
func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	httpx.Error(w, http.StatusUnauthorized, msg)
}
