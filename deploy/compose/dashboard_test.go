package compose

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/freshet-ml/freshet/pipeline/devmode"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

const dashboardFile = "grafana/dashboards/freshet.json"

// dashboard is what the checks read of a Grafana dashboard.
type dashboard struct {
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t testing.TB) dashboard {
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

// exprs returns every query of the dashboard with the title of its panel.
func (d dashboard) exprs() map[string][]string {
	out := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// metricSet is what a scrape of /metrics shows: every series name, with
// the label names it carries.
type metricSet map[string]map[string]bool

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s`)
var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)

func parseMetrics(text string) (metricSet, error) {
	set := metricSet{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("unparsable metrics line %q", line)
		}
		if set[m[1]] == nil {
			set[m[1]] = map[string]bool{}
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			set[m[1]][l[1]] = true
		}
	}
	return set, sc.Err()
}

// promqlRefs returns the metric names and label names a PromQL expression
// uses. It knows just enough PromQL for dashboards: selectors with
// matchers, range brackets, function calls, aggregations with by/without,
// vector matching with on/ignoring, strings, numbers and durations.
func promqlRefs(expr string) (metrics, labels []string, err error) {
	aggregations := map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
		"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true}
	grouping := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	operators := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true}
	s := []rune(expr)
	isStart := func(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
	isPart := func(r rune) bool { return isStart(r) || unicode.IsDigit(r) }
	ident := func(i int) (string, int) {
		j := i
		for j < len(s) && isPart(s[j]) {
			j++
		}
		return string(s[i:j]), j
	}
	skipSpace := func(i int) int {
		for i < len(s) && unicode.IsSpace(s[i]) {
			i++
		}
		return i
	}
	skipString := func(i int) (int, error) {
		q := s[i]
		for j := i + 1; j < len(s); j++ {
			if s[j] == '\\' && q != '`' {
				j++
				continue
			}
			if s[j] == q {
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("%q: unterminated string", expr)
	}
	for i := 0; i < len(s); {
		r := s[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '"' || r == '\'' || r == '`':
			if i, err = skipString(i); err != nil {
				return nil, nil, err
			}
		case r == '[':
			j := slices.Index(s[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("%q: unclosed [", expr)
			}
			i += j + 1
		case r == '{':
			// Matchers: label op value, comma-separated.
			for i++; ; {
				i = skipSpace(i)
				if i >= len(s) {
					return nil, nil, fmt.Errorf("%q: unclosed {", expr)
				}
				if s[i] == '}' {
					i++
					break
				}
				if s[i] == ',' {
					i++
					continue
				}
				if !isStart(s[i]) {
					return nil, nil, fmt.Errorf("%q: unexpected %q in a selector", expr, s[i])
				}
				var name string
				name, i = ident(i)
				labels = append(labels, name)
				i = skipSpace(i)
				for i < len(s) && strings.ContainsRune("=!~", s[i]) {
					i++
				}
				i = skipSpace(i)
				if i >= len(s) || s[i] != '"' && s[i] != '\'' && s[i] != '`' {
					return nil, nil, fmt.Errorf("%q: matcher of %s has no string value", expr, name)
				}
				if i, err = skipString(i); err != nil {
					return nil, nil, err
				}
			}
		case isStart(r):
			var name string
			name, i = ident(i)
			next := skipSpace(i)
			switch {
			case (name == "group_left" || name == "group_right") && (next >= len(s) || s[next] != '('):
				// no label list: fine for these two
			case grouping[name]:
				if next >= len(s) || s[next] != '(' {
					return nil, nil, fmt.Errorf("%q: %s without a label list", expr, name)
				}
				end := slices.Index(s[next:], ')')
				if end < 0 {
					return nil, nil, fmt.Errorf("%q: unclosed %s (", expr, name)
				}
				for _, l := range strings.Split(string(s[next+1:next+end]), ",") {
					if l = strings.TrimSpace(l); l != "" {
						labels = append(labels, l)
					}
				}
				i = next + end + 1
			case aggregations[name] || operators[name]:
			case next < len(s) && s[next] == '(':
				// a function call
			default:
				metrics = append(metrics, name)
			}
		case unicode.IsDigit(r):
			for i < len(s) && (isPart(s[i]) || s[i] == '.') {
				i++ // a number or a duration: 0.99, 1e3, 5m
			}
		default:
			i++ // operators, parentheses, commas
		}
	}
	return metrics, labels, nil
}

// checkDashboard returns what the dashboard's queries use that the metric
// set lacks: a metric no service exposes, or a label none of the query's
// metrics carries. up, job and instance are Prometheus's own.
func checkDashboard(d dashboard, set metricSet) []string {
	var problems []string
	for title, exprs := range d.exprs() {
		for _, e := range exprs {
			metrics, labels, err := promqlRefs(e)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", title, err))
				continue
			}
			if len(metrics) == 0 {
				problems = append(problems, fmt.Sprintf("%s: %q queries no metric", title, e))
			}
			have := map[string]bool{"job": true, "instance": true, "__name__": true}
			for _, m := range metrics {
				if m == "up" {
					continue
				}
				if set[m] == nil {
					problems = append(problems, fmt.Sprintf("%s: %s is not a metric of the services", title, m))
				}
				for l := range set[m] {
					have[l] = true
				}
			}
			for _, l := range labels {
				if !have[l] {
					problems = append(problems, fmt.Sprintf("%s: label %s is on none of %v", title, l, metrics))
				}
			}
		}
	}
	slices.Sort(problems)
	return problems
}

