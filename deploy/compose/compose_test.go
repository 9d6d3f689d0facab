package compose

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// stack loads the compose file, with the observability override when
// observability is true, every profile enabled.
func stack(t testing.TB, observability bool) *types.Project {
	t.Helper()
	files := []string{File}
	if observability {
		files = append(files, ObservabilityFile)
	}
	p, err := Load(context.Background(), nil, files...)
	require.NoError(t, err)
	return p
}

// freshetServices returns the services that run a freshet program, by name.
func freshetServices(p *types.Project) map[string]types.ServiceConfig {
	out := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		if IsFreshet(s) {
			out[name] = s
		}
	}
	return out
}

func TestStackParses(t *testing.T) {
	for _, obs := range []bool{false, true} {
		p := stack(t, obs)
		for _, want := range []string{"kafka", "redis", "ingest", "featurize", "serve", "demo", "otel-collector", "prometheus", "grafana", "jaeger"} {
			require.Contains(t, p.Services, want, "with every profile enabled")
		}
		featurize := p.Services["featurize"]
		require.Equal(t, 2, featurize.GetScale(), "featurize runs two replicas in one consumer group")
		for name, s := range p.Services {
			for _, prof := range s.Profiles {
				require.Contains(t, []string{"demo", "observability"}, prof, "service %s: an undocumented profile", name)
			}
		}
	}
}

// TestNoVersionKey: the Compose Specification has no version; compose
// warns that it is obsolete.
func TestNoVersionKey(t *testing.T) {
	for _, f := range []string{File, ObservabilityFile} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var top map[string]any
		require.NoError(t, yaml.Unmarshal(b, &top), f)
		_, has := top["version"]
		require.False(t, has, "%s: the Compose Specification has no version key (compose calls it obsolete)", f)
	}
}

