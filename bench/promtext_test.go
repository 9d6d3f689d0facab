package main

import (
	"math"
	"strings"
	"testing"
)

const metricsText = `# HELP x_seconds a histogram
# TYPE x_seconds histogram
x_seconds_bucket{topic="a",le="0.01"} 10
x_seconds_bucket{topic="a",le="0.1"} 90
x_seconds_bucket{topic="a",le="+Inf"} 100
x_seconds_sum{topic="a"} 4.5
x_seconds_count{topic="a"} 100
x_seconds_bucket{topic="b",le="0.01"} 0
x_seconds_bucket{topic="b",le="0.1"} 0
x_seconds_bucket{topic="b",le="+Inf"} 0
x_seconds_sum{topic="b"} 0
x_seconds_count{topic="b"} 0
other_total 7
`

func TestParseHistograms(t *testing.T) {
	hs, err := parseHistograms(strings.NewReader(metricsText), "x_seconds", "missing_seconds")
	if err != nil {
		t.Fatal(err)
	}
	h := hs["x_seconds"]
	if h.Count != 100 || h.Sum != 4.5 || len(h.Buckets) != 3 {
		t.Fatalf("parsed %+v", h)
	}
	if got := h.Quantile(0.5); math.Abs(got-0.055) > 1e-9 { // 50th of 100: 40 into the 80 of (0.01, 0.1]
		t.Errorf("p50 = %v, want 0.055", got)
	}
	if got := h.Quantile(0.05); math.Abs(got-0.005) > 1e-9 {
		t.Errorf("p5 = %v, want 0.005", got)
	}
	if got := h.Quantile(0.99); got != 0.1 { // in +Inf: the last finite bound
		t.Errorf("p99 = %v, want 0.1", got)
	}
	if got := h.Mean(); got != 0.045 {
		t.Errorf("mean = %v", got)
	}
	if !math.IsNaN(hs["missing_seconds"].Quantile(0.5)) {
		t.Error("an empty histogram has no quantile")
	}
}
