package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/retry"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/schemas"
)

// maxDetails caps the per-event errors of one 422 answer.
const maxDetails = 100

// shutdownGrace is how long Run waits for requests in flight once its
// context ends.
const shutdownGrace = 10 * time.Second

// Server is the ingest HTTP API.
type Server struct {
	reg    *schemas.Registry
	pub    *Publisher
	cfg    Config
	log    *slog.Logger
	topics []string // of every event type, sorted by event name
	tel    *telemetry.Providers
	obs    *apiMetrics
	marks  *watermarks
	// tokens guards the routes; nil: they are open.
	tokens *auth.Guard

	// starting is set while Run creates the topics: events are refused
	// with 503 meanwhile.
	starting atomic.Bool
}

// NewServer returns the API for the event types of reg, publishing with pub.
// A nil log discards.
func NewServer(reg *schemas.Registry, pub *Publisher, cfg Config, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := buildOptions(opts)
	s := &Server{reg: reg, pub: pub, cfg: cfg, log: log, tel: o.tel, tokens: o.tokens, obs: newAPIMetrics(o.tel), marks: newWatermarks(reg, cfg.Times)}
	for _, name := range reg.EventNames() {
		s.topics = append(s.topics, cfg.Kafka.Topic(name))
	}
	return s
}

// Handler returns the API:
//
//   - POST /v1/events/{event} (scope ingest) takes one event (a JSON object), several (a
//     JSON array of objects) or NDJSON (Content-Type application/x-ndjson).
//     Every event is validated first; if any is invalid the answer is 422
//     listing them and nothing is published. 202 {"accepted": n} means Kafka
//     acknowledged all n events; when featurize will drop some of them as
//     late (by ingest's estimate of the partitions' newest event times),
//     it adds "late": k and a "warning" saying why. 503 with Retry-After
//     means none may be taken as accepted and the request should be
//     retried.
//   - GET /healthz answers while the process is alive.
//   - GET /readyz answers 200 once every event type's topic exists.
//   - GET /metrics (scope metrics), with telemetry, serves the metrics.
//
// With WithTokens, a route with a scope answers 401 or 403 to a request
// without a token holding it (auth.Guard.Require).
func (s *Server) Handler() http.Handler {
	need := s.tokens.Require
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events/{event}", need(auth.Ingest)(http.HandlerFunc(s.postEvents)))
	httpx.Health(mux, func(ctx context.Context) error {
		if s.starting.Load() {
			return errors.New("topics are being created")
		}
		return s.cfg.Kafka.CheckTopics(ctx, s.topics)
	})
	s.tel.MountGuarded(mux, need(auth.Metrics))
	return s.tel.Middleware(telemetry.AccessLog(s.log, httpx.Recover(s.log, httpx.JSONRoutes(mux))))
}

// Run serves the API on l until ctx ends, then drains requests in flight for
// up to 10s. Meanwhile it creates the topics of every event type, retrying
// with backoff until Kafka answers; until then /healthz answers, /readyz
// says not ready and events get 503. Run returns nil after a shutdown caused
// by ctx, and the error when Kafka refuses the TLS handshake or the SASL
// credentials (no retry fixes them). It is meant to be called once.
func (s *Server) Run(ctx context.Context, l net.Listener) error {
	s.starting.Store(true)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var kerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if kerr = s.ensureTopics(ctx); kerr != nil {
			cancel() // stop serving: Kafka will not take these settings
			return
		}
		s.starting.Store(false)
		s.followMarks(ctx)
	}()
	err := httpx.Serve(ctx, l, s.Handler(), shutdownGrace)
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("serve ingest API on %s: %w", l.Addr(), err)
	}
	return kerr
}

// ensureTopics creates the topics, retrying while Kafka is unreachable or
// not ready. It returns nil once they exist or ctx ends, and the error at
// once when Kafka refuses the TLS handshake or the SASL credentials
// (broker.ErrSecurity).
func (s *Server) ensureTopics(ctx context.Context) error {
	attempt := 0
	err := s.cfg.Kafka.AwaitTopics(ctx, s.topics, 30*time.Second, &retry.Backoff{}, func(err error, d time.Duration) {
		attempt++
		s.log.Warn("cannot create topics yet; retrying", "attempt", attempt, "in", d, "error", err)
	})
	switch {
	case err == nil:
		s.log.Info("topics ready", "topics", s.topics)
		return nil
	case errors.Is(err, broker.ErrSecurity):
		return fmt.Errorf("kafka: %w", err)
	}
	return nil // ctx ended
}

