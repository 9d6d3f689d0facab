package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Request is one operation of an open-loop run: an HTTP request or a Redis
// read. i numbers the requests of a run from 0. An error counts the request
// as failed; its latency is recorded all the same.
type Request func(ctx context.Context, i int) error

// OpenLoop sends requests on a fixed clock, whatever the answers: request i
// is due at Start + i/Rate. Latency is measured from that intended time, not
// from when the request was actually sent, so a target (or a load generator)
// that falls behind shows its queueing delay instead of hiding it
// (coordinated omission).
type OpenLoop struct {
	Rate     float64       // requests per second
	Duration time.Duration // how long requests are scheduled
	// MaxInFlight bounds concurrent requests; when it is reached, the next
	// request waits for a slot, and its wait counts in its latency. 0
	// means 1024.
	MaxInFlight int
	// Grace, when positive, ends the run Grace after its last request was
	// due: a target that fell that far behind is not waited for. Requests
	// still unsent are not counted as done; those in flight are cancelled
	// and count as errors, with their latency so far (a lower bound).
	Grace time.Duration
}

// Count is the number of requests the run schedules.
func (o OpenLoop) Count() int {
	return int(math.Round(o.Rate * o.Duration.Seconds()))
}

// At is the intended send time of request i, from the start of the run.
func (o OpenLoop) At(i int) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / o.Rate)
}

// Result is what an open-loop run measured.
type Result struct {
	Rate      float64       `json:"rate"`
	Duration  time.Duration `json:"-"`
	Scheduled int64         `json:"scheduled"`
	Done      int64         `json:"done"`
	Errors    int64         `json:"errors"`
	// FirstError is the text of the first failed request.
	FirstError string `json:"first_error,omitempty"`
	// Cut says the run ended before every request was answered: the
	// target fell behind by more than the grace, or ctx ended.
	Cut bool `json:"cut,omitempty"`
	// Elapsed runs from the first intended send to the last answer.
	Elapsed time.Duration `json:"-"`
	// Latency summarizes the histogram.
	Latency Latency `json:"latency_ms"`
	// Hist holds every latency in microseconds.
	Hist *hdrhistogram.Histogram `json:"-"`
}

// Latency is a latency distribution's percentiles, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	N    int64   `json:"n"`
}

// newHist returns a histogram of microseconds from 1 µs to 10 minutes with
// three significant digits.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

// record adds d to h, clamped to h's range.
func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := max(d.Microseconds(), 1)
	if err := h.RecordValue(us); err != nil {
		_ = h.RecordValue(h.HighestTrackableValue())
	}
}

// Summarize reads the percentiles of a histogram of microseconds.
func Summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return Latency{P50: ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9), Max: float64(h.Max()) / 1000, N: h.TotalCount()}
}

// Run sends o.Count() requests through do on o's clock and waits for every
// answer (or ctx's end).
func (o OpenLoop) Run(ctx context.Context, do Request) Result {
	n := o.Count()
	inflight := o.MaxInFlight
	if inflight <= 0 {
		inflight = 1024
	}
	res := Result{Rate: o.Rate, Duration: o.Duration, Scheduled: int64(n), Hist: newHist()}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		done     atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Pointer[string]
		last     atomic.Int64 // latest answer, ns after start
	)
	slots := make(chan struct{}, inflight)
	start := time.Now().Add(2 * time.Millisecond)
	if o.Grace > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(o.Duration+o.Grace))
		defer cancel()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(o.At(i))
		if d := time.Until(due); d > 0 {
			sleep(ctx, d)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			err := do(ctx, i)
			now := time.Now()
			<-slots
			lat := now.Sub(due)
			mu.Lock()
			record(res.Hist, lat)
			mu.Unlock()
			done.Add(1)
			if err != nil {
				if errs.Add(1) == 1 {
					s := err.Error()
					firstErr.Store(&s)
				}
			}
			for t := int64(now.Sub(start)); ; {
				l := last.Load()
				if t <= l || last.CompareAndSwap(l, t) {
					break
				}
			}
		}(i, due)
	}
	wg.Wait()
	res.Done, res.Errors, res.Elapsed = done.Load(), errs.Load(), time.Duration(last.Load())
	res.Cut = res.Done < res.Scheduled || (o.Grace > 0 && res.Elapsed > o.Duration+o.Grace)
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	res.Latency = Summarize(res.Hist)
	return res
}

// sleep waits d or until ctx ends. Go's timers wake a little late; the
// lateness is part of the measured latency, as it should be.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Sustained reports whether a run kept up with its rate: every request
// answered without error and the 99th percentile, measured from the
// intended send times, within slo. A target that falls behind queues
// requests, and their delay grows through the run until p99 passes slo.
func (r Result) Sustained(slo time.Duration) bool {
	return r.Errors == 0 && r.Done == r.Scheduled && r.Latency.P99 <= float64(slo)/float64(time.Millisecond)
}

// Trial is one rate tried by SearchMax.
type Trial struct {
	Rate float64 `json:"rate"`
	Pass bool    `json:"sustained"`
	P99  float64 `json:"p99_ms"`
}

// Search finds the highest rate a target sustains: it starts at Start and
// doubles the rate until a trial fails or Cap is passed, then bisects
// between the last rate sustained and the first one not, Refine times.
type Search struct {
	Start, Cap float64
	Refine     int
}

// Run returns the highest rate that passed (0 if none did) and every trial
// in the order tried. try runs the target at a rate and says whether it
// sustained it, and its p99 in ms.
func (s Search) Run(try func(rate float64) (pass bool, p99 float64, err error)) (float64, []Trial, error) {
	st := s.Begin()
	for {
		rate, ok := st.Next()
		if !ok {
			return st.Best(), st.Trials, nil
		}
		pass, p99, err := try(rate)
		if err != nil {
			return st.Best(), st.Trials, fmt.Errorf("at %.0f/s: %w", rate, err)
		}
		st.Record(pass, p99)
	}
}

// Searching is the state of one Search, advanced a trial at a time, so that
// the searches of several targets can take turns: a burst of load from
// elsewhere on the machine then falls on all of them alike.
type Searching struct {
	s      Search
	lo, hi float64 // highest passed, lowest failed (0: none yet)
	next   float64
	refine int
	done   bool
	Trials []Trial
}

// Begin starts a search.
func (s Search) Begin() *Searching { return &Searching{s: s, next: s.Start} }

// Next returns the rate to try next, or false when the search is over.
func (st *Searching) Next() (float64, bool) {
	if st.done {
		return 0, false
	}
	return st.next, true
}

// Record takes the outcome of the trial at the rate Next returned.
func (st *Searching) Record(pass bool, p99 float64) {
	rate := st.next
	st.Trials = append(st.Trials, Trial{Rate: rate, Pass: pass, P99: p99})
	if pass {
		st.lo = rate
	} else {
		st.hi = rate
	}
	if st.hi == 0 { // still doubling
		if st.next = rate * 2; st.next > st.s.Cap {
			st.done = true
		}
		return
	}
	if st.refine >= st.s.Refine {
		st.done = true
		return
	}
	st.refine++
	mid := math.Round((st.lo + st.hi) / 2)
	if mid <= st.lo || mid >= st.hi {
		st.done = true
		return
	}
	st.next = mid
}

// Best is the highest rate sustained so far.
func (st *Searching) Best() float64 { return st.lo }
