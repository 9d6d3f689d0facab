package registry

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/freshet-ml/freshet/schemas"
)

// Change kinds, of a view or a feature.
const (
	Unchanged = "unchanged"
	Added     = "added"
	Removed   = "removed"
	Changed   = "changed"
)

// FeatureChange is what happens to one feature.
type FeatureChange struct {
	Name   string   `json:"name"`
	Change string   `json:"change"`
	Def    string   `json:"definition"`     // as proposed (as deployed for a removed one)
	What   []string `json:"what,omitempty"` // the attributes changed, "window 1d -> 2d"
}

// ViewChange is what happens to one view.
type ViewChange struct {
	Name   string `json:"view"`
	Change string `json:"change"`
	// Source is the event type the view reads (as proposed, or as
	// deployed for a removed view).
	Source string `json:"source"`
	// Settings are the changed view settings, "ttl 8d -> 30d".
	Settings []string        `json:"settings,omitempty"`
	Features []FeatureChange `json:"features"`
	// Afresh says the view's online state starts empty and featurize
	// recomputes it from the earliest offsets Kafka retains, by itself (a
	// catch-up): a new view, or a changed tile layout (source, entity, a
	// new statistic or hop). Its features answer PENDING until caught up.
	// Recomputed says the same; Afresh keeps its name for the plans of
	// earlier versions.
	Afresh     bool `json:"state_starts_afresh"`
	Recomputed bool `json:"recomputed_from_kafka"`
	// NeedsMS is the history, before now, that a recomputed view needs
	// replayed for every feature to be exact now: its largest window
	// and hop.
	NeedsMS int64 `json:"needs_history_ms,omitempty"`
	// History is what Kafka retains of the view's source, for a view that
	// starts afresh; nil otherwise.
	History *History `json:"history,omitempty"`
}

// History is what a topic retains, against what a view needs.
type History struct {
	Topic    string `json:"topic"`
	Messages int64  `json:"messages"`
	// Complete says every partition still starts at offset 0: Kafka
	// retains all that was ever written, however short.
	Complete bool `json:"complete"`
	// Oldest is the earliest retained message's time; nil when the topic
	// is empty or missing.
	Oldest *time.Time `json:"oldest"`
	// Retained says a replay gives every feature its exact value now.
	Retained bool `json:"retained"`
}

// Diff compares the views of a deployed form with a proposed one, in view
// name order, features in name order.
func Diff(deployed, proposed Form) []ViewChange {
	var out []ViewChange
	for _, name := range sortedNames(deployed.Views, proposed.Views) {
		old, had := deployed.Views[name]
		cur, has := proposed.Views[name]
		vc := ViewChange{Name: name, Source: cur.Source}
		switch {
		case !had:
			vc.Change, vc.Afresh = Added, true
		case !has:
			vc.Change, vc.Source = Removed, old.Source
		}
		for _, f := range sortedNames(old.Features, cur.Features) {
			of, fhad := old.Features[f]
			nf, fhas := cur.Features[f]
			fc := FeatureChange{Name: f, Def: def(nf)}
			switch {
			case !fhad:
				fc.Change = Added
			case !fhas:
				fc.Change, fc.Def = Removed, def(of)
			case of == nf:
				fc.Change = Unchanged
			default:
				fc.Change, fc.What = Changed, featureWhat(of, nf)
			}
			vc.Features = append(vc.Features, fc)
		}
		if had && has {
			vc.Settings = settingsWhat(old, cur)
			switch {
			case !old.SameLayout(cur):
				vc.Change, vc.Afresh = Changed, true
			case len(vc.Settings) > 0:
				vc.Change = Changed
			default:
				vc.Change = Unchanged
			}
		}
		vc.Recompute(vc.Afresh, cur)
		out = append(out, vc)
	}
	return out
}

// Recompute says whether the view's state is recomputed from Kafka, and
// so how much history it needs (cur: the view as proposed). Diff judges
// by the definitions; `freshet plan` corrects it by the layouts the store
// keeps (a wider window within the tiles kept keeps the layout).
func (vc *ViewChange) Recompute(on bool, cur ViewForm) {
	vc.Afresh, vc.Recomputed, vc.NeedsMS = on, on, 0
	if !on {
		return
	}
	var w, h int64
	for _, f := range cur.Features {
		w, h = max(w, f.WindowMS), max(h, f.HopMS)
	}
	vc.NeedsMS = w + h
}

// def writes a feature's definition: "sum(amount: float) over 1d, hop 1h".
func def(f FeatureForm) string {
	arg := ""
	if f.Field != "" {
		arg = f.Field + ": " + string(f.Type)
	}
	return fmt.Sprintf("%s(%s) over %s, hop %s", f.Agg, arg, schemas.FormatDuration(f.WindowMS), schemas.FormatDuration(f.HopMS))
}

func featureWhat(a, b FeatureForm) []string {
	var out []string
	add := func(what, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("%s %s -> %s", what, orNone(x), orNone(y)))
		}
	}
	add("aggregation", string(a.Agg), string(b.Agg))
	add("field", a.Field, b.Field)
	add("type", string(a.Type), string(b.Type))
	add("window", schemas.FormatDuration(a.WindowMS), schemas.FormatDuration(b.WindowMS))
	add("hop", schemas.FormatDuration(a.HopMS), schemas.FormatDuration(b.HopMS))
	return out
}

func settingsWhat(a, b ViewForm) []string {
	var out []string
	add := func(what, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("%s %s -> %s", what, x, y))
		}
	}
	add("source", a.Source, b.Source)
	add("entity", a.Entity, b.Entity)
	add("ttl", schemas.FormatDuration(a.TTLMS), schemas.FormatDuration(b.TTLMS))
	add("max_lateness", schemas.FormatDuration(a.MaxLatenessMS), schemas.FormatDuration(b.MaxLatenessMS))
	return out
}