// fullVersion is a tag that names a release down to its patch level:
// 1.26.8, v3.1.0, 1.26.8-bookworm, 7.4.2-alpine.
var fullVersion = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-+_.].*)?$`)

// pinned reports whether an image reference names one release: a digest,
// or a tag with a full major.minor.patch version. latest, no tag, and
// floating tags that name only a major or a minor version (golang:1.26-bookworm,
// redis:7.4, redis:7) are refused: they move with every patch release, so
// two builds of one commit could differ. Every image the stack and the
// Dockerfile use publishes patch-level tags.
func pinned(image string) error {
	if image == "" {
		return fmt.Errorf("no image")
	}
	name, digest, _ := strings.Cut(image, "@")
	if digest != "" {
		return nil
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") {
		return fmt.Errorf("%s: no tag (that is latest)", image)
	}
	tag := name[i+1:]
	if tag == "latest" || tag == "" {
		return fmt.Errorf("%s: latest is not a version", image)
	}
	if !fullVersion.MatchString(tag) {
		return fmt.Errorf("%s: tag %q names no full version (major.minor.patch): it moves with each release", image, tag)
	}
	return nil
}

func TestPinned(t *testing.T) {
	for _, ok := range []string{"golang:1.26.8-bookworm", "redis:7.4.2", "apache/kafka:4.1.0", "prom/prometheus:v3.1.0",
		"localhost:5000/freshet:0.1.0", "golang@sha256:0123abcd", "golang:1.26@sha256:0123abcd"} {
		require.NoError(t, pinned(ok), ok)
	}
	for _, bad := range []string{"golang:1.26-bookworm", "golang:1.26", "golang:1", "golang:bookworm", "redis:7.4", "redis:7",
		"redis", "redis:latest", "localhost:5000/freshet", "grafana/grafana:11", "prom/prometheus:v3.1", ""} {
		require.Error(t, pinned(bad), bad)
	}
}

func TestImagesPinned(t *testing.T) {
	p := stack(t, true)
	for name, s := range p.Services {
		require.NoError(t, pinned(s.Image), "service %s", name)
	}
	// And the images the Dockerfile builds from.
	stages, err := ParseDockerfile(filepath.Join(testenv.RepoRoot(t), "Dockerfile"))
	require.NoError(t, err)
	names := map[string]bool{}
	for _, st := range stages {
		if st.Image != "scratch" && !names[st.Image] {
			require.NoError(t, pinned(st.Image), "Dockerfile:%d: FROM", st.Line)
		}
		names[st.Name] = true
	}
}

// TestSettingsAreTheProgramsOwn: every FRESHET_* variable a freshet
// service sets (its image's included) and every flag of its command is a
// setting of the program it runs, as that program's own flag set says
// (pipeline/cli, devmode.NewDemo), with a value the program accepts.
func TestSettingsAreTheProgramsOwn(t *testing.T) {
	for _, obs := range []bool{false, true} {
		p := stack(t, obs)
		services := freshetServices(p)
		require.Len(t, services, 4, "ingest, featurize, serve and demo")
		for name, s := range services {
			require.Empty(t, s.EnvFiles, "service %s: settings in an env file escape these checks", name)
			prog, err := ProgramOf(s.Command)
			require.NoError(t, err, "service %s", name)
			env, err := ServiceEnv(s)
			require.NoError(t, err)
			require.NoError(t, prog.Parse(env), "service %s (%s)", name, prog.Name)
			for k := range env {
				switch {
				case strings.HasPrefix(k, "FRESHET_"), k == "PATH":
				case strings.HasPrefix(k, "OTEL_"):
					require.Contains(t, documentedOTel(t), k, "service %s: an OTEL_ variable the README does not name", name)
				default:
					t.Errorf("service %s: %s is neither a FRESHET_* setting nor a standard OTEL_* variable", name, k)
				}
			}
		}
	}
}

// TestSettingsCheckFails shows the check above catches what it should.
func TestSettingsCheckFails(t *testing.T) {
	prog, err := ProgramOf([]string{"serve"})
	require.NoError(t, err)
	require.ErrorContains(t, prog.Parse(map[string]string{"FRESHET_KAFKA_BROKERS": "kafka:9092"}), "FRESHET_KAFKA_BROKERS is not a setting of serve")
	prog, _ = ProgramOf([]string{"featurize"})
	require.ErrorContains(t, prog.Parse(map[string]string{"FRESHET_BATCH_SIZE": "many"}), "FRESHET_BATCH_SIZE")
	prog, _ = ProgramOf([]string{"freshet", "demo", "--no-such-flag"})
	require.Error(t, prog.Parse(nil))
	_, err = ProgramOf([]string{"freshet", "dev"})
	require.Error(t, err)
	_, err = ProgramOf([]string{"ingest", "replay"})
	require.Error(t, err)
}

// documentedOTel is the OTEL_* variables the README's Observability
// section names: the standard ones the services read.
func documentedOTel(t testing.TB) []string {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	require.NoError(t, err)
	return regexp.MustCompile(`OTEL_[A-Z_]+[A-Z]`).FindAllString(string(b), -1)
}

// TestOTLPOnlyWithObservability: the services export traces to the
// collector only with observability.yml, and the endpoint is the
// collector's OTLP/HTTP receiver.
func TestOTLPOnlyWithObservability(t *testing.T) {
	for name, s := range freshetServices(stack(t, false)) {
		for k := range s.Environment {
			require.False(t, strings.HasPrefix(k, "OTEL_"), "service %s sets %s outside the observability override", name, k)
		}
	}
	p := stack(t, true)
	collector := otelCollectorConfig(t)
	for _, name := range []string{"ingest", "featurize", "serve"} {
		v := p.Services[name].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
		require.NotNil(t, v, "service %s exports no traces with the observability override", name)
		u, err := url.Parse(*v)
		require.NoError(t, err)
		require.Equal(t, "http", u.Scheme)
		require.Contains(t, p.Services, u.Hostname())
		require.Contains(t, p.Services[u.Hostname()].Profiles, "observability")
		require.Equal(t, "0.0.0.0:"+u.Port(), collector.Receivers.OTLP.Protocols.HTTP.Endpoint,
			"the collector receives OTLP over HTTP where the services send it")
	}
	require.Equal(t, []string{"otlp"}, collector.Service.Pipelines.Traces.Receivers)
	for _, e := range collector.Service.Pipelines.Traces.Exporters {
		host, _, err := net.SplitHostPort(collector.Exporters[e].Endpoint)
		require.NoError(t, err, "exporter %s", e)
		require.Equal(t, "jaeger", host, "traces go to Jaeger")
	}
}

type collectorConfig struct {
	Receivers struct {
		OTLP struct {
			Protocols struct {
				HTTP struct{ Endpoint string }
			}
		} `yaml:"otlp"`
	}
	Exporters map[string]struct{ Endpoint string }
	Service   struct {
		Pipelines struct {
			Traces struct{ Receivers, Exporters []string }
		}
	}
}

func otelCollectorConfig(t testing.TB) collectorConfig {
	b, err := os.ReadFile("otel-collector.yaml")
	require.NoError(t, err)
	var c collectorConfig
	require.NoError(t, yaml.Unmarshal(b, &c))
	return c
}

// httpPort is the port a freshet service listens on, from its settings.
func httpPort(t testing.TB, s types.ServiceConfig) string {
	t.Helper()
	prog, err := ProgramOf(s.Command)
	require.NoError(t, err)
	env, err := ServiceEnv(s)
	require.NoError(t, err)
	require.NoError(t, prog.Parse(env))
	port, err := prog.HTTPPort()
	require.NoError(t, err)
	return port
}

// noHealthcheck is every service of the stack without a healthcheck, with
// the reason. Every other service has one, and a service that depends on
// one of these can only wait for it to start.
var noHealthcheck = map[string]string{
	"otel-collector": "otel/opentelemetry-collector-contrib is built FROM scratch: no shell, no wget or curl, " +
		"and no probe command of its own",
	"jaeger": "jaegertracing/jaeger has no probe command of its own, and no tool in its image is known here to " +
		"work as one (no Docker engine runs these tests); a healthcheck that cannot run marks the service " +
		"unhealthy for good, and what waits for it healthy never starts",
	"demo": "freshet demo listens on nothing (pipeline/devmode/demo.go only sends to ingest), and the image's " +
		"only probe, `freshet healthcheck URL`, could only ask another service: that service's health, not the " +
		"demo's; nothing depends on the demo",
}

// probes is what the healthcheck of each service not built from the
// Dockerfile runs, by image: the only commands it may use, with why the
// image has them. The freshet image has `freshet healthcheck` and nothing
// else.
var probes = map[string]struct{ test, why string }{
	"apache/kafka":    {"CMD-SHELL", "a Debian-based image with a shell and Kafka's own scripts in /opt/kafka/bin"},
	"redis":           {"redis-cli", "the official image ships redis-cli with the server"},
	"prom/prometheus": {"wget", "the image is built on busybox, which has wget"},
	"grafana/grafana": {"wget", "the image is built on Alpine, whose busybox has wget"},
}

// TestHealthchecksAndDependencies: every service has a healthcheck,
// except those in noHealthcheck, and every dependency on a service with a
// healthcheck waits for it to be healthy. A freshet service's asks its own
// /readyz on the port it listens on, with `freshet healthcheck`; another
// image's runs only what that image has (probes), and an HTTP probe asks
// the service itself on a port it exposes.
func TestHealthchecksAndDependencies(t *testing.T) {
	p := stack(t, true)
	for name := range noHealthcheck {
		require.Contains(t, p.Services, name, "noHealthcheck names a service the stack does not have")
	}
	for name, s := range p.Services {
		hc := s.HealthCheck
		has := hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE"
		if reason, ok := noHealthcheck[name]; ok {
			require.False(t, has, "service %s has a healthcheck now: take it out of noHealthcheck (%s)", name, reason)
			continue
		}
		require.True(t, has, "service %s has no healthcheck (an exception goes in noHealthcheck, with its reason)", name)
		if IsFreshet(s) {
			require.Len(t, hc.Test, 4, "service %s: healthcheck %q", name, hc.Test)
			require.Equal(t, []string{"CMD", "freshet", "healthcheck"}, []string(hc.Test[:3]),
				"service %s: the image has no shell and no curl", name)
			u, err := url.Parse(hc.Test[3])
			require.NoError(t, err)
			require.Equal(t, "/readyz", u.Path, "service %s", name)
			port := httpPort(t, s)
			require.NotEmpty(t, port, "service %s listens on nothing: it has nothing of its own to check (see noHealthcheck)", name)
			require.Equal(t, "localhost", u.Hostname(), "service %s checks itself", name)
			require.Equal(t, port, u.Port(), "service %s: its healthcheck asks another port than it listens on", name)
			continue
		}
		repo, _, _ := strings.Cut(s.Image, ":")
		probe, ok := probes[repo]
		require.True(t, ok, "service %s: what can a healthcheck run in %s? Say it in probes", name, repo)
		switch hc.Test[0] {
		case "CMD-SHELL":
			require.Equal(t, "CMD-SHELL", probe.test, "service %s: %s has no shell for CMD-SHELL", name, repo)
		case "CMD":
			require.Greater(t, len(hc.Test), 1, "service %s", name)
			require.Equal(t, probe.test, hc.Test[1], "service %s: %s has %s (%s)", name, repo, probe.test, probe.why)
		default:
			t.Errorf("service %s: healthcheck %q is neither CMD nor CMD-SHELL", name, hc.Test)
		}
		for _, w := range hc.Test[1:] {
			if u, err := url.Parse(w); err == nil && u.Scheme == "http" {
				require.Equal(t, "localhost", u.Hostname(), "service %s checks itself", name)
				require.True(t, slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return strconv.Itoa(int(pc.Target)) == u.Port() }),
					"service %s: its healthcheck asks port %s, which it does not expose", name, u.Port())
			}
		}
	}
	for name, s := range p.Services {
		if IsFreshet(s) {
			require.NotEmpty(t, s.DependsOn, "service %s waits for nothing", name)
		}
		for dep, d := range s.DependsOn {
			require.Contains(t, p.Services, dep, "service %s", name)
			if _, none := noHealthcheck[dep]; none {
				require.Equal(t, types.ServiceConditionStarted, d.Condition,
					"service %s waits for %s, which has no healthcheck (%s), to be %s", name, dep, noHealthcheck[dep], d.Condition)
			} else {
				require.Equal(t, types.ServiceConditionHealthy, d.Condition,
					"service %s: depends on %s without waiting for it to be healthy", name, dep)
			}
		}
	}
	services := freshetServices(p)
	// Every address of a freshet service that another one names is the
	// port that service listens on.
	for name, s := range services {
		env, err := ServiceEnv(s)
		require.NoError(t, err)
		for k, v := range env {
			for other, o := range services {
				for _, m := range regexp.MustCompile(`(?:^|[/@,])`+regexp.QuoteMeta(other)+`:([0-9]+)`).FindAllStringSubmatch(v, -1) {
					require.Equal(t, httpPort(t, o), m[1], "service %s: %s=%s", name, k, v)
				}
			}
		}
	}
}

// TestPorts: no two services publish the same host port, a replicated
// service publishes none (its replicas would collide), and a freshet
// service publishes the port it listens on.
func TestPorts(t *testing.T) {
	p := stack(t, true)
	taken := map[string]string{}
	for name, s := range p.Services {
		if s.GetScale() > 1 {
			for _, port := range s.Ports {
				require.Empty(t, port.Published, "service %s runs %d replicas: a fixed host port collides", name, s.GetScale())
			}
		}
		for _, port := range s.Ports {
			require.NotEmpty(t, port.Published, "service %s: port %d published on a random host port", name, port.Target)
			lo, hi, err := portRange(port.Published)
			require.NoError(t, err, "service %s", name)
			for n := lo; n <= hi; n++ {
				key := fmt.Sprintf("%s:%d/%s", port.HostIP, n, port.Protocol)
				require.NotContains(t, taken, key, "host port %d of %s is also %s's", n, name, taken[key])
				taken[key] = name
			}
			if IsFreshet(s) {
				require.Equal(t, httpPort(t, s), strconv.Itoa(int(port.Target)), "service %s publishes a port it does not listen on", name)
			}
		}
	}
	require.Contains(t, taken, ":8080/tcp", "serve is published")
	require.Contains(t, taken, ":8081/tcp", "ingest is published")
}

func portRange(published string) (int, int, error) {
	a, b, isRange := strings.Cut(published, "-")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, fmt.Errorf("published port %q: %w", published, err)
	}
	if !isRange {
		return lo, lo, nil
	}
	hi, err := strconv.Atoi(b)
	if err != nil {
		return 0, 0, fmt.Errorf("published port %q: %w", published, err)
	}
	return lo, hi, nil
}

// TestBindMountsExist: every file or directory the stack mounts is in the
// repository.
func TestBindMountsExist(t *testing.T) {
	for name, s := range stack(t, true).Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				_, err := os.Stat(v.Source)
				require.NoError(t, err, "service %s mounts %s", name, v.Source)
			}
		}
	}
}

type promConfig struct {
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

type scrapeConfig struct {
	JobName       string `yaml:"job_name"`
	StaticConfigs []struct {
		Targets []string
	} `yaml:"static_configs"`
	DNSSDConfigs []struct {
		Names []string
		Type  string
		Port  int
	} `yaml:"dns_sd_configs"`
}

// TestPrometheusScrapesEveryService: each freshet service with an HTTP
// address is a job of its own, on the port it listens on; a replicated one
// is found by DNS, so that each replica is a target.
func TestPrometheusScrapesEveryService(t *testing.T) {
	b, err := os.ReadFile("prometheus.yml")
	require.NoError(t, err)
	var cfg promConfig
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	p := stack(t, true)
	jobs := 0
	for name, s := range freshetServices(p) {
		port := httpPort(t, s)
		if port == "" {
			continue
		}
		jobs++
		i := slices.IndexFunc(cfg.ScrapeConfigs, func(c scrapeConfig) bool { return c.JobName == name })
		require.GreaterOrEqual(t, i, 0, "no scrape job for %s", name)
		job := cfg.ScrapeConfigs[i]
		if s.GetScale() > 1 {
			require.Len(t, job.DNSSDConfigs, 1, "%s has replicas: find them by DNS", name)
			d := job.DNSSDConfigs[0]
			require.Equal(t, []string{name}, d.Names)
			require.Equal(t, "A", d.Type)
			require.Equal(t, port, strconv.Itoa(d.Port), "job %s", name)
		} else {
			require.Len(t, job.StaticConfigs, 1)
			require.Equal(t, []string{name + ":" + port}, job.StaticConfigs[0].Targets, "job %s", name)
		}
	}
	require.Equal(t, 3, jobs)
	require.Len(t, cfg.ScrapeConfigs, jobs)
}

// TestImageEnv reads the Dockerfile's last stage only.
func TestImageEnv(t *testing.T) {
	f := filepath.Join(t.TempDir(), "Dockerfile")
	require.NoError(t, os.WriteFile(f, []byte("FROM golang:1 AS b\nENV A=1\nFROM scratch\n# c\nENV PATH=/bin \\\n  B=2\n"), 0o644))
	env, err := ImageEnv(f)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"PATH": "/bin", "B": "2"}, env)
	require.NoError(t, os.WriteFile(f, []byte("FROM scratch\nENV A \"x y\"\n"), 0o644))
	_, err = ImageEnv(f)
	require.Error(t, err)
}
