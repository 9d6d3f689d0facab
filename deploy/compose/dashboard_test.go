package compose

import (
	"bufio"
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
	"testing"
	"time"

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

// metricSet is what a scrape of /metrics shows: every series name with
// the label names it carries, and every family's type from its # TYPE
// line.
type metricSet struct {
	series map[string]map[string]bool
	types  map[string]string // family name → counter, gauge, histogram, summary, untyped
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s`)
var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
var typeLine = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|gaugehistogram|summary|info|stateset|unknown|untyped)$`)

func parseMetrics(text string) (metricSet, error) {
	set := metricSet{series: map[string]map[string]bool{}, types: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			m := typeLine.FindStringSubmatch(line)
			if m == nil {
				return metricSet{}, fmt.Errorf("unparsable TYPE line %q", line)
			}
			set.types[m[1]] = m[2]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			return metricSet{}, fmt.Errorf("unparsable metrics line %q", line)
		}
		if set.series[m[1]] == nil {
			set.series[m[1]] = map[string]bool{}
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			set.series[m[1]][l[1]] = true
		}
	}
	return set, sc.Err()
}

// kind is the type of the family a series belongs to: counter or gauge
// (the text format's TYPE names a counter with its _total), or
// histogram_bucket, histogram_count, histogram_sum, summary_count,
// summary_sum for the series of a histogram or a summary; "" when no TYPE
// line covers it (as for a histogram's name without a suffix, which names
// no series). up, Prometheus's own, is a gauge.
func (s metricSet) kind(name string) string {
	if name == "up" {
		return "gauge"
	}
	if t, ok := s.types[name]; ok {
		if t == "histogram" || t == "summary" {
			return "" // the family, not a series: its series have suffixes
		}
		return t
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if t := s.types[base]; t == "histogram" || t == "summary" && suffix != "_bucket" {
			return t + suffix
		}
	}
	return ""
}

// checkDashboard returns what is wrong with the dashboard's queries: a
// query that does not parse (unbalanced parentheses, a stray token); a
// metric no service exposes, or a label none of the query's metrics
// carries (up, job and instance are Prometheus's own); a structure that
// cannot be right (promqlShape); a metric used against its type
// (promqlTypes).
func checkDashboard(d dashboard, set metricSet) []string {
	var problems []string
	for title, exprs := range d.exprs() {
		for _, e := range exprs {
			n, err := parsePromQL(e)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", title, err))
				continue
			}
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
				if set.series[m] == nil {
					problems = append(problems, fmt.Sprintf("%s: %s is not a metric of the services", title, m))
				}
				for l := range set.series[m] {
					have[l] = true
				}
			}
			for _, l := range labels {
				if !have[l] {
					problems = append(problems, fmt.Sprintf("%s: label %s is on none of %v", title, l, metrics))
				}
			}
			for _, p := range append(promqlShape(n), promqlTypes(n, set.kind)...) {
				problems = append(problems, fmt.Sprintf("%s: %s", title, p))
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
	out := &testenv.Buffer{}
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

// TestDashboardQueriesRealMetrics: every query of the dashboard parses,
// every metric and label it uses is one the services expose, and it uses
// each metric as the metric's type allows, as scraped (# TYPE lines
// included) from their /metrics in a run of the whole pipeline.
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

	// So does every malformed query, against the types the services give
	// their metrics.
	requireCaught(t, set, badQueries)
}

// singleQuery is a dashboard of one panel with one query.
func singleQuery(title, expr string) dashboard {
	return dashboard{Panels: []panel{{Title: title, Targets: []struct {
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	}{{Expr: expr}}}}}
}

// badQuery is a malformed query and what its problem says.
type badQuery struct{ what, expr, want string }

// badQueries are malformed queries on the services' real metrics, each
// with (part of) the problem the checks must report. The first five are
// the ones that used to pass, when only the names in a query were checked.
var badQueries = []badQuery{
	{"histogram_quantile without le",
		`histogram_quantile(0.99, sum by (view) (rate(freshet_featurize_freshness_seconds_bucket[$__rate_interval])))`,
		"the buckets' le must be kept, by (le, ...)"},
	{"unbalanced parentheses",
		`histogram_quantile(0.99, sum by (le, view) (rate(freshet_featurize_freshness_seconds_bucket[$__rate_interval]))`,
		`unbalanced: '(' at offset 18 is never closed`},
	{"rate on a gauge",
		`max by (topic, partition) (rate(freshet_featurize_consumer_lag_messages[$__rate_interval]))`,
		"freshet_featurize_consumer_lag_messages is a gauge"},
	{"rate on a gauge, by its name",
		`max by (topic, partition) (rate(freshet_featurize_consumer_lag_messages[$__rate_interval]))`,
		"rate(freshet_featurize_consumer_lag_messages[...]): rate, increase and irate are for counters and histograms, whose series end in"},
	{"a stray )))",
		`sum by (outcome) (rate(freshet_featurize_events_total[$__rate_interval])))))`,
		`unbalanced: ')' at offset 73 closes nothing`},
	{"only )))", `)))`, `unbalanced: ')' at offset 0 closes nothing`},
	{"a bracket closed by a parenthesis",
		`sum(rate(freshet_featurize_events_total[5m)])`, `unbalanced: ')' at offset 42 closes '['`},
	{"an unclosed brace", `sum(freshet_featurize_consumer_lag_messages{topic="a")`, `unbalanced: ')' at offset 53 closes '{'`},
	{"two expressions", `sum(freshet_featurize_consumer_lag_messages) up`, `unexpected "up" at offset 45 after a complete expression`},
	{"a misspelt function", `sum(rat(freshet_featurize_events_total[5m]))`, "rat at offset 4 is not a PromQL function"},
	{"rate without a range", `sum(rate(freshet_featurize_events_total))`, "rate takes a range of a series"},
	{"a counter's raw value", `sum by (outcome) (freshet_featurize_events_total)`,
		"freshet_featurize_events_total (a counter) outside rate or increase"},
	{"histogram_quantile without a sum",
		`histogram_quantile(0.5, rate(freshet_featurize_freshness_seconds_bucket[5m]))`, "histogram_quantile over no sum of the buckets"},
	{"histogram_quantile over max",
		`histogram_quantile(0.5, max by (le) (rate(freshet_featurize_freshness_seconds_bucket[5m])))`, "histogram_quantile over no sum of the buckets"},
	{"histogram_quantile without rate",
		`histogram_quantile(0.5, sum by (le) (freshet_featurize_freshness_seconds_bucket))`, "histogram_quantile over the sum of no rate or increase"},
	{"histogram_quantile over a _count",
		`histogram_quantile(0.5, sum by (le) (rate(freshet_featurize_freshness_seconds_count[5m])))`, "histogram_quantile over no _bucket series"},
	{"histogram_quantile over sum without (le)",
		`histogram_quantile(0.5, sum without (le) (rate(freshet_featurize_freshness_seconds_bucket[5m])))`, "the buckets' le must be kept"},
}

// requireCaught checks that each bad query fails the dashboard's checks
// with the problem it should, and logs what was reported.
func requireCaught(t *testing.T, set metricSet, bad []badQuery) {
	t.Helper()
	for _, b := range bad {
		problems := checkDashboard(singleQuery(b.what, b.expr), set)
		t.Logf("%s: %s\n\t%s", b.what, b.expr, strings.Join(problems, "\n\t"))
		require.True(t, slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, b.want) }),
			"%s: %s: want a problem with %q, got %q", b.what, b.expr, b.want, problems)
	}
}

