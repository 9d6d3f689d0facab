package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// EventChange is one difference between a deployed event type and a
// proposed one.
type EventChange struct {
	Event string
	// Field is the field changed; empty for a change of the event itself.
	Field string
	// What says what changed, e.g. `field amount retyped float -> int`.
	What string
	// Compatible is false when messages already in Kafka, valid when
	// written, would no longer decode.
	Compatible bool
	// Advice says what to do instead of an incompatible change, or what a
	// compatible one implies; may be empty.
	Advice string
}

func (c EventChange) String() string {
	s := "event " + c.Event + ": " + c.What
	if !c.Compatible {
		s += ": incompatible"
	}
	if c.Advice != "" {
		s += " (" + c.Advice + ")"
	}
	return s
}

// EventChanges compares the event types of a deployed form with a proposed
// one, in event and field name order. Messages already in Kafka must stay
// readable: a rebuild or a catch-up reads them with the proposed
// definitions.
func EventChanges(deployed, proposed Form) []EventChange {
	var out []EventChange
	for _, name := range sortedNames(deployed.Events, proposed.Events) {
		old, had := deployed.Events[name]
		cur, has := proposed.Events[name]
		switch {
		case !had:
			out = append(out, EventChange{Event: name, What: "added", Compatible: true})
			continue
		case !has:
			out = append(out, EventChange{Event: name, What: "removed", Compatible: true,
				Advice: "its topic is no longer read; its views go with it"})
			continue
		}
		if old.Timestamp != cur.Timestamp {
			out = append(out, EventChange{Event: name, Field: cur.Timestamp,
				What:   fmt.Sprintf("event time moved from field %s to %s", old.Timestamp, cur.Timestamp),
				Advice: fmt.Sprintf("messages in Kafka carry their time in %s; keep it, or declare a new event type", old.Timestamp)})
		}
		if old.Key != cur.Key {
			out = append(out, EventChange{Event: name, Field: cur.Key, Compatible: true,
				What:   fmt.Sprintf("Kafka key moved from field %s to %s", old.Key, cur.Key),
				Advice: "new events are partitioned by the new key; lateness is judged per partition"})
		}
		if old.ID != cur.ID || old.DedupeWindowMS != cur.DedupeWindowMS {
			out = append(out, EventChange{Event: name, Field: cur.ID, Compatible: true,
				What: fmt.Sprintf("id %s within %d ms -> %s within %d ms", orNone(old.ID), old.DedupeWindowMS, orNone(cur.ID), cur.DedupeWindowMS)})
		}
		for _, f := range sortedNames(old.Fields, cur.Fields) {
			of, had := old.Fields[f]
			nf, has := cur.Fields[f]
			switch {
			case !had && nf.Required:
				out = append(out, EventChange{Event: name, Field: f, What: "required field " + f + " added",
					Advice: "messages in Kafka lack it; add it as optional"})
			case !had:
				out = append(out, EventChange{Event: name, Field: f, What: "optional field " + f + " added", Compatible: true})
			case !has:
				out = append(out, EventChange{Event: name, Field: f, What: "field " + f + " removed", Compatible: true,
					Advice: "messages that have it still decode: the member is skipped"})
			case of.Type != nf.Type:
				out = append(out, EventChange{Event: name, Field: f,
					What:   fmt.Sprintf("field %s retyped %s -> %s", f, of.Type, nf.Type),
					Advice: fmt.Sprintf("messages in Kafka hold it as %s; add a field of another name", of.Type)})
			case !of.Required && nf.Required:
				out = append(out, EventChange{Event: name, Field: f, What: "field " + f + " made required",
					Advice: "messages in Kafka may lack it; keep it optional"})
			case of.Required && !nf.Required:
				out = append(out, EventChange{Event: name, Field: f, What: "field " + f + " made optional", Compatible: true})
			}
		}
	}
	return out
}

// CheckEvents returns an error listing every incompatible event change from
// deployed to proposed, nil when there is none: what a service says before
// it refuses to start.
func CheckEvents(deployed, proposed Form) error {
	var bad []string
	for _, c := range EventChanges(deployed, proposed) {
		if !c.Compatible {
			bad = append(bad, c.String())
		}
	}
	if bad == nil {
		return nil
	}
	return errors.New("the definitions change events incompatibly with the deployed ones " +
		"(messages already in Kafka would no longer decode):\n  " + strings.Join(bad, "\n  "))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// sortedNames is the union of two maps' keys, sorted.
func sortedNames[V any](a, b map[string]V) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
