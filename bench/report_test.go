package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGoalJudge(t *testing.T) {
	for _, c := range []struct {
		name         string
		goal         Goal
		value, limit float64
		pass         bool
		miss         string
	}{
		{"throughput ratio met", Goal{RatioAtLeast, 0.8}, 9000, 10000, true, ""},
		{"throughput ratio exactly met", Goal{RatioAtLeast, 0.5}, 50, 100, true, ""},
		{"throughput ratio missed", Goal{RatioAtLeast, 0.8}, 6000, 10000, false, "ratio 0.6 against ≥ 0.8: 25% short"},
		{"latency ratio met", Goal{RatioAtMost, 1.5}, 3, 2.5, true, ""},
		{"latency ratio missed", Goal{RatioAtMost, 2}, 9, 3, false, "ratio 3 against ≤ 2: 50% over"},
		{"absolute floor missed", Goal{AtLeast, 100_000}, 80_000, 0, false, "value 80000 against ≥ 100000: 20% short"},
		{"absolute ceiling met", Goal{AtMost, 100}, 99.9, 0, true, ""},
		{"absolute ceiling missed", Goal{AtMost, 100}, 250, 0, false, "value 250 against ≤ 100: 150% over"},
		{"no limit measured", Goal{RatioAtLeast, 0.8}, 100, 0, false, "no limit measured"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pass, miss := c.goal.Judge(c.value, c.limit)
			if pass != c.pass || miss != c.miss {
				t.Errorf("Judge(%v, %v) = %v, %q; want %v, %q", c.value, c.limit, pass, miss, c.pass, c.miss)
			}
		})
	}
}

func TestGoalString(t *testing.T) {
	for _, c := range []struct {
		g    Goal
		unit string
		want string
	}{
		{Goal{RatioAtLeast, 0.8}, "req/s", "≥ 0.8× limit"},
		{Goal{RatioAtMost, 1.5}, "ms", "≤ 1.5× limit"},
		{Goal{AtLeast, 100_000}, "events/s", "≥ 100000 events/s"},
		{Goal{AtMost, 100}, "ms", "≤ 100 ms"},
	} {
		if got := c.g.String(c.unit); got != c.want {
			t.Errorf("%+v.String = %q, want %q", c.g, got, c.want)
		}
	}
}

func TestReportAddJudgesRows(t *testing.T) {
	var r Report
	r.Add(Row{Section: "s", Figure: "no limit", Unit: "MiB", Value: 12})
	r.Add(Row{Section: "s", Figure: "limit, no goal", Unit: "ms", Value: 3, LimitName: "floor", Limit: 2})
	r.Add(Row{Section: "s", Figure: "missed", Unit: "req/s", Value: 5000, LimitName: "floor", Limit: 10000, Goal: &Goal{RatioAtLeast, 0.8}})
	r.Add(Row{Section: "s", Figure: "met", Unit: "ms", Value: 40, Goal: &Goal{AtMost, 100}})
	if r.Rows[0].Ratio != 0 || r.Rows[0].Pass != nil {
		t.Errorf("row without limit or goal: ratio %v, pass %v", r.Rows[0].Ratio, r.Rows[0].Pass)
	}
	if r.Rows[1].Ratio != 1.5 || r.Rows[1].Pass != nil {
		t.Errorf("row with limit: ratio %v, want 1.5 and no verdict", r.Rows[1].Ratio)
	}
	if r.Rows[2].Ratio != 0.5 || r.Rows[2].Pass == nil || *r.Rows[2].Pass {
		t.Errorf("missed row: ratio %v, pass %v", r.Rows[2].Ratio, r.Rows[2].Pass)
	}
	if m := r.Misses(); len(m) != 1 || m[0].Figure != "missed" {
		t.Errorf("Misses = %+v, want the one missed row", m)
	}
}

func TestReportWrite(t *testing.T) {
	r := &Report{Date: "2030-01-02", Machine: Machine{CPUs: 2, Go: "go1.26"}}
	r.Add(Row{Section: "serve", Figure: "highest rate sustained", Unit: "req/s", Value: 12345, LimitName: "floor handler", Limit: 20000,
		Goal: &Goal{RatioAtLeast, 0.8}, Profile: "serve-max"})
	r.Details = append(r.Details, Detail{Title: "Runs", Header: []string{"a", "b"}, Rows: [][]string{{"1", "2"}}})
	dir := t.TempDir()
	paths, err := r.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || paths[0] != filepath.Join(dir, "2030-01-02.md") {
		t.Fatalf("paths %v", paths)
	}
	md, _ := os.ReadFile(paths[0])
	for _, want := range []string{
		"| section | figure | value | limit | limit value | ratio | goal | result |",
		"| serve | highest rate sustained | 12\u202f345 req/s | floor handler | 20\u202f000 req/s | 0.617 | ≥ 0.8× limit | **miss**: ratio 0.617 against ≥ 0.8: 23% short |",
		"Goals met: 0 of 1.",
		"## Goals missed",
		"(profiles: `serve-max`)",
		"## Runs\n\n| a | b |\n|---|---|\n| 1 | 2 |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	var back Report
	js, _ := os.ReadFile(paths[1])
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 1 || back.Rows[0].Pass == nil || *back.Rows[0].Pass || back.Rows[0].Ratio != r.Rows[0].Ratio {
		t.Errorf("JSON rows %+v", back.Rows)
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want string
	}{{0, "0"}, {0.01234, "0.0123"}, {1.234, "1.23"}, {12.34, "12.3"}, {123.4, "123"}, {98765.4, "98765"}} {
		if got := num(c.x); got != c.want {
			t.Errorf("num(%v) = %q, want %q", c.x, got, c.want)
		}
	}
	if got := fmtValue(1234567, "events/s"); got != "1\u202f234\u202f567 events/s" {
		t.Errorf("fmtValue = %q", got)
	}
	if got, want := rateName(5000), "5k"; got != want {
		t.Errorf("rateName(5000) = %q", got)
	}
	if got := entName(1_000_000); got != "1M" {
		t.Errorf("entName(1e6) = %q", got)
	}
}

func TestLargestGap(t *testing.T) {
	var r Report
	if _, ok := r.LargestGap(); ok {
		t.Fatal("a report without misses has no gap")
	}
	r.Add(Row{Figure: "met", Value: 1, Goal: &Goal{AtMost, 100}})
	r.Add(Row{Figure: "twice too slow", Value: 5000, LimitName: "l", Limit: 10000, Goal: &Goal{RatioAtLeast, 1}})
	r.Add(Row{Figure: "five times too late", Value: 500, Goal: &Goal{AtMost, 100}})
	r.Add(Row{Figure: "a bit over", Value: 3.3, LimitName: "l", Limit: 2, Goal: &Goal{RatioAtMost, 1.5}})
	g, ok := r.LargestGap()
	if !ok || g.Figure != "five times too late" {
		t.Errorf("largest gap %q, want the freshness-like miss", g.Figure)
	}
	if got := (Goal{RatioAtLeast, 0.8}).Gap(4000, 10000); got != 2 {
		t.Errorf("Gap = %v, want 2", got)
	}
}
