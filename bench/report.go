package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GoalKind says how a figure is judged.
type GoalKind string

// The kinds of goal: a ratio of the figure to its limit, or the figure
// itself, bounded from below or above.
const (
	RatioAtLeast GoalKind = "ratio>="
	RatioAtMost  GoalKind = "ratio<="
	AtLeast      GoalKind = ">="
	AtMost       GoalKind = "<="
)

// Goal is a bound a figure must meet.
type Goal struct {
	Kind  GoalKind `json:"kind"`
	Bound float64  `json:"bound"`
}

// String reads like the goals: "≥ 0.8× limit", "≤ 100 ms".
func (g Goal) String(unit string) string {
	switch g.Kind {
	case RatioAtLeast:
		return fmt.Sprintf("≥ %s× limit", num(g.Bound))
	case RatioAtMost:
		return fmt.Sprintf("≤ %s× limit", num(g.Bound))
	case AtLeast:
		return fmt.Sprintf("≥ %s %s", num(g.Bound), unit)
	case AtMost:
		return fmt.Sprintf("≤ %s %s", num(g.Bound), unit)
	}
	return ""
}

// Judge says whether value (and its ratio to limit, for ratio goals) meets
// the goal, and when it does not, by how much it misses, relative to the
// bound: "ratio 0.62 against ≥ 0.8: 23% short".
func (g Goal) Judge(value, limit float64) (pass bool, miss string) {
	x := value
	what := "value"
	if g.Kind == RatioAtLeast || g.Kind == RatioAtMost {
		if limit <= 0 || math.IsNaN(limit) {
			return false, "no limit measured"
		}
		x, what = value/limit, "ratio"
	}
	switch g.Kind {
	case RatioAtLeast, AtLeast:
		if x >= g.Bound {
			return true, ""
		}
		return false, fmt.Sprintf("%s %s against ≥ %s: %.0f%% short", what, num(x), num(g.Bound), 100*(1-x/g.Bound))
	case RatioAtMost, AtMost:
		if x <= g.Bound {
			return true, ""
		}
		return false, fmt.Sprintf("%s %s against ≤ %s: %.0f%% over", what, num(x), num(g.Bound), 100*(x/g.Bound-1))
	}
	return false, "unknown goal"
}

// Row is one line of the report's table: a figure, the limit it is set
// beside, their ratio, and its goal if it has one.
type Row struct {
	Section string  `json:"section"`
	Figure  string  `json:"figure"`
	Unit    string  `json:"unit"`
	Value   float64 `json:"value"`
	// LimitName says what the limit is; empty when the figure has none.
	LimitName string  `json:"limit,omitempty"`
	Limit     float64 `json:"limit_value,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"`
	Goal      *Goal   `json:"goal,omitempty"`
	Pass      *bool   `json:"pass,omitempty"`
	Miss      string  `json:"miss,omitempty"`
	Note      string  `json:"note,omitempty"`
	// Profile names the phase whose profiles explain a miss.
	Profile string `json:"profile,omitempty"`
}

// judge fills the ratio and the verdict from the value, limit and goal.
func (r *Row) judge() {
	if r.LimitName != "" && r.Limit > 0 {
		r.Ratio = r.Value / r.Limit
	}
	if r.Goal != nil {
		pass, miss := r.Goal.Judge(r.Value, r.Limit)
		r.Pass, r.Miss = &pass, miss
	}
}

// Report is everything a run writes: the table, the details behind it and
// the machine it ran on.
type Report struct {
	Date     string    `json:"date"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Short    bool      `json:"short"`
	Machine  Machine   `json:"machine"`
	Rows     []Row     `json:"rows"`
	Details  []Detail  `json:"details"`
	Notes    []string  `json:"notes,omitempty"`
	Profiles []string  `json:"profiles,omitempty"`
	// Broken lists the checks that failed: the pipeline did not work.
	Broken []string `json:"broken,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPU       string `json:"cpu,omitempty"`
	MemoryGiB int    `json:"memory_gib"`
	Go        string `json:"go"`
	Redis     string `json:"redis,omitempty"`
	Kafka     string `json:"kafka"`
	// LoadAverage is the one-minute load average when the run started.
	LoadAverage float64 `json:"load_average"`
}

// Detail is a titled table of the measurements behind the rows.
type Detail struct {
	Title  string     `json:"title"`
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
}

// Add judges a row and appends it.
func (r *Report) Add(row Row) {
	row.judge()
	r.Rows = append(r.Rows, row)
}

// Misses returns the rows whose goal was missed.
func (r *Report) Misses() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Pass != nil && !*row.Pass {
			out = append(out, row)
		}
	}
	return out
}

