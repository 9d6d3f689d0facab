// Package retry is freshet's one way to wait between attempts at something
// that fails for a while: Kafka not up yet, Redis restarting, a rebalance.
// It owns the delays, not the decision to retry: callers loop, log, and ask
// a Backoff to wait.
package retry

import (
	"context"
	"time"
)

// Backoff doubles its delay after every wait, from First up to Max. The
// zero value waits 100ms, then doubles up to 5s, which is what every
// freshet loop uses. Not safe for concurrent use.
type Backoff struct {
	First time.Duration // first delay; 0 means 100ms
	Max   time.Duration // longest delay; 0 means 5s
	next  time.Duration
}

// Delay is how long the next Wait waits, for the caller's log line.
func (b *Backoff) Delay() time.Duration {
	if b.next == 0 {
		b.next = b.First
		if b.next <= 0 {
			b.next = 100 * time.Millisecond
		}
	}
	return b.next
}

// Wait waits Delay, then doubles it (up to Max). It returns ctx's error if
// ctx ends first, at once.
func (b *Backoff) Wait(ctx context.Context) error {
	d := b.Delay()
	limit := b.Max
	if limit <= 0 {
		limit = 5 * time.Second
	}
	b.next = min(2*d, max(limit, d))
	return Sleep(ctx, d)
}

// Sleep waits d, or returns ctx's error if ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Reset makes the next Wait wait First again: the thing worked.
func (b *Backoff) Reset() { b.next = 0 }