// RefreshMarks reads the topics' newest event times now, for the late
// estimate of the 202s: Run does every 30s; a caller that has just
// published events past the API (dev mode's sample) calls it too.
func (s *Server) RefreshMarks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return s.marks.refresh(ctx, s.cfg.Kafka)
}

// followMarks reads the topics' newest event times now and every
// watermarkRefresh until ctx ends, for the late estimate of the 202s.
func (s *Server) followMarks(ctx context.Context) {
	t := time.NewTicker(watermarkRefresh)
	defer t.Stop()
	for {
		if err := s.RefreshMarks(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("read the topics' newest event times", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// accepted is the 202 answer: how many events Kafka acknowledged and, when
// featurize will drop some of them as late, how many and why.
type accepted struct {
	Accepted int `json:"accepted"`
	lateAnswer
}

// Detail is one invalid event of a 422 answer.
type Detail struct {
	// Index is the event's 0-based position in the request.
	Index int `json:"index"`
	// Field is the field at fault; empty when the whole event is bad.
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("event")
	typ := s.reg.Events[name]
	if typ == nil {
		httpx.Error(w, http.StatusNotFound, fmt.Sprintf("unknown event type %q; event types: %s", httpx.Truncate(name, 100), strings.Join(s.reg.EventNames(), ", ")))
		return
	}
	ndjson, status, msg := s.bodyKind(r)
	if status != 0 {
		httpx.Error(w, status, msg)
		return
	}
	if s.starting.Load() {
		s.unavailable(w, errors.New("topics are being created"))
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpx.Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit))
			return
		}
		httpx.Error(w, http.StatusBadRequest, "read request body: "+err.Error())
		return
	}
	raws, err := events.Split(body, ndjson, s.cfg.MaxEvents)
	if tm := (*events.TooManyEventsError)(nil); errors.As(err, &tm) {
		httpx.Error(w, http.StatusRequestEntityTooLarge, err.Error()+" (max-events)")
		return
	}
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, "malformed body: "+err.Error())
		return
	}

	evs, details, invalid := s.decodeAll(typ, raws)
	if invalid > 0 {
		s.obs.reject(r.Context(), name, reasonInvalid, invalid)
		s.obs.reject(r.Context(), name, reasonBatchInvalid, len(raws)-invalid)
		httpx.WriteJSON(w, http.StatusUnprocessableEntity, httpx.ErrorBody{
			Error:   fmt.Sprintf("%d of %d events are invalid", invalid, len(raws)),
			Details: details,
		})
		return
	}

	if details := s.oversize(typ, evs, raws); details != nil {
		s.obs.reject(r.Context(), name, reasonTooLarge, len(evs))
		httpx.WriteJSON(w, http.StatusRequestEntityTooLarge, httpx.ErrorBody{
			Error:   fmt.Sprintf("%d of %d events exceed the %d-byte message limit", len(details), len(evs), s.pub.maxMessage()),
			Details: details,
		})
		return
	}
	if ok, wait := s.tokens.Spend(r.Context(), len(evs)); !ok {
		s.obs.reject(r.Context(), name, reasonRate, len(evs))
		s.overRate(w, r, wait)
		return
	}
	if err := s.pub.Publish(r.Context(), evs); err != nil {
		s.publishFailed(w, r, typ, len(evs), err)
		return
	}
	s.obs.accept(r.Context(), name, len(evs))
	httpx.WriteJSON(w, http.StatusAccepted, accepted{Accepted: len(evs), lateAnswer: s.marks.judge(name, evs)})
}

// decodeAll decodes every raw event of typ, and returns the details of
// the invalid ones (up to maxDetails) and how many there are.
func (s *Server) decodeAll(typ *schemas.Event, raws [][]byte) (evs []events.Event, details []Detail, invalid int) {
	evs = make([]events.Event, len(raws))
	now := time.Now().UnixMilli()
	for i, raw := range raws {
		ev, err := s.cfg.Times.Decode(typ, raw, now)
		if err != nil {
			invalid++
			details = appendDetails(details, i, err)
			continue
		}
		evs[i] = ev
	}
	return evs, details, invalid
}

