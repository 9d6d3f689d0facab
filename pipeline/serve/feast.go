package serve

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
)

// feastRequest is the body of Feast's POST /get-online-features. Members
// this server does not know are ignored, as Feast clients send some.
type feastRequest struct {
	// Features are "view:feature" references.
	Features []string `json:"features"`
	// Entities maps the one entity field to its values.
	Entities         map[string][]json.RawMessage `json:"entities"`
	FullFeatureNames bool                         `json:"full_feature_names"`
	FeatureService   json.RawMessage              `json:"feature_service"`
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
// field of "entities"; each view costs one store read.
func (s *Server) feast(w http.ResponseWriter, r *http.Request) {
	var req feastRequest
	if err := s.decodeBody(w, r, &req, false); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.FeatureService) > 0 && string(req.FeatureService) != "null" {
		s.fail(w, r, badRequest("feature_service is not supported: list the features as \"view:feature\""))
		return
	}
	if len(req.Features) == 0 {
		s.fail(w, r, badRequest(`missing "features": want a list of "view:feature" references`))
		return
	}
	if len(req.Entities) != 1 {
		s.fail(w, r, badRequest(`"entities" has %d keys: want exactly one, the entity field of the requested views, mapped to a list of values`, len(req.Entities)))
		return
	}
	var key string
	var raws []json.RawMessage
	for k, vs := range req.Entities {
		key, raws = k, vs
	}
	cols := make([]feastColumn, len(req.Features))
	var views []*view // in order of first request
	for i, ref := range req.Features {
		vname, fname, ok := strings.Cut(ref, ":")
		if !ok {
			s.fail(w, r, badRequest("feature reference %q is not \"view:feature\"", ref))
			return
		}
		v, err := s.lookup(vname)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		fi, ok := v.layout.FeatureIndex(fname)
		if !ok {
			s.fail(w, r, badRequest("unknown feature %q in view %q", fname, vname))
			return
		}
		if v.entity != key {
			s.fail(w, r, badRequest("view %q is keyed by %q, but \"entities\" gives %q: every requested view must be keyed by the one entity field in \"entities\"", vname, v.entity, key))
			return
		}
		cols[i] = feastColumn{view: v, index: fi, name: fname}
		if req.FullFeatureNames {
			cols[i].name = vname + "__" + fname
		}
		if !containsView(views, v) {
			views = append(views, v)
		}
	}
	entities, err := s.entityTexts(raws, "entities."+key)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	at := s.now().UnixMilli()
	states := make(map[*view][]*aggregate.State, len(views))
	for _, v := range views {
		st, err := s.read(r.Context(), v, entities)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		states[v] = st
	}

	bp := getBuf()
	b := append(*bp, `{"metadata":{"feature_names":[`...)
	b = appendString(b, key)
	for _, c := range cols {
		b = append(b, ',')
		b = appendString(b, c.name)
	}
	b = append(b, `]},"results":[{"values":[`...)
	for i, raw := range raws {
		if i > 0 {
			b = append(b, ',')
		}
		if raw[0] == '"' {
			b = appendString(b, entities[i]) // the same string, re-escaped
		} else {
			b = append(b, raw...) // an integer as written
		}
	}
	b = append(b, `],"statuses":[`...)
	b = appendRepeated(b, `"PRESENT"`, len(raws))
	b = append(b, `],"event_timestamps":[`...)
	b = appendRepeated(b, feastEpoch, len(raws))
	b = append(b, "]}"...)
	for _, c := range cols {
		st := states[c.view]
		b = append(b, `,{"values":[`...)
		for i := range entities {
			if i > 0 {
				b = append(b, ',')
			}
			if found(st[i]) {
				b = c.view.layout.Value(st[i], c.index, at).AppendJSON(b)
			} else {
				b = append(b, "null"...)
			}
		}
		b = append(b, `],"statuses":[`...)
		for i := range entities {
			if i > 0 {
				b = append(b, ',')
			}
			if found(st[i]) {
				b = append(b, `"PRESENT"`...)
			} else {
				b = append(b, `"NOT_FOUND"`...)
			}
		}
		b = append(b, `],"event_timestamps":[`...)
		for i := range entities {
			if i > 0 {
				b = append(b, ',')
			}
			if found(st[i]) {
				b = appendFeastTime(b, st[i].EventTime)
			} else {
				b = append(b, feastEpoch...)
			}
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}\n"...)
	writeJSON(w, b)
	*bp = b
	putBuf(bp)
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
