package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpenLoopSchedule(t *testing.T) {
	o := OpenLoop{Rate: 4000, Duration: 1500 * time.Millisecond}
	if got := o.Count(); got != 6000 {
		t.Fatalf("Count = %d, want 6000", got)
	}
	for _, c := range []struct {
		i    int
		want time.Duration
	}{{0, 0}, {1, 250 * time.Microsecond}, {4000, time.Second}, {5999, 1499750 * time.Microsecond}} {
		if got := o.At(c.i); got != c.want {
			t.Errorf("At(%d) = %s, want %s", c.i, got, c.want)
		}
	}
}

func TestOpenLoopRunCountsEveryRequest(t *testing.T) {
	var calls atomic.Int64
	r := OpenLoop{Rate: 2000, Duration: 100 * time.Millisecond}.Run(context.Background(), func(ctx context.Context, i int) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		if i%10 == 0 {
			return errors.New("boom")
		}
		return nil
	})
	if r.Scheduled != 200 || r.Done != 200 || calls.Load() != 200 {
		t.Fatalf("scheduled %d, done %d, calls %d; want 200 each", r.Scheduled, r.Done, calls.Load())
	}
	if r.Errors != 20 || r.FirstError != "boom" {
		t.Errorf("errors %d (%q), want 20 (boom)", r.Errors, r.FirstError)
	}
	if r.Latency.N != 200 || r.Latency.P50 < 1 {
		t.Errorf("latency %+v: want 200 samples of at least 1 ms", r.Latency)
	}
	if r.Sustained(time.Second) {
		t.Error("a run with errors counts as sustained")
	}
}

// A target slower than the rate must show its queueing delay: latency runs
// from the intended send time, not from when a slot freed up.
func TestOpenLoopNoCoordinatedOmission(t *testing.T) {
	// 50 requests due 1 ms apart; one at a time, 10 ms each: the last one
	// is sent ~490 ms after it was due.
	r := OpenLoop{Rate: 1000, Duration: 50 * time.Millisecond, MaxInFlight: 1}.Run(context.Background(), func(ctx context.Context, i int) error {
		time.Sleep(10 * time.Millisecond)
		return nil
	})
	if r.Done != 50 {
		t.Fatalf("done %d, want 50", r.Done)
	}
	if r.Latency.Max < 400 {
		t.Errorf("max latency %.1f ms; a closed loop would say ~10 ms, the open loop must say ~500", r.Latency.Max)
	}
	if r.Latency.P50 < 200 {
		t.Errorf("p50 %.1f ms, want the queueing delay (~250 ms)", r.Latency.P50)
	}
	if r.Sustained(50 * time.Millisecond) {
		t.Error("a target that fell behind counts as sustained")
	}
}

func TestOpenLoopStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := OpenLoop{Rate: 100, Duration: 10 * time.Second}.Run(ctx, func(ctx context.Context, i int) error { return nil })
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %s after its context ended", took)
	}
	if r.Done >= r.Scheduled {
		t.Errorf("done %d of %d: the run should have stopped early", r.Done, r.Scheduled)
	}
}

func TestSummarize(t *testing.T) {
	h := newHist()
	for ms := 1; ms <= 1000; ms++ {
		record(h, time.Duration(ms)*time.Millisecond)
	}
	record(h, time.Hour) // clamped to the histogram's range, not lost
	l := Summarize(h)
	near := func(name string, got, want float64) {
		t.Helper()
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("%s = %.2f, want %.0f ± 1%%", name, got, want)
		}
	}
	near("p50", l.P50, 500)
	near("p90", l.P90, 900)
	near("p99", l.P99, 990)
	near("p99.9", l.P999, 1000)
	if l.N != 1001 || l.Max < 590_000 {
		t.Errorf("n %d, max %.0f ms: the hour-long sample must count, clamped to 10 minutes", l.N, l.Max)
	}
}