// publishFailed answers a request of n events of typ that Kafka did not
// acknowledge: 413 for a message over its limit, else 503 with what a
// retry does (retryWarning).
func (s *Server) publishFailed(w http.ResponseWriter, r *http.Request, typ *schemas.Event, n int, err error) {
	if errors.As(err, new(kafka.MessageTooLargeError)) {
		s.obs.reject(r.Context(), typ.Name, reasonTooLarge, n)
		httpx.Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("an event exceeds the %d-byte message limit", s.pub.maxMessage()))
		return
	}
	s.obs.reject(r.Context(), typ.Name, reasonKafka, n)
	s.log.WarnContext(r.Context(), "publish failed", "event", typ.Name, "events", n, "error", err)
	w.Header().Set("Retry-After", "1")
	httpx.WriteJSON(w, http.StatusServiceUnavailable, unavailableBody{
		Error:   "kafka unavailable: " + err.Error(),
		Warning: retryWarning(typ),
	})
}

// bodyKind checks what a request says of its body before any of it is
// read, and returns whether it is NDJSON, or the status and message of
// its refusal: a type other than JSON or NDJSON in UTF-8, a compressed
// body (415), or a Content-Length over max-body (413, so that a client
// sending Expect: 100-continue never sends the body).
func (s *Server) bodyKind(r *http.Request) (ndjson bool, status int, msg string) {
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil:
		return false, http.StatusUnsupportedMediaType, "Content-Type must be application/json or application/x-ndjson"
	case ct == "application/json":
	case ct == "application/x-ndjson":
		ndjson = true
	default:
		return false, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: use application/json or application/x-ndjson", httpx.Truncate(ct, 100))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported charset %q: send UTF-8 (JSON is UTF-8)", httpx.Truncate(cs, 100))
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q: send the body uncompressed", httpx.Truncate(ce, 100))
	}
	if r.ContentLength > s.cfg.MaxBody {
		return false, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds %d bytes (max-body)", r.ContentLength, s.cfg.MaxBody)
	}
	return ndjson, 0, ""
}

// oversize lists the events whose message would exceed Kafka's message
// limit (up to maxDetails), judged by their text as sent; nil when none
// does. Publish's own check stays the backstop for a normalized value
// longer than its text.
func (s *Server) oversize(typ *schemas.Event, evs []events.Event, raws [][]byte) []Detail {
	limit := s.pub.maxMessage()
	var details []Detail
	for i := range evs {
		if int64(len(raws[i])+messageOverhead) <= limit/2 {
			continue // the common case, without computing the key
		}
		if reason := tooLarge(typ, len(evs[i].Key()), len(raws[i]), limit); reason != "" && len(details) < maxDetails {
			details = append(details, Detail{Index: i, Error: reason})
		}
	}
	return details
}

// overRate answers 429 to a request whose token is over its rate, with
// the seconds to wait.
func (s *Server) overRate(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	p := httpx.PrincipalOf(r.Context())
	httpx.Error(w, http.StatusTooManyRequests, fmt.Sprintf("token %q is over its rate of %g events a second (rate= in the tokens file): "+
		"nothing was published; retry in %ds", p.Token, p.Rate, secs))
}

// unavailable answers 503 to a request refused before anything of it was
// sent to Kafka: nothing was accepted, retry.
func (s *Server) unavailable(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	httpx.Error(w, http.StatusServiceUnavailable, "kafka unavailable: "+err.Error())
}

// unavailableBody is the 503 answer to a failed publish.
type unavailableBody struct {
	Error string `json:"error"`
	// Warning says what a retry does to the events Kafka may have taken
	// before the failure (a write cut off mid-way cannot tell).
	Warning string `json:"warning"`
}

// retryWarning tells the client of a failed publish what its retry does:
// without an id on the event type, events Kafka took before the failure
// are counted twice.
func retryWarning(typ *schemas.Event) string {
	if typ.ID != "" {
		return fmt.Sprintf("Kafka may have taken some of these events before the failure; retry: featurize skips "+
			"a second event with the same %s within %s", typ.ID, schemas.FormatDuration(typ.DedupeWindow))
	}
	return fmt.Sprintf("Kafka may have taken some of these events before the failure, and a retry publishes "+
		"them again: event type %s declares no id field, so featurize will count them twice (declare one: "+
		"`id:` in its definition)", typ.Name)
}

// appendDetails adds one Detail per bad field of the event at index, up to
// maxDetails in all.
func appendDetails(details []Detail, index int, err error) []Detail {
	fes := events.Each(err)
	if fes == nil {
		fes = []*events.FieldError{{Reason: err.Error()}}
	}
	for _, fe := range fes {
		if len(details) == maxDetails {
			break
		}
		details = append(details, Detail{Index: index, Field: fe.Field, Error: fe.Reason})
	}
	return details
}
