package schemas

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Load reads the definitions in path: one YAML file, or every *.yaml and
// *.yml file of a directory (not recursive). It checks everything and returns
// all problems found at once as Problems.
func Load(path string) (*Registry, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load definitions: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, err := filepath.Glob(filepath.Join(path, pat))
			if err != nil {
				return nil, fmt.Errorf("load definitions: %w", err)
			}
			files = append(files, m...)
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("load definitions: no *.yaml files in %s", path)
		}
	}
	l := &loader{
		reg: &Registry{Events: map[string]*Event{}, Views: map[string]*View{}},
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("load definitions: %w", err)
		}
		l.file(f, data)
	}
	l.link()
	if len(l.problems) > 0 {
		return nil, l.problems
	}
	return l.reg, nil
}

// Parse checks definitions held in memory; name is used in problem reports.
func Parse(name string, data []byte) (*Registry, error) {
	l := &loader{reg: &Registry{Events: map[string]*Event{}, Views: map[string]*View{}}}
	l.file(name, data)
	l.link()
	if len(l.problems) > 0 {
		return nil, l.problems
	}
	return l.reg, nil
}

type loader struct {
	reg      *Registry
	problems Problems
	// views awaiting their source event, which may be defined in a later file.
	pending []pendingView
}

type pendingView struct {
	view     *View
	file     string
	node     *yaml.Node
	key      string
	srcNode  *yaml.Node
	features *yaml.Node
	late     *yaml.Node
	ttl      *yaml.Node
	entity   *yaml.Node
}

func (l *loader) add(file string, n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	l.problems = append(l.problems, Problem{Pos: Pos{File: file, Line: line}, Key: key, Reason: fmt.Sprintf(format, args...)})
}

// mapping walks a YAML mapping node, reporting duplicate and unknown keys.
// allowed nil means any key is allowed.
func (l *loader) mapping(file string, n *yaml.Node, key string, allowed []string, fn func(k string, kn, vn *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		l.add(file, n, key, "expected a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		k := kn.Value
		if seen[k] {
			l.add(file, kn, join(key, k), "duplicate key")
			continue
		}
		seen[k] = true
		if allowed != nil && !contains(allowed, k) {
			l.add(file, kn, join(key, k), "unknown key (expected one of %s)", strings.Join(allowed, ", "))
			continue
		}
		fn(k, kn, vn)
	}
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func (l *loader) scalar(file string, n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.add(file, n, key, "expected a value")
		return "", false
	}
	return n.Value, true
}

func (l *loader) file(file string, data []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.problems = append(l.problems, Problem{Pos: Pos{File: file}, Reason: err.Error()})
		return
	}
	if len(doc.Content) == 0 {
		return // an empty file defines nothing
	}
	l.mapping(file, doc.Content[0], "", []string{"events", "feature_views"}, func(k string, _, vn *yaml.Node) {
		switch k {
		case "events":
			l.mapping(file, vn, "events", nil, func(name string, kn, en *yaml.Node) {
				l.event(file, name, kn, en)
			})
		case "feature_views":
			l.mapping(file, vn, "feature_views", nil, func(name string, kn, vn *yaml.Node) {
				l.view(file, name, kn, vn)
			})
		}
	})
}

