package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// promHist is a Prometheus histogram summed over its label sets.
type promHist struct {
	Sum, Count float64
	// Buckets maps each upper bound to its cumulative count.
	Buckets map[float64]float64
}

// parseHistograms reads the histograms named in want from Prometheus text
// exposition format, summing each over its label sets.
func parseHistograms(r io.Reader, want ...string) (map[string]*promHist, error) {
	out := map[string]*promHist{}
	for _, w := range want {
		out[w] = &promHist{Buckets: map[float64]float64{}}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		labels := ""
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			labels, rest = rest[:i], rest[i+1:]
		} else {
			name, rest, _ = strings.Cut(line, " ")
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		for _, w := range want {
			h := out[w]
			switch name {
			case w + "_sum":
				h.Sum += v
			case w + "_count":
				h.Count += v
			case w + "_bucket":
				le, ok := label(labels, "le")
				if !ok {
					continue
				}
				bound, err := strconv.ParseFloat(le, 64)
				if err != nil {
					continue
				}
				h.Buckets[bound] += v
			}
		}
	}
	return out, sc.Err()
}

// label returns a label's value from `a="x",le="0.5"`.
func label(labels, name string) (string, bool) {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == name {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// Quantile estimates the q-quantile (0..1) by linear interpolation within
// the bucket holding it, as Prometheus's histogram_quantile does. It returns
// NaN for an empty histogram.
func (h *promHist) Quantile(q float64) float64 {
	if h == nil || h.Count == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h.Buckets))
	for b := range h.Buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	rank := q * h.Count
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		c := h.Buckets[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound // beyond the last finite bucket
			}
			if c == prevCount {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b, c
	}
	return prevBound
}

// Mean is Sum/Count, or NaN.
func (h *promHist) Mean() float64 {
	if h == nil || h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / h.Count
}

// scrape reads a service's /metrics histograms.
func (b *bench) scrape(ctx context.Context, p *Proc, want ...string) (map[string]*promHist, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %d", p.Name, resp.StatusCode)
	}
	return parseHistograms(resp.Body, want...)
}
