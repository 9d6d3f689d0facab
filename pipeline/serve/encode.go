package serve

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/freshet-ml/freshet/pipeline/events"
)

// Answers are written by append functions into pooled buffers: JSON object
// members keep their order, and no reflection runs on the response path.

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2048)
	return &b
}}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

// putBuf returns a buffer to the pool unless an unusually large answer
// grew it.
func putBuf(bp *[]byte) {
	if cap(*bp) > 1<<20 {
		return
	}
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}

var jsonContentType = []string{"application/json"}

// writeJSON writes b as a 200 answer.
func writeJSON(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// appendString writes s as a JSON string, escaped as events.Value does.
func appendString(b []byte, s string) []byte {
	return events.Value{Kind: events.String, S: s}.AppendJSON(b)
}

// appendTime writes epoch ms as a quoted RFC 3339 UTC time with
// milliseconds, e.g. "2024-06-01T00:00:00.000Z".
func appendTime(b []byte, ms int64) []byte {
	b = append(b, '"')
	b = time.UnixMilli(ms).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, '"')
}

// feastEpoch is Feast's event timestamp of a value it has none for.
const feastEpoch = `"1970-01-01T00:00:00Z"`

// appendFeastTime writes epoch ms as a Feast event timestamp: RFC 3339 UTC
// as protobuf's JSON mapping writes a Timestamp, without a fraction when
// the time is a whole second, e.g. "2024-06-01T00:00:00Z".
func appendFeastTime(b []byte, ms int64) []byte {
	layout := "2006-01-02T15:04:05.000Z07:00"
	if ms%1000 == 0 {
		layout = "2006-01-02T15:04:05Z07:00"
	}
	b = append(b, '"')
	b = time.UnixMilli(ms).UTC().AppendFormat(b, layout)
	return append(b, '"')
}
