package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
)

// getOne answers GET /v1/features/{view}/{entity}[?at=T][&features=a,b]:
//
//	{"view": v, "entity": e, "at": T, "status": "PRESENT"|"NOT_FOUND",
//	 "features": {name: value, ...}, "event_time": T or null}
//
// event_time is the entity's newest event at or before at (see appendRow).
// The entity in the path is taken as text, which is the canonical text of
// an integer entity too.
func (s *Server) getOne(w http.ResponseWriter, r *http.Request) {
	v, err := s.lookup(r.PathValue("view"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entity := r.PathValue("entity")
	if !utf8.ValidString(entity) {
		// As in a body: the id ingest stored is text, and U+FFFD in its
		// place would look up another one.
		s.fail(w, r, badRequest("entity in the path: %s", invalidUTF8(entity)))
		return
	}
	var at int64
	feats := v.all
	if r.URL.RawQuery == "" {
		at = s.now().UnixMilli()
	} else if at, feats, err = s.oneQuery(v, r.URL.RawQuery); err != nil {
		s.fail(w, r, err)
		return
	}
	states, err := s.read(r.Context(), v, []string{entity})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bp := getBuf()
	b := append(*bp, `{"view":`...)
	b = appendString(b, v.name)
	b = append(b, `,"entity":`...)
	b = appendString(b, entity)
	b = append(b, `,"at":`...)
	b = appendTime(b, at)
	b = append(b, ',')
	b = v.appendRow(b, states[0], feats, at)
	b = append(b, "}\n"...)
	writeJSON(w, b)
	*bp = b
	putBuf(bp)
}

// oneQuery reads the query of a single lookup: at and features only.
func (s *Server) oneQuery(v *view, raw string) (int64, []int, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return 0, nil, badRequest("invalid query string: %v", err)
	}
	for k := range q {
		if k != "at" && k != "features" {
			return 0, nil, badRequest("unknown query parameter %q: want at and features", k)
		}
	}
	at, err := s.queryAt(q["at"])
	if err != nil {
		return 0, nil, err
	}
	var names []string
	for _, list := range q["features"] {
		if list == "" {
			continue
		}
		for _, n := range strings.Split(list, ",") {
			names = append(names, strings.TrimSpace(n))
		}
	}
	if len(names) > maxFeatures {
		return 0, nil, tooManyFeatures()
	}
	feats, err := v.features(names)
	return at, feats, err
}

// batchRequest is the body of POST /v1/features/{view}.
type batchRequest struct {
	// entities is required; an empty list is answered with no rows. Each
	// is the canonical text of the entity given.
	entities    []string
	hasEntities bool
	// features is a subset to answer; none means every feature.
	features []string
	// at is the lookup time as given (JSON text), empty for now.
	at json.RawMessage
}

// batchMembers are the members of a batch request, sorted as the refusal
// of any other lists them; readBatch reads them by index.
var batchMembers = [...]string{"at", "entities", "features"}

// readBatch reads the body of a batch request, refusing more than
// MaxEntities entities as soon as it reads one too many. Unknown members
// are refused: a misspelt "entites" silently ignored would answer a
// different question.
func (s *Server) readBatch(w http.ResponseWriter, r *http.Request) (batchRequest, error) {
	var req batchRequest
	var seen [len(batchMembers)]bool
	err := s.readObject(w, r, func(b *bodyReader, name string) error {
		k := slices.Index(batchMembers[:], name)
		if k < 0 {
			return badRequest("%s", unknownName(fmt.Sprintf("member %q", name), name, "the members are", batchMembers[:]))
		}
		if seen[k] {
			return duplicate(batchMembers[k])
		}
		seen[k] = true
		var err error
		switch k {
		case 0:
			var raw []byte
			raw, err = b.rawValue(1)
			req.at = bytes.Clone(raw)
		case 1:
			req.entities, _, req.hasEntities, err = b.entities("entities", s.cfg.MaxEntities, 1)
		case 2:
			req.features, err = b.names("features", "a list of feature names", "a feature name", 1)
		}
		return err
	})
	return req, err
}

// getBatch answers POST /v1/features/{view} with one row per entity, in
// request order, from one store read:
//
//	{"view": v, "at": T, "rows": [{"entity": e, "status": ..., "features": {...}, "event_time": ...}, ...]}
func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	v, err := s.lookup(r.PathValue("view"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := s.readBatch(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !req.hasEntities {
		s.fail(w, r, badRequest(`missing "entities": want a list of strings or integers`))
		return
	}
	entities := req.entities
	feats, err := v.features(req.features)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	at, err := s.jsonAt(req.at)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	states, err := s.read(r.Context(), v, entities)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wantsArrow(r) {
		s.writeArrow(w, r, v, entities, states, feats, at)
		return
	}
	bp := getBuf()
	b := append(*bp, `{"view":`...)
	b = appendString(b, v.name)
	b = append(b, `,"at":`...)
	b = appendTime(b, at)
	b = append(b, `,"rows":[`...)
	for i, e := range entities {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"entity":`...)
		b = appendString(b, e)
		b = append(b, ',')
		b = v.appendRow(b, states[i], feats, at)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	writeJSON(w, b)
	*bp = b
	putBuf(bp)
}

// found reports whether st is an entity's state.
func found(st *aggregate.State) bool { return st != nil && st.Found }

// pending reports whether st is of a view whose state is being recomputed:
// its values are not known yet.
func pending(st *aggregate.State) bool { return st != nil && st.Pending }

// appendRow writes the members status, features and event_time of one
// entity's answer as of at. Every feature is null when the entity has no
// state; event_time is the newest event at or before at (Layout.EventTime),
// null when there is none, also for an entity that has state. A member
// feature_status follows features when a value is not an ordinary one
// (appendStatuses). A view being recomputed answers status PENDING, every
// feature null and PENDING.
func (v *view) appendRow(b []byte, st *aggregate.State, feats []int, at int64) []byte {
	present := found(st) || pending(st)
	switch {
	case pending(st):
		b = append(b, `"status":"PENDING","features":{`...)
	case present:
		b = append(b, `"status":"PRESENT","features":{`...)
	default:
		b = append(b, `"status":"NOT_FOUND","features":{`...)
	}
	var odd []featureStatus
	for j, i := range feats {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, v.keys[i]...)
		if !present {
			b = append(b, "null"...)
			continue
		}
		val, status := v.layout.Value(st, i, at)
		b = val.AppendJSON(b)
		if status != aggregate.OK {
			odd = append(odd, featureStatus{i, status})
		}
	}
	b = append(b, '}')
	if odd != nil {
		b = append(b, `,"feature_status":`...)
		b = v.appendStatuses(b, odd)
	}
	b = append(b, `,"event_time":`...)
	if t, ok := v.layout.EventTime(st, at); ok {
		return appendTime(b, t)
	}
	return append(b, "null"...)
}

// featureStatus is a feature whose value is not an ordinary one.
type featureStatus struct {
	index  int
	status aggregate.Status
}

// appendStatuses writes {name: STATUS, ...} for the features whose value is
// not an ordinary one, such as OVERFLOW: the value is null although the
// window is not empty. Answers carry it only when there is one, so the
// common answer costs nothing more.
func (v *view) appendStatuses(b []byte, odd []featureStatus) []byte {
	b = append(b, '{')
	for k, o := range odd {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, v.keys[o.index]...)
		b = appendString(b, o.status.String())
	}
	return append(b, '}')
}