// Counts sums the changes of views by kind, for a summary line.
func Counts(vcs []ViewChange) string {
	n := map[string]int{}
	afresh := 0
	for _, vc := range vcs {
		n[vc.Change]++
		if vc.Afresh {
			afresh++
		}
	}
	var parts []string
	for _, k := range []string{Added, Changed, Removed, Unchanged} {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
		}
	}
	if len(parts) == 0 {
		return "no views"
	}
	s := strings.Join(parts, ", ")
	if afresh > 0 {
		s += fmt.Sprintf("; %d recomputed from kafka", afresh)
	}
	return s
}

// Sources are the event types of the views that start afresh, sorted.
func Sources(vcs []ViewChange) []string {
	var out []string
	for _, vc := range vcs {
		if vc.Afresh && !slices.Contains(out, vc.Source) {
			out = append(out, vc.Source)
		}
	}
	slices.Sort(out)
	return out
}

// Report is a whole plan: what `freshet plan` prints.
type Report struct {
	Schemas string `json:"schemas"`
	Version string `json:"version"`
	// Deployed and DeployedAt are featurize's version, nil when it
	// recorded none.
	Deployed   *string       `json:"deployed_version"`
	DeployedAt *time.Time    `json:"deployed_at"`
	Events     []EventChange `json:"events"`
	Views      []ViewChange  `json:"views"`
	// Problems are why the plan fails: incompatible event changes, and
	// history no longer retained unless allowed.
	Problems []string `json:"problems"`
}

// Judge fills r.Problems; with allowPartial, history no longer retained is
// said but is no problem.
func (r *Report) Judge(allowPartial bool) {
	r.Problems = nil
	for _, c := range r.Events {
		if !c.Compatible {
			r.Problems = append(r.Problems, c.String())
		}
	}
	for _, v := range r.Views {
		if v.History != nil && !v.History.Retained && !allowPartial {
			r.Problems = append(r.Problems, fmt.Sprintf("view %s is recomputed from kafka, and %s no longer retains the %s of history it needs (use --allow-partial to accept)",
				v.Name, v.History.Topic, schemas.FormatDuration(v.NeedsMS)))
		}
	}
}

// WriteText writes the plan for a person.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Deployed == nil {
		fmt.Fprintf(&b, "plan: %s (version %s); nothing deployed: featurize recorded no definitions\n", r.Schemas, r.Version)
	} else {
		fmt.Fprintf(&b, "plan: %s (version %s) against the deployed version %s", r.Schemas, r.Version, *r.Deployed)
		if r.DeployedAt != nil {
			fmt.Fprintf(&b, " (since %s)", r.DeployedAt.Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	if len(r.Events) > 0 {
		b.WriteString("\nevents\n")
		for _, c := range r.Events {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	b.WriteString("\nviews\n")
	for _, v := range r.Views {
		fmt.Fprintf(&b, "  %s: %s\n", v.Name, v.Change)
		for _, s := range v.Settings {
			fmt.Fprintf(&b, "    setting %s\n", s)
		}
		for _, f := range v.Features {
			mark := map[string]string{Unchanged: "=", Added: "+", Removed: "-", Changed: "~"}[f.Change]
			line := fmt.Sprintf("    %s %-24s %-44s %s", mark, f.Name, f.Def, f.Change)
			if len(f.What) > 0 {
				line += ": " + strings.Join(f.What, ", ")
			}
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
		fmt.Fprintf(&b, "    -> %s\n", whatHappens(v))
		if h := v.History; h != nil {
			fmt.Fprintf(&b, "    -> history: %s\n", h.describe(v.NeedsMS))
		}
	}
	fmt.Fprintf(&b, "\nsummary: %s", Counts(r.Views))
	incompatible := 0
	for _, c := range r.Events {
		if !c.Compatible {
			incompatible++
		}
	}
	fmt.Fprintf(&b, "; %d incompatible event change(s)\n", incompatible)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// whatHappens says what becomes of a view's online state.
func whatHappens(v ViewChange) string {
	switch {
	case v.Change == Removed:
		return "no longer computed; its state expires with its TTL"
	case v.Change == Added:
		return "new: featurize recomputes it from the earliest offsets kafka retains (a catch-up beside the live path); " +
			"its features answer PENDING until it has caught up"
	case v.Afresh:
		return "its tile layout changes: featurize recomputes the view from the earliest offsets kafka retains, in a new " +
			"generation beside the live path (a catch-up, --catch-up-rate); its features answer PENDING until it has caught up"
	case v.Change == Changed && slices.ContainsFunc(v.Features, func(f FeatureChange) bool { return f.Change != Unchanged }):
		return "same tile layout: state kept; changed and added features are exact from the first lookup (instant)"
	case v.Change == Changed:
		return "state kept; the settings apply from the next event"
	}
	return "state kept"
}

func (h *History) describe(needs int64) string {
	switch {
	case h.Oldest == nil && h.Messages == 0:
		return fmt.Sprintf("%s holds no events", h.Topic)
	case h.Complete:
		return fmt.Sprintf("%s retains all %d events ever written, from %s: the catch-up is exact", h.Topic, h.Messages, h.Oldest.Format(time.RFC3339))
	case h.Retained:
		return fmt.Sprintf("%s retains %d events from %s, more than the %s needed: the catch-up is exact", h.Topic, h.Messages,
			h.Oldest.Format(time.RFC3339), schemas.FormatDuration(needs))
	}
	return fmt.Sprintf("%s retains %d events from %s only, less than the %s needed: NOT retained, the catch-up gives partial windows",
		h.Topic, h.Messages, h.Oldest.Format(time.RFC3339), schemas.FormatDuration(needs))
}