// Gap is how far a value is from its goal, as a factor ≥ 1: 5 means five
// times too slow (or too late); 1 means met.
func (g Goal) Gap(value, limit float64) float64 {
	x := value
	if g.Kind == RatioAtLeast || g.Kind == RatioAtMost {
		if limit <= 0 {
			return math.Inf(1)
		}
		x = value / limit
	}
	switch g.Kind {
	case RatioAtLeast, AtLeast:
		if x <= 0 {
			return math.Inf(1)
		}
		return max(1, g.Bound/x)
	default:
		return max(1, x/g.Bound)
	}
}

// LargestGap returns the missed row farthest from its goal.
func (r *Report) LargestGap() (Row, bool) {
	var best Row
	worst := 1.0
	for _, row := range r.Misses() {
		if g := row.Goal.Gap(row.Value, row.Limit); g > worst {
			best, worst = row, g
		}
	}
	return best, worst > 1
}

// Write writes dir/<date>.json and dir/<date>.md and returns their paths.
func (r *Report) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	base := filepath.Join(dir, r.Date)
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(base+".md", []byte(r.Markdown()), 0o644); err != nil {
		return nil, fmt.Errorf("write report: %w", err)
	}
	return []string{base + ".md", base + ".json"}, nil
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	mode := "full run"
	if r.Short {
		mode = "short run (-short: smaller workload, shorter phases; timings are indicative only)"
	}
	fmt.Fprintf(&b, "# freshet benchmarks, %s\n\n", r.Date)
	fmt.Fprintf(&b, "`go run ./bench`: %s, %.0f s, on %d CPUs (%s), %d GiB, %s, Redis %s, Kafka %s; load average %.2f at the start. ", mode, r.Seconds,
		r.Machine.CPUs, r.Machine.CPU, r.Machine.MemoryGiB, r.Machine.Go, r.Machine.Redis, r.Machine.Kafka, r.Machine.LoadAverage)
	b.WriteString("The load generator, Redis, Kafka and the services share these CPUs, so absolute figures are noisy; " +
		"each limit was measured in the same run, the same way, and the ratio is what counts.\n\n")
	if len(r.Broken) > 0 {
		b.WriteString("**Broken:** the pipeline failed these checks:\n\n")
		for _, s := range r.Broken {
			fmt.Fprintf(&b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	passed, judged := 0, 0
	for _, row := range r.Rows {
		if row.Pass != nil {
			judged++
			if *row.Pass {
				passed++
			}
		}
	}
	fmt.Fprintf(&b, "Goals met: %d of %d.", passed, judged)
	if g, ok := r.LargestGap(); ok {
		fmt.Fprintf(&b, " Largest gap: %s, %s (%s).", g.Section, g.Figure, g.Miss)
	}
	b.WriteString("\n\n")
	b.WriteString("| section | figure | value | limit | limit value | ratio | goal | result |\n")
	b.WriteString("|---|---|---:|---|---:|---:|---|---|\n")
	for _, row := range r.Rows {
		limit, lval, ratio := "—", "", ""
		if row.LimitName != "" {
			limit, lval = row.LimitName, fmtValue(row.Limit, row.Unit)
			if row.Ratio > 0 {
				ratio = num(row.Ratio)
			}
		}
		goal, result := "", ""
		if row.Goal != nil {
			goal = row.Goal.String(row.Unit)
			result = "pass"
			if !*row.Pass {
				result = "**miss**: " + row.Miss
			}
		}
		if row.Note != "" {
			result = strings.TrimSpace(result + " " + row.Note)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Section, row.Figure, fmtValue(row.Value, row.Unit), limit, lval, ratio, goal, result)
	}
	b.WriteString("\n")
	if misses := r.Misses(); len(misses) > 0 {
		b.WriteString("## Goals missed\n\n")
		for _, m := range misses {
			fmt.Fprintf(&b, "- %s, %s: %s", m.Section, m.Figure, m.Miss)
			if m.Profile != "" {
				fmt.Fprintf(&b, " (profiles: `%s`)", m.Profile)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	if len(r.Profiles) > 0 {
		b.WriteString("## Profiles\n\n")
		for _, p := range r.Profiles {
			fmt.Fprintf(&b, "- `%s`\n", p)
		}
		b.WriteString("\n")
	}
	for _, d := range r.Details {
		fmt.Fprintf(&b, "## %s\n\n", d.Title)
		b.WriteString("| " + strings.Join(d.Header, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat("---|", len(d.Header)) + "\n")
		for _, row := range d.Rows {
			b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// num formats a number with three significant digits, without exponent for
// ordinary magnitudes: 0.823, 1.5, 12.3, 4560, 1234567.
func num(x float64) string {
	if math.Abs(x) >= 1000 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

// fmtValue formats a value with its unit, thousands separated for large
// throughputs.
func fmtValue(x float64, unit string) string {
	s := num(x)
	if math.Abs(x) >= 10000 {
		s = thousands(int64(math.Round(x)))
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// thousands writes n with a thin space every three digits: 1 234 567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