func TestPromqlRefs(t *testing.T) {
	m, l, err := promqlRefs(`histogram_quantile(0.99, sum by (le, view) (rate(freshet_x_bucket{job="serve", http_route=~"/v1/{a}|b"}[$__rate_interval]))) / on (view) group_left max without (topic) (y_total offset 5m) and up`)
	require.NoError(t, err)
	require.Equal(t, []string{"freshet_x_bucket", "y_total", "up"}, m)
	require.Equal(t, []string{"le", "view", "job", "http_route", "view", "topic"}, l)
	_, _, err = promqlRefs(`rate(x{job="a}[5m])`)
	require.Error(t, err)
}

// scrapeDevMode runs all of freshet in one process with telemetry (as
// `freshet dev` does), drives every path the dashboard shows (events
// accepted and rejected over HTTP, lookups found and not found, the live
// feed through featurize) and returns the metrics the services expose.
func scrapeDevMode(t *testing.T) string {
	root := testenv.RepoRoot(t)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tel, shutdown, err := telemetry.Setup(ctx, "freshet-dashboard-test")
	require.NoError(t, err)
	defer func() { _ = shutdown(context.Background()) }()
	cfg := devmode.Config{
		Schemas: filepath.Join(root, "schemas", "example"), Sample: filepath.Join(root, "schemas", "example", "events.ndjson"),
		Event: "transaction", KafkaPort: testenv.FreePort(t), RedisPort: testenv.FreePort(t),
		IngestAddr: addr(), FeaturizeAddr: addr(), ServeAddr: addr(), LiveEvery: 100 * time.Millisecond, Telemetry: tel,
	}
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- devmode.Run(ctx, cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "Try:") {
		require.True(t, time.Now().Before(deadline), "dev mode not ready after 90s; output:\n%s", out.String())
		time.Sleep(50 * time.Millisecond)
	}
	do := func(method, url, body string, want int) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		require.Equal(t, want, res.StatusCode, "%s %s: %s", method, url, b)
	}
	ingest, serve := "http://"+cfg.IngestAddr, "http://"+cfg.ServeAddr
	ts := time.Now().UTC().Format(time.RFC3339)
	do("POST", ingest+"/v1/events/transaction", `{"txn_id":"d1","user_id":"u_0007","merchant_id":"m_020","amount":41.5,"items":2,"ts":"`+ts+`"}`, http.StatusAccepted)
	do("POST", ingest+"/v1/events/transaction", `{"txn_id":"d2","user_id":"u_0007","amount":"many","ts":"`+ts+`"}`, http.StatusUnprocessableEntity)
	do("GET", serve+"/v1/features/user_spend/u_0007", "", http.StatusOK)
	do("POST", serve+"/v1/features/user_spend", `{"entities":["u_0007","nobody"]}`, http.StatusOK)
	do("POST", serve+"/get-online-features", `{"features":["user_spend:txn_count_1h"],"entities":{"user_id":["u_0007"]}}`, http.StatusOK)
	// Let the live feed take a batch through featurize after the event.
	time.Sleep(500 * time.Millisecond)

	res, err := http.Get(serve + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	cancel()
	require.NoError(t, <-done)
	return string(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDashboardQueriesRealMetrics: every metric and label the dashboard
// queries is one the services expose, as scraped from their /metrics in a
// run of the whole pipeline; and the dashboard has the panels the stack
// promises (freshness, lag, throughput by outcome, serve latency
// percentiles) on the provisioned Prometheus datasource.
func TestDashboardQueriesRealMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline in process")
	}
	set, err := parseMetrics(scrapeDevMode(t))
	require.NoError(t, err)
	d := loadDashboard(t)
	require.Empty(t, checkDashboard(d, set))

	// A misspelt metric or label fails the check.
	bad := dashboard{Panels: []panel{{Title: "typo", Targets: []struct {
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	}{{Expr: `sum by (outcome) (rate(freshet_featurize_event_total[1m]))`}, {Expr: `sum by (outcomes) (rate(freshet_featurize_events_total[1m]))`}}}}}
	problems := checkDashboard(bad, set)
	require.Contains(t, problems, "typo: freshet_featurize_event_total is not a metric of the services")
	require.Contains(t, problems, "typo: label outcomes is on none of [freshet_featurize_events_total]")
}

