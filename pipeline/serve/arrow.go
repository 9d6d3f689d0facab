package serve

import (
	"bytes"
	"mime"
	"net/http"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/arrowio"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// ArrowStream is the media type of an Arrow IPC stream answer.
const ArrowStream = "application/vnd.apache.arrow.stream"

// wantsArrow reports whether the client asked for an Arrow IPC stream.
func wantsArrow(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == ArrowStream {
			return true
		}
	}
	return false
}

// writeArrow answers a batch lookup as an Arrow IPC stream: the entity
// column (named after the view's entity field), event_time (the newest
// event at or before at, as in the JSON answer), one typed column per
// feature, null where the window is empty or the entity unknown, and last
// feature_status, the JSON answer's member of that name as text (null for
// a row of ordinary values).
func (s *Server) writeArrow(w http.ResponseWriter, r *http.Request, v *view, entities []string, states []*aggregate.State, feats []int, at int64) {
	cols := make([]arrowio.Column, len(feats))
	values := make([][]events.Value, len(feats))
	for j, i := range feats {
		f := v.layout.View.Features[i]
		cols[j] = arrowio.Column{Name: f.Name, Type: f.ValueType()}
		values[j] = make([]events.Value, len(entities))
	}
	// hasTime marks the rows with an event at or before at: event_time is
	// null elsewhere, also for an entity that has state.
	hasTime := make([]bool, len(entities))
	times := make([]int64, len(entities))
	// feature_status: as in the JSON answer, null for a row whose values
	// are all ordinary ones.
	cols = append(cols, arrowio.Column{Name: "feature_status", Type: schemas.String})
	statuses := make([]events.Value, len(entities))
	values = append(values, statuses)
	var odd []featureStatus
	for k, st := range states {
		if !found(st) && !pending(st) {
			continue
		}
		times[k], hasTime[k] = v.layout.EventTime(st, at)
		odd = odd[:0]
		for j, i := range feats {
			var status aggregate.Status
			values[j][k], status = v.layout.Value(st, i, at)
			if status != aggregate.OK {
				odd = append(odd, featureStatus{i, status})
			}
		}
		if len(odd) > 0 {
			statuses[k] = events.Value{Kind: events.String, S: string(v.appendStatuses(nil, odd))}
		}
	}
	// Encode fully before writing, so an encoding failure is still a
	// clean error answer.
	var buf bytes.Buffer
	if err := arrowio.WriteStream(&buf, v.entity, entities, hasTime, times, cols, values); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ArrowStream)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
