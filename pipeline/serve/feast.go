package serve

import (
	"net/http"
	"slices"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
)

// feastRequest is the body of Feast's POST /get-online-features. Members
// this server does not know are ignored, as Feast clients send some.
type feastRequest struct {
	// features are "view:feature" references.
	features []string
	// key is the one entity field of "entities", values the canonical
	// text of its values, and numbers which of them are integers.
	key     string
	values  []string
	numbers []bool
	// keys is how many fields "entities" maps: exactly one is served.
	keys             int
	fullFeatureNames bool
	// featureService is set when a feature service was named, which this
	// server does not support.
	featureService bool
}

// feastMembers are the members of a Feast request this server reads;
// readFeast reads them by index.
var feastMembers = [...]string{"entities", "feature_service", "features", "full_feature_names"}

// readFeast reads the body of a Feast request, refusing more than
// MaxEntities entities or maxFeatures references as soon as it reads one
// too many.
func (s *Server) readFeast(w http.ResponseWriter, r *http.Request) (feastRequest, error) {
	var req feastRequest
	var seen [len(feastMembers)]bool
	err := s.readObject(w, r, func(b *bodyReader, name string) error {
		k := slices.Index(feastMembers[:], name)
		if k < 0 {
			return b.skip(1) // another member a Feast client sends: ignored
		}
		if seen[k] {
			return duplicate(feastMembers[k])
		}
		seen[k] = true
		switch k {
		case 0:
			return req.readEntities(b, s.cfg.MaxEntities)
		case 1:
			c, err := b.kind()
			if err != nil {
				return err
			}
			req.featureService = c != 'n'
			return b.skip(1)
		case 2:
			var err error
			req.features, err = b.names("features", `a list of "view:feature" references`, `a "view:feature" reference`, 1)
			return err
		}
		raw, err := b.rawValue(1)
		if err == nil {
			req.fullFeatureNames, err = boolMember(raw, "full_feature_names")
		}
		return err
	})
	return req, err
}

// readEntities reads Feast's "entities": an object mapping the entity field
// to a list of values, at most limit of them. null maps no field at all.
func (req *feastRequest) readEntities(b *bodyReader, limit int) error {
	c, err := b.kind()
	if err != nil {
		return err
	}
	switch c {
	case 'n':
		return b.literal(c)
	case '{':
	default:
		return b.refuse(1, badRequest(`"entities": want an object mapping the entity field to a list of values, got %s`, jsonKind(c)))
	}
	return b.members(func(key string) error {
		if req.keys > 0 && key == req.key {
			return badRequest(`"entities": %q given twice`, key)
		}
		req.keys++
		if req.keys > 1 {
			return b.skip(2) // refused by check, with the number of fields
		}
		values, numbers, ok, err := b.entities("entities."+key, limit, 2)
		if err != nil {
			return err
		}
		if !ok {
			return badRequest(`"entities.%s": want a list of strings or integers, got null`, key)
		}
		req.key, req.values, req.numbers = key, values, numbers
		return nil
	})
}

// feastColumn is one requested feature.
type feastColumn struct {
	view  *view
	index int
	// name is the column's name in the answer's metadata.
	name string
}