func TestDashboardPanels(t *testing.T) {
	d := loadDashboard(t)
	require.Equal(t, "freshet", d.UID)
	var all []string
	for _, exprs := range d.exprs() {
		all = append(all, exprs...)
	}
	joined := strings.Join(all, "\n")
	for what, re := range map[string]string{
		"feature freshness": `histogram_quantile\(0\.99, sum by \(le, view\) \(rate\(freshet_featurize_freshness_seconds_bucket`,
		"consumer lag":      `freshet_featurize_consumer_lag_messages`,
		"events by outcome": `sum by \(outcome\) \(rate\(freshet_featurize_events_total`,
		"ingest throughput": `freshet_ingest_events_accepted_total`,
		"serve p50":         `histogram_quantile\(0\.5, sum by \(le\) \(rate\(http_server_request_duration_seconds_bucket\{job="serve"`,
		"serve p95":         `histogram_quantile\(0\.95, sum by \(le\) \(rate\(http_server_request_duration_seconds_bucket\{job="serve"`,
		"serve p99":         `histogram_quantile\(0\.99, sum by \(le\) \(rate\(http_server_request_duration_seconds_bucket\{job="serve"`,
	} {
		require.Regexp(t, re, joined, "the dashboard shows no %s", what)
	}

	// Every panel queries the datasource Grafana is given.
	b, err := os.ReadFile("grafana/provisioning/datasources/freshet.yaml")
	require.NoError(t, err)
	var prov struct {
		Datasources []struct{ UID, Type, URL string }
	}
	require.NoError(t, yaml.Unmarshal(b, &prov))
	uids := map[string]string{}
	for _, ds := range prov.Datasources {
		uids[ds.UID] = ds.Type
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
				require.Equal(t, "prometheus", uids[p.Datasource.UID], "panel %q: datasource %q is not provisioned", p.Title, p.Datasource.UID)
				for _, tg := range p.Targets {
					require.Equal(t, p.Datasource.UID, tg.Datasource.UID, "panel %q", p.Title)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	// The Prometheus datasource points at the stack's Prometheus.
	p := stack(t, true)
	for _, ds := range prov.Datasources {
		host := strings.Split(strings.TrimPrefix(ds.URL, "http://"), ":")[0]
		require.Contains(t, p.Services, host, "datasource %s", ds.UID)
	}
}