func (l *loader) event(file, name string, kn, n *yaml.Node) {
	key := "events." + name
	if !nameRE.MatchString(name) {
		l.add(file, kn, key, "event name must match %s", nameRE)
		return
	}
	if prev, ok := l.reg.Events[name]; ok {
		l.add(file, kn, key, "duplicate event (first defined at %s)", prev.pos)
		return
	}
	ev := &Event{Name: name, byName: map[string]int{}, pos: Pos{File: file, Line: kn.Line}}
	var keyN, tsN, idN, dedupeN *yaml.Node
	var required []*yaml.Node
	l.mapping(file, n, key, []string{"key", "timestamp", "fields", "required", "id", "dedupe_window"}, func(k string, _, vn *yaml.Node) {
		switch k {
		case "dedupe_window":
			dedupeN = vn
		case "key":
			keyN = vn
		case "timestamp":
			tsN = vn
		case "id":
			idN = vn
		case "fields":
			l.mapping(file, vn, key+".fields", nil, func(fname string, fkn, fvn *yaml.Node) {
				fkey := key + ".fields." + fname
				if !nameRE.MatchString(fname) {
					l.add(file, fkn, fkey, "field name must match %s", nameRE)
					return
				}
				t, ok := l.scalar(file, fvn, fkey)
				if !ok {
					return
				}
				ft := FieldType(t)
				if !ft.valid() {
					l.add(file, fvn, fkey, "unknown type %q (expected string, int, float, bool or timestamp)", t)
					return
				}
				ev.byName[fname] = len(ev.Fields)
				ev.Fields = append(ev.Fields, Field{Name: fname, Type: ft, Index: len(ev.Fields)})
			})
		case "required":
			if vn.Kind != yaml.SequenceNode {
				l.add(file, vn, key+".required", "expected a list of field names")
				return
			}
			required = vn.Content
		}
	})
	if tsN == nil {
		l.add(file, n, key+".timestamp", "missing: name the field holding the event time")
	} else if ts, ok := l.scalar(file, tsN, key+".timestamp"); ok {
		if f, declared := ev.Field(ts); declared && f.Type != Timestamp {
			l.add(file, tsN, key+".timestamp", "field %q is declared %s, the event time field must be timestamp", ts, f.Type)
		} else if !declared {
			if !nameRE.MatchString(ts) {
				l.add(file, tsN, key+".timestamp", "field name must match %s", nameRE)
			}
			// The timestamp field need not be listed under fields.
			ev.byName[ts] = len(ev.Fields)
			ev.Fields = append(ev.Fields, Field{Name: ts, Type: Timestamp, Index: len(ev.Fields)})
		}
		ev.Timestamp = ts
	}
	if keyN == nil {
		l.add(file, n, key+".key", "missing: name the field used as the Kafka message key")
	} else if k, ok := l.scalar(file, keyN, key+".key"); ok {
		if f, declared := ev.Field(k); !declared {
			l.add(file, keyN, key+".key", "field %q is not declared under fields", k)
		} else if f.Type != String && f.Type != Int {
			l.add(file, keyN, key+".key", "field %q is %s, a key must be string or int", k, f.Type)
		}
		ev.Key = k
	}
	if idN != nil {
		if id, ok := l.scalar(file, idN, key+".id"); ok {
			if f, declared := ev.Field(id); !declared {
				l.add(file, idN, key+".id", "field %q is not declared under fields", id)
			} else if f.Type != String && f.Type != Int {
				l.add(file, idN, key+".id", "field %q is %s, an id must be string or int", id, f.Type)
			}
			ev.ID = id
		}
	}
	if dedupeN != nil {
		if idN == nil {
			l.add(file, dedupeN, key+".dedupe_window", "needs an id field to de-duplicate by")
		} else if s, ok := l.scalar(file, dedupeN, key+".dedupe_window"); ok {
			d, err := ParseDuration(s)
			if err != nil {
				l.add(file, dedupeN, key+".dedupe_window", "%v", err)
			}
			ev.DedupeWindow = d
		}
	}
	for _, rn := range required {
		r, ok := l.scalar(file, rn, key+".required")
		if !ok {
			continue
		}
		i, declared := ev.byName[r]
		if !declared {
			l.add(file, rn, key+".required", "field %q is not declared under fields", r)
			continue
		}
		ev.Fields[i].Required = true
	}
	// The key and the event time are needed to publish an event at all.
	for _, name := range []string{ev.Key, ev.Timestamp} {
		if i, ok := ev.byName[name]; ok {
			ev.Fields[i].Required = true
		}
	}
	if len(ev.Fields) == 0 {
		l.add(file, n, key+".fields", "an event needs at least one field")
	}
	l.reg.Events[name] = ev
}

func (l *loader) view(file, name string, kn, n *yaml.Node) {
	key := "feature_views." + name
	if !nameRE.MatchString(name) {
		l.add(file, kn, key, "view name must match %s", nameRE)
		return
	}
	for _, p := range l.pending {
		if p.view.Name == name {
			l.add(file, kn, key, "duplicate feature view (first defined at %s:%d)", p.file, p.node.Line)
			return
		}
	}
	p := pendingView{view: &View{Name: name, byName: map[string]int{}}, file: file, node: kn, key: key}
	l.mapping(file, n, key, []string{"source", "entity", "max_lateness", "ttl", "features"}, func(k string, _, vn *yaml.Node) {
		switch k {
		case "source":
			p.srcNode = vn
		case "entity":
			p.entity = vn
		case "max_lateness":
			p.late = vn
		case "ttl":
			p.ttl = vn
		case "features":
			p.features = vn
		}
	})
	l.pending = append(l.pending, p)
}

// link resolves views against events once every file has been read.
func (l *loader) link() {
	for _, p := range l.pending {
		l.linkView(p)
	}
	l.pending = nil
	// An id is remembered, by default, as long as the longest window that
	// could count its event twice.
	for _, ev := range l.reg.Events {
		if ev.ID != "" && ev.DedupeWindow == 0 {
			for _, v := range l.reg.Views {
				if v.Source == ev {
					ev.DedupeWindow = max(ev.DedupeWindow, v.MaxWindow())
				}
			}
		}
	}
}