// feast answers Feast's POST /get-online-features as Feast's feature server
// does, looking features up as of now:
//
//	{"metadata": {"feature_names": [entity field, f1, ...]},
//	 "results": [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...]}
//
// The first result is the entity column, echoing the entity values as
// given; then one per requested feature, in request order. Features may
// come from several views when all of them are keyed by the one entity
// field of "entities"; each view costs one store read. An event timestamp
// is the entity's newest event at or before now (an event ahead of the
// clock is not yet counted), Feast's epoch when there is none.
func (s *Server) feast(w http.ResponseWriter, r *http.Request) {
	req, err := s.readFeast(w, r)
	if err == nil {
		err = req.check()
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	a := feastAnswer{key: req.key, entities: req.values, numbers: req.numbers}
	var views []*view
	if a.cols, views, err = s.feastColumns(&req); err != nil {
		s.fail(w, r, err)
		return
	}
	a.at = s.now().UnixMilli()
	a.states = make(map[*view][]*aggregate.State, len(views))
	for _, v := range views {
		if a.states[v], err = s.read(r.Context(), v, a.entities); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	bp := getBuf()
	b := a.appendJSON(*bp)
	writeJSON(w, b)
	*bp = b
	putBuf(bp)
}

// check refuses what a Feast request may say but this server does not
// serve: a feature service, no features, other than one entity field.
func (req *feastRequest) check() error {
	switch {
	case req.featureService:
		return badRequest("feature_service is not supported: list the features as \"view:feature\"")
	case len(req.features) == 0:
		return badRequest(`missing "features": want a list of "view:feature" references`)
	case req.keys != 1:
		return badRequest(`"entities" has %d keys: want exactly one, the entity field of the requested views, mapped to a list of values`, req.keys)
	}
	return nil
}

// feastColumns resolves the requested "view:feature" references, in
// request order, and returns the views they need, in order of first
// request. Every view must be keyed by the request's entity field.
func (s *Server) feastColumns(req *feastRequest) ([]feastColumn, []*view, error) {
	cols := make([]feastColumn, len(req.features))
	var views []*view
	for i, ref := range req.features {
		vname, fname, ok := strings.Cut(ref, ":")
		if !ok {
			return nil, nil, badRequest("feature reference %q is not \"view:feature\"", ref)
		}
		v, err := s.lookup(vname)
		if err != nil {
			return nil, nil, err
		}
		fi, ok := v.layout.FeatureIndex(fname)
		if !ok {
			return nil, nil, v.unknownFeature(fname)
		}
		if v.entity != req.key {
			return nil, nil, badRequest("view %q is keyed by %q, but \"entities\" gives %q: every requested view must be keyed by the one entity field in \"entities\"", vname, v.entity, req.key)
		}
		// Refused as /v1/features refuses it: a repeated reference would
		// only repeat a column, and grow the answer with no bound but the
		// number of references.
		for _, c := range cols[:i] {
			if c.view == v && c.index == fi {
				return nil, nil, badRequest("feature %q of view %q requested twice", fname, vname)
			}
		}
		cols[i] = feastColumn{view: v, index: fi, name: fname}
		if req.fullFeatureNames {
			cols[i].name = vname + "__" + fname
		}
		if !containsView(views, v) {
			views = append(views, v)
		}
	}
	return cols, views, nil
}

// feastAnswer is what a Feast answer is written from.
type feastAnswer struct {
	key      string   // the entity field
	entities []string // the entity values, as canonical text
	numbers  []bool   // which of them were given as integers
	cols     []feastColumn
	states   map[*view][]*aggregate.State // per view, per entity
	at       int64                        // lookup time, epoch ms
}

// appendJSON appends the answer's JSON text and a newline to b.
func (a *feastAnswer) appendJSON(b []byte) []byte {
	b = append(b, `{"metadata":{"feature_names":[`...)
	b = appendString(b, a.key)
	for _, c := range a.cols {
		b = append(b, ',')
		b = appendString(b, c.name)
	}
	b = append(b, `]},"results":[`...)
	b = a.appendEntityResult(b)
	for _, c := range a.cols {
		b = append(b, ',')
		b = a.appendResult(b, c)
	}
	return append(b, "]}\n"...)
}

// appendEntityResult appends the first result: the entity values, echoed
// with their JSON type (an integer as written, but -0 as 0).
func (a *feastAnswer) appendEntityResult(b []byte) []byte {
	b = append(b, `{"values":[`...)
	for i, e := range a.entities {
		if i > 0 {
			b = append(b, ',')
		}
		if a.numbers[i] {
			b = append(b, e...)
		} else {
			b = appendString(b, e) // the same string, re-escaped
		}
	}
	b = append(b, `],"statuses":[`...)
	b = appendRepeated(b, `"PRESENT"`, len(a.entities))
	b = append(b, `],"event_timestamps":[`...)
	b = appendRepeated(b, feastEpoch, len(a.entities))
	return append(b, "]}"...)
}

// appendResult appends the result of one feature column: per entity its
// value, status and event time.
func (a *feastAnswer) appendResult(b []byte, c feastColumn) []byte {
	st := a.states[c.view]
	var invalid []int // entities whose value overflowed, in order
	b = append(b, `{"values":[`...)
	for i := range a.entities {
		if i > 0 {
			b = append(b, ',')
		}
		if found(st[i]) {
			val, status := c.view.layout.Value(st[i], c.index, a.at)
			b = val.AppendJSON(b)
			if status != aggregate.OK {
				invalid = append(invalid, i)
			}
		} else {
			b = append(b, "null"...)
		}
	}
	b = append(b, `],"statuses":[`...)
	for i := range a.entities {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case len(invalid) > 0 && invalid[0] == i:
			// Feast has no status for a value beyond its type (OVERFLOW
			// in the native answer); INVALID keeps it apart from an
			// empty window's PRESENT null.
			invalid = invalid[1:]
			b = append(b, `"INVALID"`...)
		case found(st[i]):
			b = append(b, `"PRESENT"`...)
		default:
			b = append(b, `"NOT_FOUND"`...)
		}
	}
	b = append(b, `],"event_timestamps":[`...)
	for i := range a.entities {
		if i > 0 {
			b = append(b, ',')
		}
		// Feast writes the epoch for a value it has no time for.
		if t, ok := c.view.layout.EventTime(st[i], a.at); ok {
			b = appendFeastTime(b, t)
		} else {
			b = append(b, feastEpoch...)
		}
	}
	return append(b, "]}"...)
}

func containsView(vs []*view, v *view) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// appendRepeated writes n copies of the JSON text item, comma-separated.
func appendRepeated(b []byte, item string, n int) []byte {
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	return b
}
