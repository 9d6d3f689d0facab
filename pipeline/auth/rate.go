package auth

// rate.go owns the per-token event rates of ingest (rate= in the tokens
// file).

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/freshet-ml/freshet/pipeline/httpx"
)

// burst is how far ahead of its rate a token may send: a second's worth,
// so a client that batches once a second is never refused.
const burst = time.Second

// budgets is each token name's budget: when its events sent so far would
// all have been paid for at its rate (a GCRA-style theoretical arrival
// time). Keyed by name, so a token and its replacement share one, and a
// reload keeps them.
type budgets struct {
	mu   sync.Mutex
	paid map[string]time.Time
}

// Spend charges n events to the token of ctx's request (its
// httpx.Principal) and reports whether it may send them now, or how long
// to wait before trying again. A request is admitted whenever its token
// is no more than a second ahead of its rate, however many events it
// holds, and then puts the token that much further ahead: over any time T
// a token sends at most rate×T events, plus a second's worth and one
// request. A token without rate=, a request without a token, and a nil
// Guard are never refused.
func (g *Guard) Spend(ctx context.Context, n int) (ok bool, retryAfter time.Duration) {
	p := httpx.PrincipalOf(ctx)
	if g == nil || p == nil || p.Rate <= 0 || n <= 0 {
		return true, 0
	}
	return g.budgets.spend(p.Token, p.Rate, n, time.Now())
}

func (b *budgets) spend(name string, rate float64, n int, now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.paid == nil {
		b.paid = map[string]time.Time{}
	}
	paid := b.paid[name]
	if paid.Before(now) {
		paid = now
	}
	if ahead := paid.Sub(now); ahead > burst {
		return false, ahead - burst
	}
	cost := time.Duration(math.Min(float64(n)/rate*float64(time.Second), float64(24*time.Hour)))
	b.paid[name] = paid.Add(cost)
	return true, 0
}