func (l *loader) linkView(p pendingView) {
	file, key, v := p.file, p.key, p.view
	var src *Event
	if p.srcNode == nil {
		l.add(file, p.node, key+".source", "missing: name the event the view is computed from")
	} else if s, ok := l.scalar(file, p.srcNode, key+".source"); ok {
		if src = l.reg.Events[s]; src == nil {
			l.add(file, p.srcNode, key+".source", "unknown event %q", s)
		}
	}
	v.Source = src
	if p.entity == nil {
		l.add(file, p.node, key+".entity", "missing: name the event field identifying the entity")
	} else if e, ok := l.scalar(file, p.entity, key+".entity"); ok && src != nil {
		if f, declared := src.Field(e); !declared {
			l.add(file, p.entity, key+".entity", "field %q is not a field of event %q", e, src.Name)
		} else if f.Type != String && f.Type != Int {
			l.add(file, p.entity, key+".entity", "field %q is %s, an entity must be string or int", e, f.Type)
		}
		v.Entity = e
	}
	if p.features == nil {
		l.add(file, p.node, key+".features", "missing: a view needs at least one feature")
	} else {
		l.mapping(file, p.features, key+".features", nil, func(name string, kn, fn *yaml.Node) {
			l.feature(file, key+".features."+name, name, kn, fn, v, src)
		})
		if len(v.Features) == 0 && len(p.features.Content) == 0 {
			l.add(file, p.features, key+".features", "a view needs at least one feature")
		}
	}
	v.MaxLateness = v.MaxWindow()
	if p.late != nil {
		if s, ok := l.scalar(file, p.late, key+".max_lateness"); ok {
			d, err := ParseDuration(s)
			if err != nil {
				l.add(file, p.late, key+".max_lateness", "%v", err)
			}
			v.MaxLateness = d
		}
	}
	v.TTL = v.Retention()
	if p.ttl != nil {
		if s, ok := l.scalar(file, p.ttl, key+".ttl"); ok {
			d, err := ParseDuration(s)
			if err != nil {
				l.add(file, p.ttl, key+".ttl", "%v", err)
			}
			v.TTL = d
		}
	}
	if src != nil && v.Entity != "" {
		l.reg.Views[v.Name] = v
	}
}

func (l *loader) feature(file, key, name string, kn, n *yaml.Node, v *View, src *Event) {
	if !nameRE.MatchString(name) {
		l.add(file, kn, key, "feature name must match %s", nameRE)
		return
	}
	if name == "event_time" || name == "feature_status" {
		l.add(file, kn, key, "feature name %q is reserved: Arrow lookup answers have a column of that name beside the features", name)
		return
	}
	f := Feature{Name: name}
	var aggN, fieldN, windowN, hopN *yaml.Node
	l.mapping(file, n, key, []string{"agg", "field", "window", "hop"}, func(k string, _, vn *yaml.Node) {
		switch k {
		case "agg":
			aggN = vn
		case "field":
			fieldN = vn
		case "window":
			windowN = vn
		case "hop":
			hopN = vn
		}
	})
	ok := true
	if aggN == nil {
		l.add(file, n, key+".agg", "missing: one of count, sum, mean, min, max, stddev, last")
		ok = false
	} else if a, good := l.scalar(file, aggN, key+".agg"); good {
		f.Agg = Agg(a)
		switch f.Agg {
		case Count, Sum, Mean, Min, Max, Stddev, Last:
		default:
			l.add(file, aggN, key+".agg", "unknown aggregation %q (expected count, sum, mean, min, max, stddev or last)", a)
			ok = false
		}
	} else {
		ok = false
	}
	if fieldN != nil {
		if fname, good := l.scalar(file, fieldN, key+".field"); good {
			f.Field = fname
		} else {
			ok = false
		}
	}
	if ok && src != nil {
		switch {
		case f.Field == "" && f.Agg != Count:
			l.add(file, n, key+".field", "missing: %s needs a field", f.Agg)
			ok = false
		case f.Field != "":
			fd, declared := src.Field(f.Field)
			if !declared {
				l.add(file, fieldN, key+".field", "field %q is not a field of event %q", f.Field, src.Name)
				ok = false
				break
			}
			f.FieldType = fd.Type
			switch {
			case (f.Agg == Sum || f.Agg == Mean || f.Agg == Stddev) && !fd.Type.Numeric():
				l.add(file, fieldN, key+".field", "%s over %s field %q: %s needs an int or float field", f.Agg, fd.Type, f.Field, f.Agg)
				ok = false
			case (f.Agg == Min || f.Agg == Max) && !fd.Type.Ordered():
				l.add(file, fieldN, key+".field", "%s over %s field %q: %s needs an int, float or timestamp field", f.Agg, fd.Type, f.Field, f.Agg)
				ok = false
			}
		}
	}
	if windowN == nil {
		l.add(file, n, key+".window", "missing: the window length, e.g. 1h")
		ok = false
	} else if s, good := l.scalar(file, windowN, key+".window"); good {
		w, err := ParseDuration(s)
		if err != nil {
			l.add(file, windowN, key+".window", "%v", err)
			ok = false
		}
		f.Window = w
	} else {
		ok = false
	}
	if hopN != nil {
		if s, good := l.scalar(file, hopN, key+".hop"); good {
			h, err := ParseDuration(s)
			switch {
			case err != nil:
				l.add(file, hopN, key+".hop", "%v", err)
				ok = false
			case f.Window > 0 && h > f.Window:
				l.add(file, hopN, key+".hop", "hop %s is larger than window %s", s, FormatDuration(f.Window))
				ok = false
			}
			f.Hop = h
		} else {
			ok = false
		}
	} else if f.Window > 0 {
		f.Hop = DefaultHop(f.Window)
	}
	if ok {
		v.byName[name] = len(v.Features)
		v.Features = append(v.Features, f)
	}
}
