// Package registry is what freshet knows of deployed definitions: the
// canonical form of a schemas.Registry and its version, and how a proposed
// set of definitions compares with a deployed one. featurize records the
// form it runs (pipeline/store keeps it in Redis); serve lists it; a service
// refuses definitions whose events are incompatible with the deployed ones.
//
// The package must not know about Kafka, Redis or HTTP.
package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/freshet-ml/freshet/schemas"
)

// Form is the canonical form of a set of definitions: every default
// resolved, durations in ms, maps for sets. encoding/json writes map keys
// sorted, so two files that mean the same thing have the same form, whatever
// their layout, comments or order.
type Form struct {
	Events map[string]EventForm `json:"events"`
	Views  map[string]ViewForm  `json:"views"`
}

// EventForm is an event type's canonical form.
type EventForm struct {
	Key       string               `json:"key"`
	Timestamp string               `json:"timestamp"`
	Fields    map[string]FieldForm `json:"fields"`
	ID        string               `json:"id,omitempty"`
	// DedupeWindowMS is how long ids are remembered; 0 without an id.
	DedupeWindowMS int64 `json:"dedupe_window_ms,omitempty"`
}

// FieldForm is an event field's canonical form.
type FieldForm struct {
	Type     schemas.FieldType `json:"type"`
	Required bool              `json:"required,omitempty"`
}

// ViewForm is a feature view's canonical form.
type ViewForm struct {
	Source        string                 `json:"source"`
	Entity        string                 `json:"entity"`
	MaxLatenessMS int64                  `json:"max_lateness_ms"`
	TTLMS         int64                  `json:"ttl_ms"`
	Features      map[string]FeatureForm `json:"features"`
}

// SameLayout reports whether v and o keep their state the same way: the
// same source, entity and features. TTL and lateness do not change how
// state is kept. Today featurize keeps a view's state per layout, so a
// different layout starts it afresh.
func (v ViewForm) SameLayout(o ViewForm) bool {
	return v.Source == o.Source && v.Entity == o.Entity && maps.Equal(v.Features, o.Features)
}

// FeatureForm is a feature's canonical form.
type FeatureForm struct {
	Agg schemas.Agg `json:"agg"`
	// Field and Type are empty for a plain count.
	Field    string            `json:"field,omitempty"`
	Type     schemas.FieldType `json:"type,omitempty"`
	WindowMS int64             `json:"window_ms"`
	HopMS    int64             `json:"hop_ms"`
}

// Of returns the canonical form of reg.
func Of(reg *schemas.Registry) Form {
	f := Form{Events: map[string]EventForm{}, Views: map[string]ViewForm{}}
	for name, ev := range reg.Events {
		ef := EventForm{Key: ev.Key, Timestamp: ev.Timestamp, Fields: map[string]FieldForm{}, ID: ev.ID}
		if ev.ID != "" {
			ef.DedupeWindowMS = ev.DedupeWindow
		}
		for _, fd := range ev.Fields {
			ef.Fields[fd.Name] = FieldForm{Type: fd.Type, Required: fd.Required}
		}
		f.Events[name] = ef
	}
	for name, v := range reg.Views {
		vf := ViewForm{Source: v.Source.Name, Entity: v.Entity, MaxLatenessMS: v.MaxLateness, TTLMS: v.TTL,
			Features: map[string]FeatureForm{}}
		for _, ft := range v.Features {
			vf.Features[ft.Name] = FeatureForm{Agg: ft.Agg, Field: ft.Field, Type: ft.FieldType, WindowMS: ft.Window, HopMS: ft.Hop}
		}
		f.Views[name] = vf
	}
	return f
}

// JSON is the form's canonical text.
func (f Form) JSON() []byte {
	b, err := json.Marshal(f)
	if err != nil {
		// Maps of strings, ints and bools always marshal.
		panic(fmt.Sprintf("registry: marshal form: %v", err))
	}
	return b
}

// Version names the form: the first 12 hex digits of the SHA-256 of its
// canonical text.
func (f Form) Version() string {
	sum := sha256.Sum256(f.JSON())
	return hex.EncodeToString(sum[:6])
}

// Parse reads a form written by JSON, as a deployed one is read back.
func Parse(b []byte) (Form, error) {
	var f Form
	if err := json.Unmarshal(b, &f); err != nil {
		return Form{}, fmt.Errorf("deployed definitions: %w", err)
	}
	if f.Events == nil || f.Views == nil {
		return Form{}, fmt.Errorf("deployed definitions: want the members events and views")
	}
	return f, nil
}