func TestSustained(t *testing.T) {
	ok := Result{Scheduled: 10, Done: 10, Latency: Latency{P99: 20}}
	for _, c := range []struct {
		name string
		r    Result
		want bool
	}{
		{"within slo", ok, true},
		{"p99 over slo", Result{Scheduled: 10, Done: 10, Latency: Latency{P99: 51}}, false},
		{"an error", Result{Scheduled: 10, Done: 10, Errors: 1, Latency: Latency{P99: 1}}, false},
		{"unanswered requests", Result{Scheduled: 10, Done: 9, Latency: Latency{P99: 1}}, false},
	} {
		if got := c.r.Sustained(50 * time.Millisecond); got != c.want {
			t.Errorf("%s: Sustained = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSearch(t *testing.T) {
	for _, c := range []struct {
		name   string
		s      Search
		limit  float64 // highest rate the fake target sustains
		want   float64
		trials []float64
	}{
		{"doubles then bisects", Search{Start: 1000, Cap: 64000, Refine: 3}, 7000, 7000, []float64{1000, 2000, 4000, 8000, 6000, 7000, 7500}},
		{"never fails up to the cap", Search{Start: 1000, Cap: 4000, Refine: 3}, 1e9, 4000, []float64{1000, 2000, 4000}},
		{"fails at the start", Search{Start: 1000, Cap: 4000, Refine: 2}, 300, 250, []float64{1000, 500, 250}},
		{"no refinement", Search{Start: 1000, Cap: 64000}, 5000, 4000, []float64{1000, 2000, 4000, 8000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, trials, err := c.s.Run(func(rate float64) (bool, float64, error) { return rate <= c.limit, rate / 1000, nil })
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("highest = %.0f, want %.0f", got, c.want)
			}
			var rates []float64
			for _, tr := range trials {
				rates = append(rates, tr.Rate)
				if tr.Pass != (tr.Rate <= c.limit) {
					t.Errorf("trial %.0f recorded pass=%v", tr.Rate, tr.Pass)
				}
			}
			if len(rates) != len(c.trials) {
				t.Fatalf("trials %v, want %v", rates, c.trials)
			}
			for i := range rates {
				if rates[i] != c.trials[i] {
					t.Fatalf("trials %v, want %v", rates, c.trials)
				}
			}
		})
	}
}

func TestSearchingTakesTurns(t *testing.T) {
	a, b := Search{Start: 1000, Cap: 8000, Refine: 1}.Begin(), Search{Start: 1000, Cap: 8000, Refine: 1}.Begin()
	limits := map[*Searching]float64{a: 1500, b: 5000}
	var order []string
	for {
		progressed := false
		for _, st := range []*Searching{a, b} {
			if rate, ok := st.Next(); ok {
				order = append(order, fmt.Sprintf("%.0f", rate))
				st.Record(rate <= limits[st], 1)
				progressed = true
			}
		}
		if !progressed {
			break
		}
	}
	if a.Best() != 1500 || b.Best() != 4000 {
		t.Errorf("best %v and %v, want 1500 and 4000", a.Best(), b.Best())
	}
	if got := strings.Join(order, " "); got != "1000 1000 2000 2000 1500 4000 8000 6000" {
		t.Errorf("turns %s", got)
	}
}

func TestSearchStopsOnError(t *testing.T) {
	boom := errors.New("target gone")
	got, trials, err := Search{Start: 1000, Cap: 8000, Refine: 2}.Run(func(rate float64) (bool, float64, error) {
		if rate > 2000 {
			return false, 0, boom
		}
		return true, 1, nil
	})
	if !errors.Is(err, boom) || got != 2000 || len(trials) != 2 {
		t.Fatalf("got %.0f, %d trials, err %v; want 2000, 2, %v", got, len(trials), err, boom)
	}
}

func TestOpenLoopGraceCutsATargetThatFellBehind(t *testing.T) {
	start := time.Now()
	r := OpenLoop{Rate: 1000, Duration: 50 * time.Millisecond, MaxInFlight: 1, Grace: 50 * time.Millisecond}.Run(context.Background(),
		func(ctx context.Context, i int) error {
			select {
			case <-time.After(20 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("run took %s; the grace should have ended it after ~100 ms", took)
	}
	if !r.Cut || r.Done >= r.Scheduled || r.Sustained(time.Second) {
		t.Errorf("cut %v, done %d of %d: want a cut, unsustained run", r.Cut, r.Done, r.Scheduled)
	}
	if r.Latency.Max < 80 {
		t.Errorf("max latency %.1f ms: the cancelled request waited ~100 ms", r.Latency.Max)
	}
}
