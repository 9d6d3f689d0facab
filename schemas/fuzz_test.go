package schemas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzSeedHead is how much of a seed file that is not YAML (the example's
// events.ndjson, 660 KB) the corpus keeps: a few lines are as good a seed as
// the whole file, and large inputs slow the fuzzer down.
const fuzzSeedHead = 4 << 10

// FuzzParse checks the definitions loader on any file name and bytes: it
// never panics, and it either returns a registry whose every invariant the
// services rely on holds (see checkRegistry) or Problems, each naming the
// file and saying what is wrong, never both and never neither. Parsing the
// same bytes twice gives the same answer, as ingest, featurize and serve
// each load the definitions themselves.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("example", "*"))
	require.NoError(f, err)
	require.NotEmpty(f, files)
	for _, path := range files {
		data, err := os.ReadFile(path)
		require.NoError(f, err)
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" && len(data) > fuzzSeedHead {
			data = data[:fuzzSeedHead]
		}
		f.Add(filepath.Base(path), data)
	}
	view := func(features string) string {
		return validEvent + "feature_views:\n  v:\n    source: transaction\n    entity: user_id\n    features:\n" + features
	}
	for _, s := range []string{
		validEvent,
		view("      f: {agg: count, window: 1h}\n      g: {agg: mean, field: amount, window: 1d12h, hop: 90s}\n"),
		view("      f: {agg: last, field: seen, window: 500ms}\n") + "    max_lateness: 10m\n    ttl: 2d\n",
		"events:\n  e:\n    key: k\n    timestamp: ts\n    id: k\n    dedupe_window: 5m\n    fields: {k: int}\n",
		"events:\n  e:\n    key: k\n    timestamp: ts\n    id: k\n    fields: {k: string}\nfeature_views:\n  v: {source: e, entity: k, features: {c: {agg: count, window: 7d}}}\n",
		// Invalid, from TestProblems.
		view("      f: {agg: median, field: amount, window: 1h}\n"),
		view("      f: {agg: sum, field: merchant_id, window: 1h}\n"),
		view("      f: {agg: count, window: 1h, hop: 2h}\n"),
		view("      f: {agg: count, window: 1 hour}\n"),
		view("      f: {agg: count, window: 1h}\n      f: {agg: count, window: 2h}\n"),
		"events:\n  e:\n    key: k\n    timestamp: ts\n    fields: {k: string, x: decimal}\n",
		"events:\n  e:\n    key: k\n    timestamp: ts\n    fields: {k: string, ts: int}\n",
		"events:\n  e:\n    key: id\n    timestamp: ts\n    fields: {k: string}\n    required: [z]\n",
		"event:\n  e: {}\n",
		// YAML oddities: anchors and aliases, merge keys, tags, flow
		// style, several documents, a null document, tabs.
		"events:\n  e: &e\n    key: k\n    timestamp: ts\n    fields: {k: string}\n  f: *e\n  g:\n    <<: *e\n",
		"events: !!map\n  e: {key: !!str k, timestamp: ts, fields: {k: !!binary aGk=}}\n---\nevents: {}\n",
		"~\n",
		"events:\n\te: {}\n",
		"",
	} {
		f.Add("defs.yaml", []byte(s))
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		reg, err := Parse(name, data)
		if err == nil {
			require.NotNil(t, reg, "no registry and no error")
			checkRegistry(t, reg)
		} else {
			require.Nil(t, reg, "a registry and an error")
			checkProblems(t, name, data, err)
		}
		again, errAgain := Parse(name, data)
		require.Equal(t, err, errAgain, "parsing the same bytes twice")
		require.Equal(t, reg, again, "parsing the same bytes twice")
	})
}

// checkProblems checks the error of Parse: Problems, at least one, each
// in file name, with a reason, at a line the data has.
func checkProblems(t *testing.T, name string, data []byte, err error) {
	var ps Problems
	require.True(t, errors.As(err, &ps), "error %T is not Problems: %v", err, err)
	require.NotEmpty(t, ps, "an empty Problems")
	msg := err.Error()
	// YAML breaks lines at \n, \r, \r\n, NEL, LS and PS; count them all,
	// and one more: yaml.v3 puts the empty document of "---" on the line
	// after it, even at the end of the data.
	lines := strings.Count(string(data), "\n") + strings.Count(string(data), "\r") +
		strings.Count(string(data), "\u0085") + strings.Count(string(data), "\u2028") + strings.Count(string(data), "\u2029") + 2
	for _, p := range ps {
		require.Equal(t, name, p.File, "problem %s", p)
		require.NotEmpty(t, strings.TrimSpace(p.Reason), "problem %s has no reason", p)
		require.GreaterOrEqual(t, p.Line, 0, "problem %s", p)
		require.LessOrEqual(t, p.Line, lines, "problem %s: a line after the end of the data", p)
		require.Contains(t, msg, p.String())
	}
}

