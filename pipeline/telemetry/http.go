package telemetry

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/freshet-ml/freshet/pipeline/httpx"
)

// quiet are the paths neither traced nor timed: scrapes and probes.
var quiet = map[string]bool{"/metrics": true, "/healthz": true, "/readyz": true, "/health": true}

// Middleware traces and times every request to next (a service's mux),
// with the OpenTelemetry HTTP conventions:
//
//   - a server span continuing the caller's trace context (the global
//     propagator), named by method and route pattern once the mux has
//     routed (GET /v1/features/{view}/{entity}, never the raw path), with
//     http.route, http.response.status_code, url.path, client.address and
//     the like, and an error status for a 5xx;
//   - http_server_request_duration_seconds by http_request_method (_OTHER
//     outside the standard ones), http_route (none when nothing matched),
//     http_response_status_code and token, the name of the bearer token
//     the request presented (httpx.Principal; no token label when none
//     was accepted: without a tokens file, or a 401): bounded labels, and
//     exemplars small enough to keep.
//
// Scrapes and health probes are left alone. It costs a few hundred
// nanoseconds and allocations when the span is not sampled: attributes are
// built only for a recording span. Without telemetry it returns next.
func (p *Providers) Middleware(next http.Handler) http.Handler {
	if p == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if quiet[r.URL.Path] {
			// Not timed, but a refused scrape is counted: a Prometheus
			// with a wrong or revoked token shows up where the operator
			// looks, not only in its own target page.
			sw := statusWriter{ResponseWriter: w}
			next.ServeHTTP(&sw, r)
			if code := sw.status(); code == http.StatusUnauthorized || code == http.StatusForbidden {
				p.httpDuration.Record(r.Context(), 0, p.httpAttrSet(standardMethod(r.Method), r.URL.Path, code, ""))
			}
			return
		}
		start := time.Now()
		method := standardMethod(r.Method)
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, who := httpx.WithPrincipal(ctx)
		ctx, span := p.tracer.Start(ctx, spanMethod(method), trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
		sw := statusWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		next.ServeHTTP(&sw, r)
		code, route := sw.status(), routeOf(r) // the mux set the pattern on r: the route of span and metric
		if span.IsRecording() {
			if route != "" {
				span.SetName(spanMethod(method) + " " + route)
				span.SetAttributes(semconv.HTTPRoute(route))
			}
			span.SetAttributes(requestAttrs(r, method, code, sw.written)...)
			if code >= 500 {
				span.SetStatus(codes.Error, "")
			}
		}
		span.End()
		p.httpDuration.Record(ctx, time.Since(start).Seconds(), p.httpAttrSet(method, route, code, who.Token))
	})
}

// Refused records a request the server refused for load before any handler
// saw it (httpx.OnRefused): in http_server_request_duration_seconds with
// status 503, no route (nothing routed it) and a duration of zero (it was
// answered at once), so that dashboards of errors by status see it.
func (p *Providers) Refused(r *http.Request) {
	if p == nil {
		return
	}
	p.httpDuration.Record(r.Context(), 0, p.httpAttrSet(standardMethod(r.Method), "", http.StatusServiceUnavailable, ""))
}

// httpKey is the attributes of one http_server_request_duration_seconds
// series.
type httpKey struct {
	method, route, token string
	code                 int
}

// tokenKey is the attribute, and metric label, of the token's name.
const tokenKey = attribute.Key("token")

// httpAttrSet returns the attribute option of a series, made once. The
// series are bounded: the tokens' names are those of the tokens file.
func (p *Providers) httpAttrSet(method, route string, code int, token string) metric.MeasurementOption {
	k := httpKey{method, route, token, code}
	if o, ok := p.httpAttrs.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(method), semconv.HTTPResponseStatusCode(code)}
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	if token != "" {
		attrs = append(attrs, tokenKey.String(token))
	}
	o, _ := p.httpAttrs.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(attrs...)))
	return o.(metric.MeasurementOption)
}

// AccessLog logs every request to next at debug level, once answered:
// method, route pattern, path, status, duration, bytes written, client
// address and the name of the token the request presented (token, empty
// when none was accepted; never the token). It must wrap the service's
// mux, inside Middleware, so that it sees the route and the token's name;
// when the logger does not log debug it returns next, at no cost.
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	if log == nil || !log.Enabled(context.Background(), slog.LevelDebug) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The request is passed on as it came when an outer observer
		// attached the Principal: the mux sets the route on that very
		// request, which the outer one reads too.
		ctx, who := httpx.WithPrincipal(r.Context())
		if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		sw := statusWriter{ResponseWriter: w}
		next.ServeHTTP(&sw, r)
		code, route := sw.status(), routeOf(r)
		client, _, _ := net.SplitHostPort(r.RemoteAddr)
		log.DebugContext(ctx, "http request", "method", r.Method, "route", route, "path", r.URL.Path, "status", code,
			"duration", time.Since(start), "bytes", sw.written, "client", client, "token", who.Token)
	})
}

// requestAttrs are a recording server span's attributes.
func requestAttrs(r *http.Request, method string, code int, written int64) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(method),
		semconv.HTTPResponseStatusCode(code),
		semconv.URLPath(r.URL.Path),
		semconv.URLScheme("http"),
		semconv.NetworkProtocolVersion(strings.TrimPrefix(r.Proto, "HTTP/")),
		semconv.HTTPResponseBodySize(int(written)),
	}
	if r.TLS != nil {
		attrs[3] = semconv.URLScheme("https")
	}
	if method == "_OTHER" {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(r.Method))
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.ClientAddress(host))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	if r.ContentLength > 0 {
		attrs = append(attrs, semconv.HTTPRequestBodySize(int(r.ContentLength)))
	}
	return attrs
}

// standardMethod is the http.request.method value: _OTHER outside the
// standard methods, so that the label stays bounded.
func standardMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// spanMethod is the method as a span name: HTTP for a non-standard one.
func spanMethod(m string) string {
	if m == "_OTHER" {
		return "HTTP"
	}
	return m
}

// statusWriter records the status code and body bytes of an answer. It
// passes Flush and Hijack on, and Unwrap lets http.ResponseController reach
// the connection's writer.
type statusWriter struct {
	http.ResponseWriter
	code    int
	written int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("telemetry: the response writer cannot hijack")
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// MountGuarded adds GET /metrics to mux behind guard, a middleware such as
// the one auth.Guard.Require returns; without telemetry it adds nothing.
func (p *Providers) MountGuarded(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	if p != nil {
		mux.Handle("GET /metrics", guard(p.Handler()))
	}
}

// status is the status code written, 200 when the handler wrote none.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// routeOf is the pattern the mux matched r with, without its method
// ("/v1/features/{view}/{entity}"); "" when none matched.
func routeOf(r *http.Request) string {
	route := r.Pattern
	if i := strings.IndexByte(route, ' '); i >= 0 {
		route = route[i+1:]
	}
	return route
}