// scrapeSample is a scrape of the kinds of metrics the checks tell apart,
// in the text format the services expose.
const scrapeSample = `# HELP freshet_featurize_freshness_seconds Age of a feature when written.
# TYPE freshet_featurize_freshness_seconds histogram
freshet_featurize_freshness_seconds_bucket{view="user_spend",le="0.1"} 3
freshet_featurize_freshness_seconds_bucket{view="user_spend",le="+Inf"} 4
freshet_featurize_freshness_seconds_sum{view="user_spend"} 0.5
freshet_featurize_freshness_seconds_count{view="user_spend"} 4
# TYPE freshet_featurize_consumer_lag_messages gauge
freshet_featurize_consumer_lag_messages{topic="t",partition="0"} 2
# TYPE freshet_featurize_events_total counter
freshet_featurize_events_total{outcome="applied"} 7
# TYPE misnamed_total gauge
misnamed_total 1
`

// TestPromQLChecks: the dashboard's checks catch malformed queries
// without a run of the pipeline (TestDashboardQueriesRealMetrics repeats
// this against the real scrape), and pass well-formed ones.
func TestPromQLChecks(t *testing.T) {
	set, err := parseMetrics(scrapeSample)
	require.NoError(t, err)
	require.Equal(t, "histogram_bucket", set.kind("freshet_featurize_freshness_seconds_bucket"))
	require.Equal(t, "histogram_count", set.kind("freshet_featurize_freshness_seconds_count"))
	require.Equal(t, "gauge", set.kind("freshet_featurize_consumer_lag_messages"))
	require.Equal(t, "counter", set.kind("freshet_featurize_events_total"))
	require.Equal(t, "", set.kind("freshet_featurize_freshness_seconds"))
	requireCaught(t, set, append(badQueries, badQuery{"rate on a gauge named like a counter",
		`sum(rate(misnamed_total[5m]))`, "misnamed_total is a gauge"}))

	for _, good := range []string{
		`histogram_quantile(0.99, sum by (le, view) (rate(freshet_featurize_freshness_seconds_bucket[$__rate_interval])))`,
		`histogram_quantile(0.5, sum(rate(freshet_featurize_freshness_seconds_bucket{view=~"a|b"}[5m])) by (le))`,
		`sum(rate(freshet_featurize_freshness_seconds_sum[5m])) / sum(rate(freshet_featurize_freshness_seconds_count[5m]))`,
		`max by (topic, partition) (freshet_featurize_consumer_lag_messages)`,
		`freshet_featurize_consumer_lag_messages > bool 10`,
		`topk(3, sum by (outcome) (increase(freshet_featurize_events_total[1h] offset 1d)))`,
		`-max_over_time(freshet_featurize_consumer_lag_messages[10m:1m])`,
		`sum by (outcome) (rate(freshet_featurize_events_total[5m])) / ignoring (outcome) group_left sum (rate(freshet_featurize_events_total[5m]))`,
		`up{job=~"ingest|featurize|serve"} == 0`,
	} {
		require.Empty(t, checkDashboard(singleQuery("good", good), set), good)
	}
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