// checkRegistry checks what ingest, featurize and serve take for granted
// about a loaded registry.
func checkRegistry(t *testing.T, reg *Registry) {
	require.NotNil(t, reg.Events)
	require.NotNil(t, reg.Views)
	for name, ev := range reg.Events {
		require.Equal(t, name, ev.Name)
		require.True(t, nameRE.MatchString(name), "event name %q", name)
		require.NotEmpty(t, ev.Fields, "event %s has no fields", name)
		require.Len(t, ev.byName, len(ev.Fields), "event %s: field names are not unique", name)
		for i, fd := range ev.Fields {
			require.Equal(t, i, fd.Index, "event %s: field %s", name, fd.Name)
			require.True(t, fd.Type.valid(), "event %s: field %s: type %q", name, fd.Name, fd.Type)
			require.True(t, nameRE.MatchString(fd.Name), "event %s: field name %q", name, fd.Name)
			got, ok := ev.Field(fd.Name)
			require.True(t, ok)
			require.Equal(t, fd, got)
		}
		key, ok := ev.Field(ev.Key)
		require.True(t, ok, "event %s: key %q is not a field", name, ev.Key)
		require.True(t, key.Required, "event %s: the key is not required", name)
		require.Contains(t, []FieldType{String, Int}, key.Type, "event %s: key type", name)
		ts, ok := ev.Field(ev.Timestamp)
		require.True(t, ok, "event %s: timestamp %q is not a field", name, ev.Timestamp)
		require.True(t, ts.Required, "event %s: the event time is not required", name)
		require.Equal(t, Timestamp, ts.Type, "event %s: timestamp type", name)
		if ev.ID == "" {
			require.Zero(t, ev.DedupeWindow, "event %s: a dedupe window without an id", name)
		} else {
			id, ok := ev.Field(ev.ID)
			require.True(t, ok, "event %s: id %q is not a field", name, ev.ID)
			require.Contains(t, []FieldType{String, Int}, id.Type, "event %s: id type", name)
			require.GreaterOrEqual(t, ev.DedupeWindow, int64(0), "event %s", name)
		}
	}
	seen := 0
	for _, name := range reg.EventNames() {
		for _, v := range reg.ViewsOf(name) {
			require.Same(t, reg.Events[name], v.Source)
			seen++
		}
	}
	require.Equal(t, len(reg.Views), seen, "every view is the view of one event")
	for name, v := range reg.Views {
		require.Equal(t, name, v.Name)
		require.True(t, nameRE.MatchString(name), "view name %q", name)
		require.NotNil(t, v.Source, "view %s has no source", name)
		require.Same(t, reg.Events[v.Source.Name], v.Source, "view %s: source is not the registry's event", name)
		entity, ok := v.Source.Field(v.Entity)
		require.True(t, ok, "view %s: entity %q is not a field", name, v.Entity)
		require.Contains(t, []FieldType{String, Int}, entity.Type, "view %s: entity type", name)
		require.NotEmpty(t, v.Features, "view %s has no features", name)
		require.Len(t, v.byName, len(v.Features), "view %s: feature names are not unique", name)
		for _, ft := range v.Features {
			require.True(t, nameRE.MatchString(ft.Name), "view %s: feature name %q", name, ft.Name)
			got, ok := v.Feature(ft.Name)
			require.True(t, ok)
			require.Equal(t, ft, got)
			require.Contains(t, []Agg{Count, Sum, Mean, Min, Max, Stddev, Last}, ft.Agg, "view %s: feature %s", name, ft.Name)
			require.Positive(t, ft.Window, "view %s: feature %s: window", name, ft.Name)
			require.Positive(t, ft.Hop, "view %s: feature %s: hop", name, ft.Name)
			require.LessOrEqual(t, ft.Hop, ft.Window, "view %s: feature %s: hop over window", name, ft.Name)
			if ft.Field == "" {
				require.Equal(t, Count, ft.Agg, "view %s: feature %s: %s without a field", name, ft.Name, ft.Agg)
				require.Empty(t, ft.FieldType)
				continue
			}
			fd, ok := v.Source.Field(ft.Field)
			require.True(t, ok, "view %s: feature %s: field %q", name, ft.Name, ft.Field)
			require.Equal(t, fd.Type, ft.FieldType, "view %s: feature %s", name, ft.Name)
			switch ft.Agg {
			case Sum, Mean, Stddev:
				require.True(t, fd.Type.Numeric(), "view %s: feature %s: %s over %s", name, ft.Name, ft.Agg, fd.Type)
			case Min, Max:
				require.True(t, fd.Type.Ordered(), "view %s: feature %s: %s over %s", name, ft.Name, ft.Agg, fd.Type)
			}
		}
		require.Positive(t, v.MaxLateness, "view %s: max_lateness", name)
		require.Positive(t, v.TTL, "view %s: ttl", name)
	}
}
