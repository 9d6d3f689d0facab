// Package schemas loads and checks freshet's feature definitions: the event
// types that ingest accepts and the feature views that featurize computes and
// serve answers. All three services share one loaded Registry; nothing else in
// freshet parses the YAML.
//
// The package owns the definition format and its validation. It must not know
// about Kafka, Redis or HTTP.
package schemas

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// FieldType is the declared type of an event field.
type FieldType string

// The field types an event may declare.
const (
	String    FieldType = "string"
	Int       FieldType = "int"
	Float     FieldType = "float"
	Bool      FieldType = "bool"
	Timestamp FieldType = "timestamp"
)

// Numeric reports whether arithmetic (sum, mean, stddev) is defined on t.
func (t FieldType) Numeric() bool { return t == Int || t == Float }

// Ordered reports whether min and max are defined on t.
func (t FieldType) Ordered() bool { return t == Int || t == Float || t == Timestamp }

func (t FieldType) valid() bool {
	switch t {
	case String, Int, Float, Bool, Timestamp:
		return true
	}
	return false
}

// Agg names an aggregation.
type Agg string

// The aggregations a feature may use.
const (
	Count  Agg = "count"
	Sum    Agg = "sum"
	Mean   Agg = "mean"
	Min    Agg = "min"
	Max    Agg = "max"
	Stddev Agg = "stddev"
	Last   Agg = "last"
)

// Field is one declared field of an event.
type Field struct {
	Name     string
	Type     FieldType
	Required bool
	// Index is the field's position in Event.Fields; decoded events store
	// values by it.
	Index int
}

// Event is one event type: what ingest validates and publishes to its own topic.
type Event struct {
	Name string
	// Key is the field whose value becomes the Kafka message key.
	Key string
	// Timestamp is the field holding the event time.
	Timestamp string
	// Fields in declaration order.
	Fields []Field
	// ID optionally names a field that identifies an event: featurize then
	// ignores a second event with the same id within DedupeWindow.
	ID string
	// DedupeWindow in ms: how long an id is remembered, in event time.
	// Defaults to the largest window of the views on the event.
	DedupeWindow int64

	byName map[string]int
	pos    Pos
}

// Field returns the named field.
func (e *Event) Field(name string) (Field, bool) {
	i, ok := e.byName[name]
	if !ok {
		return Field{}, false
	}
	return e.Fields[i], true
}

// Feature is one windowed aggregation of a view.
type Feature struct {
	Name string
	Agg  Agg
	// Field is the aggregated event field; empty for a plain count.
	Field string
	// FieldType is the type of Field; empty for a plain count.
	FieldType FieldType
	// Window and Hop in milliseconds.
	Window, Hop int64
}

// View is a feature view: features of one entity computed from one event type.
type View struct {
	Name   string
	Source *Event
	// Entity is the event field identifying the entity the features describe.
	Entity string
	// MaxLateness in ms: events older than the partition's highest event
	// time minus this are dropped as late.
	MaxLateness int64
	// TTL in ms: how long an entity's state lives without updates.
	TTL int64
	// Features in declaration order.
	Features []Feature

	byName map[string]int
}

// Feature returns the named feature.
func (v *View) Feature(name string) (Feature, bool) {
	i, ok := v.byName[name]
	if !ok {
		return Feature{}, false
	}
	return v.Features[i], true
}

// MaxWindow is the largest window of the view in ms.
func (v *View) MaxWindow() int64 {
	var m int64
	for _, f := range v.Features {
		m = max(m, f.Window)
	}
	return m
}

// MaxHop is the largest hop of the view in ms.
func (v *View) MaxHop() int64 {
	var m int64
	for _, f := range v.Features {
		m = max(m, f.Hop)
	}
	return m
}

// Retention is how far before an entity's newest event lookups stay exact,
// in ms: the largest window plus the largest hop. Lookups as of an earlier
// time are not exact: the tiles they need have been dropped.
func (v *View) Retention() int64 { return v.MaxWindow() + v.MaxHop() }

// Registry is a loaded, checked set of definitions.
type Registry struct {
	Events map[string]*Event
	Views  map[string]*View
}

// EventNames returns the event names in sorted order.
func (r *Registry) EventNames() []string { return sortedKeys(r.Events) }

// ViewNames returns the view names in sorted order.
func (r *Registry) ViewNames() []string { return sortedKeys(r.Views) }

// ViewsOf returns the views computed from the named event, sorted by name.
func (r *Registry) ViewsOf(event string) []*View {
	var out []*View
	for _, name := range r.ViewNames() {
		if v := r.Views[name]; v.Source.Name == event {
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Pos is a place in a definition file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Problem is one thing wrong with the definitions.
type Problem struct {
	Pos
	// Key is the dotted path of the offending YAML key, e.g.
	// "feature_views.user_spend.features.amount_sum_24h.field".
	Key    string
	Reason string
}

func (p Problem) String() string {
	if p.Key == "" {
		return fmt.Sprintf("%s: %s", p.Pos, p.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", p.Pos, p.Key, p.Reason)
}

// Problems is every problem found while loading; it is the error Load returns.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d problem(s) in feature definitions:\n  %s", len(ps), strings.Join(lines, "\n  "))
}

// ParseDuration parses Go duration syntax extended with a "d" unit of 24h,
// as in "7d" or "1d12h". The result must be a positive whole number of
// milliseconds.
func ParseDuration(s string) (int64, error) {
	s = strings.TrimSpace(s)
	var total time.Duration
	rest := s
	// Peel off leading "<number>d" components; the remainder is Go syntax.
	for {
		i := strings.IndexByte(rest, 'd')
		if i < 0 {
			break
		}
		var days float64
		if _, err := fmt.Sscanf(rest[:i], "%g", &days); err != nil || strings.ContainsAny(rest[:i], "hmsunµ") {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		total += time.Duration(days * float64(24*time.Hour))
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		total += d
	}
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	if total%time.Millisecond != 0 {
		return 0, fmt.Errorf("duration %q is not a whole number of milliseconds", s)
	}
	return total.Milliseconds(), nil
}

// FormatDuration writes ms in the shortest form ParseDuration reads back.
func FormatDuration(ms int64) string {
	const day = 24 * 3600 * 1000
	if ms%day == 0 {
		return fmt.Sprintf("%dd", ms/day)
	}
	d := time.Duration(ms) * time.Millisecond
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// DefaultHop is the hop a feature gets when it declares none: the largest of
// 1d, 1h, 5m, 1m, 10s, 1s that is at most a twelfth of the window (so a
// window slides in at least 12 steps), and 1s for windows under 12s, capped
// at the window. 1h windows get 5m, 24h and 7d get 1h, 30d gets 1d, as in
// Chronon.
func DefaultHop(window int64) int64 {
	for _, h := range []int64{86_400_000, 3_600_000, 300_000, 60_000, 10_000, 1_000} {
		if h*12 <= window {
			return h
		}
	}
	return min(1_000, window)
}

// ValueType is the type of the feature's values: count is an int; sum, min,
// max and last keep the field's type; mean and stddev are floats.
func (f Feature) ValueType() FieldType {
	switch f.Agg {
	case Count:
		return Int
	case Mean, Stddev:
		return Float
	}
	return f.FieldType
}
