package serve

import (
	"context"
	"net/http"
	"time"

	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/schemas"
)

// viewsAnswer is the answer of GET /v1/views.
type viewsAnswer struct {
	// Version is the definitions version serve runs.
	Version string `json:"version"`
	// Deployed is the version featurize last started with, null when it
	// recorded none.
	Deployed   *string       `json:"deployed_version"`
	DeployedAt *string       `json:"deployed_at"`
	Views      []viewSummary `json:"views"`
}

type viewSummary struct {
	Name        string           `json:"name"`
	Source      string           `json:"source"`
	Entity      string           `json:"entity"`
	TTL         string           `json:"ttl"`
	MaxLateness string           `json:"max_lateness"`
	Features    []featureSummary `json:"features"`
}

type featureSummary struct {
	Name  string            `json:"name"`
	Agg   schemas.Agg       `json:"agg"`
	Field *string           `json:"field"`
	Type  schemas.FieldType `json:"type"`
	// Window and Hop as in the definitions (1h), and in ms.
	Window   string `json:"window"`
	WindowMS int64  `json:"window_ms"`
	Hop      string `json:"hop"`
	HopMS    int64  `json:"hop_ms"`
	// State is "live" when featurize computes the feature as serve reads
	// it; "catching up" while featurize recomputes it from Kafka after a
	// definitions change (lookups answer it PENDING), with Progress; and
	// "not computed" when the deployed definitions do not compute it (the
	// view is defined otherwise there, or not at all): lookups answer it
	// PENDING until featurize runs these definitions. Detail says why.
	State    string                 `json:"state"`
	Detail   string                 `json:"detail,omitempty"`
	Progress *store.CatchUpProgress `json:"progress,omitempty"`
}

// listViews answers GET /v1/views: the views serve answers, their features,
// the definitions version and, per feature, whether featurize computes it.
func (s *Server) listViews(w http.ResponseWriter, r *http.Request) {
	d, ok, err := s.st.Deployed(r.Context())
	if err != nil {
		s.fail(w, r, &storeError{err})
		return
	}
	gens, err := s.st.Generations(r.Context())
	if err != nil {
		s.fail(w, r, &storeError{err})
		return
	}
	a := viewsAnswer{Version: s.form.Version(), Views: []viewSummary{}}
	if ok {
		a.Deployed = &d.Version
		if !d.At.IsZero() {
			at := d.At.Format(time.RFC3339)
			a.DeployedAt = &at
		}
	}
	for _, name := range s.viewNames {
		v := s.reg.Views[name]
		vs := viewSummary{Name: name, Source: v.Source.Name, Entity: v.Entity,
			TTL: schemas.FormatDuration(v.TTL), MaxLateness: schemas.FormatDuration(v.MaxLateness)}
		state, detail := featureState(name, s.form.Views[name], d, ok)
		var progress *store.CatchUpProgress
		_, defined := d.Form.Views[name]
		if g, has := gens[name]; has && (!ok || defined) {
			// The generations say what featurize keeps: by layout, not
			// by the definitions' text. A view the deployed definitions
			// dropped keeps its last generation, which nobody updates.
			state, detail, progress = s.genState(r.Context(), g, s.views[name].layout.Fingerprint)
		}
		for _, f := range v.Features {
			fs := featureSummary{Name: f.Name, Agg: f.Agg, Type: f.ValueType(),
				Window: schemas.FormatDuration(f.Window), WindowMS: f.Window, Hop: schemas.FormatDuration(f.Hop), HopMS: f.Hop,
				State: state, Detail: detail, Progress: progress}
			if f.Field != "" {
				field := f.Field
				fs.Field = &field
			}
			vs.Features = append(vs.Features, fs)
		}
		a.Views = append(a.Views, vs)
	}
	httpx.WriteJSON(w, http.StatusOK, a)
}

// featureState says whether featurize computes a view's features as serve
// reads them. Today a view's state is kept per layout: featurize writes the
// keys serve reads only when the deployed definitions define the view the
// same way (source, entity and features; not TTL or lateness).
func featureState(name string, mine registry.ViewForm, d store.Deployment, deployed bool) (state, detail string) {
	if !deployed {
		return "live", "featurize recorded no definitions (none started yet, or one older than the registry)"
	}
	theirs, ok := d.Form.Views[name]
	switch {
	case !ok:
		return "not computed", "the deployed definitions (version " + d.Version + ") have no view " + name
	case !theirs.SameLayout(mine):
		return "not computed", "the deployed definitions (version " + d.Version + ") define view " + name +
			" otherwise: its values stay empty until featurize runs these definitions"
	}
	return "live", ""
}

// genState says what the view's generation means for serve's layout of it
// (fingerprint): live, catching up with its progress, or, for a generation
// of another layout, not computed.
func (s *Server) genState(ctx context.Context, g store.Gen, fingerprint string) (string, string, *store.CatchUpProgress) {
	switch {
	case g.Fingerprint != fingerprint:
		return "not computed", "featurize keeps this view under another layout (generation " + g.ID + "): lookups answer PENDING until featurize runs these definitions", nil
	case g.Live():
		return "live", "", nil
	}
	detail := "featurize recomputes this view from the earliest offsets Kafka retains (generation " + g.ID + "): lookups answer PENDING until it has caught up"
	p, err := s.st.Progress(ctx, g)
	if err != nil {
		s.log.WarnContext(ctx, "read catch-up progress", "view", g.View, "error", err)
	}
	return "catching up", detail, p
}
