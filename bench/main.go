// Command bench is freshet's benchmark harness: it runs the real services
// against real Redis and Kafka, measures serve's latency (open loop, no
// coordinated omission), featurize's and ingest's throughput, freshness and
// memory, measures beside each figure the limit it cannot beat (go-redis or
// kafka-go alone, or a bare net/http handler), and writes
// bench/results/<date>.md and .json with their ratios and the goals of
// issue 7.
//
//	go run ./bench            # full run, under 10 minutes on 2 cores
//	go run ./bench -short     # smoke run, under 2 minutes; CI judges no timing
//
// Redis and Kafka are reused when FRESHET_TEST_REDIS_URL and
// FRESHET_TEST_KAFKA_BROKERS (or -redis-url and -kafka-brokers) name them;
// otherwise scripts/redis-local.sh and scripts/kafka-local.sh start them on
// free ports, and they are stopped at the end. A reused Kafka behind TLS or
// SASL takes the services' flags (-kafka-tls, -kafka-ca, -kafka-sasl,
// -kafka-username, -kafka-password-file, ...), which the harness's clients
// and the services it starts both use. The exit status is 0 when
// the pipeline worked, whatever the timings, and 1 when a check failed
// (serve answered errors, featurize never caught up, ...).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/schemas"
)

func main() {
	short := flag.Bool("short", false, "smoke run: a small workload and short phases, under 2 minutes")
	out := flag.String("out", "", "directory of the report, relative to the repository root (default bench/results; with -short, a temporary directory, so a smoke run never overwrites a committed report)")
	redisURL := flag.String("redis-url", os.Getenv("FRESHET_TEST_REDIS_URL"), "Redis to reuse (default: start one)")
	brokers := flag.String("kafka-brokers", os.Getenv("FRESHET_TEST_KAFKA_BROKERS"), "Kafka brokers to reuse, comma-separated (default: start one)")
	kafkaDir := flag.String("kafka-dir", filepath.Join(os.TempDir(), "freshet-bench-kafka"), "work dir of the Kafka broker the harness starts")
	profiles := flag.Bool("profile", true, "profile the phases that have goals and save the profiles of missed goals beside the report (never with -short)")
	// The TLS and SASL of a reused Kafka: -kafka-tls, -kafka-ca, ...,
	// -kafka-sasl, as the services take them.
	var security broker.Security
	security.RegisterFlags(flag.CommandLine)
	only := flag.String("only", "", "run only these phases, comma-separated: featurize, serve, ingest, freshness (serve needs featurize's topic: it then loads just that one)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := security.Validate(); err != nil {
		log.Error("bench: bad Kafka settings", "error", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	plan := FullPlan()
	if *short {
		plan, *profiles = ShortPlan(), false
	}
	if *out == "" {
		*out = "bench/results"
		if *short {
			*out = filepath.Join(os.TempDir(), "freshet-bench-results")
		}
	}
	if *only != "" {
		plan.Only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			plan.Only[strings.TrimSpace(p)] = true
		}
		if plan.Only["serve"] && !plan.Only["featurize"] {
			plan.Entities, plan.Only["featurize"] = []int{plan.HeavyEntities, plan.ServeEntities}, true
		}
	}
	code, err := run(ctx, log, plan, *short, *out, *profiles, Servers{RedisURL: *redisURL, Brokers: *brokers, Kafka: security, KafkaDir: *kafkaDir})
	if err != nil {
		log.Error("bench failed", "error", err)
	}
	os.Exit(code)
}

// bench is the state of one run.
type bench struct {
	env     *Env
	plan    Plan
	log     *slog.Logger
	reg     *schemas.Registry
	typ     *schemas.Event
	layouts map[string]*aggregate.Layout
	views   []string
	// id makes this run's topics, groups and keys unique.
	id     string
	rep    *Report
	prof   *profiler
	client *http.Client
	// serveDS is the featurize topic whose state serve reads; heavyDS the
	// one whose heavier entities it reads too.
	serveDS, heavyDS *dataset
	rss              []rssFigure
	uses             []cpuUse
	// samples holds what the keys of each featurize topic hold, by view.
	samples map[*dataset]map[string]viewSample
}

// rssFigure is a service's peak RSS during one phase.
type rssFigure struct {
	service, phase string
	bytes          int64
}

// run returns the exit status: 0 when every check passed, 1 otherwise.
func run(ctx context.Context, log *slog.Logger, plan Plan, short bool, outDir string, profiles bool, srv Servers) (int, error) {
	started := time.Now()
	env, err := NewEnv(ctx, srv, log)
	if env != nil {
		defer env.Close()
	}
	if err != nil {
		return 1, err
	}
	b := &bench{
		env: env, plan: plan, log: log, layouts: map[string]*aggregate.Layout{}, samples: map[*dataset]map[string]viewSample{},
		id:     fmt.Sprintf("bench%d", started.Unix()%1e8),
		rep:    &Report{Date: started.Format("2006-01-02"), Started: started, Short: short},
		client: newClient(),
	}
	if b.prof, err = newProfiler(filepath.Join(env.Work, "profiles"), profiles, log); err != nil {
		return 1, err
	}
	if err := b.load(); err != nil {
		return 1, err
	}
	b.rep.Machine = machine(ctx, env)
	if la := loadAvg(); la > 1 {
		log.Warn("the machine is busy before the run: figures will be noisy", "load average", la)
	}
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		// Ingest first: its million events warm Kafka's JIT up. Freshness
		// next, on a Redis still small: after the featurize topics its
		// millions of keys make Redis rehash, which is the featurize
		// phase's cost, not the live path's.
		{"ingest", b.ingestPhase},
		{"freshness", b.freshnessPhase},
		{"featurize", b.featurizePhase},
		{"serve", b.servePhase},
	}
	for _, p := range phases {
		if ctx.Err() != nil {
			break
		}
		if plan.Only != nil && !plan.Only[p.name] {
			continue
		}
		t := time.Now()
		log.Info("phase starts", "phase", p.name, "load average", loadAvg())
		before := snapshot(env.RedisPID, env.KafkaPID)
		err := p.run(ctx)
		b.uses = append(b.uses, use(p.name, before, snapshot(env.RedisPID, env.KafkaPID)))
		if err != nil {
			b.rep.Broken = append(b.rep.Broken, fmt.Sprintf("%s: %v", p.name, err))
			log.Error("phase failed", "phase", p.name, "error", err)
			if p.name == "featurize" { // serve needs its state
				break
			}
		}
		log.Info("phase done", "phase", p.name, "took", time.Since(t).Round(100*time.Millisecond))
	}
	b.memoryRows()
	b.machineRows()
	b.rep.Seconds = time.Since(started).Seconds()
	dir := outDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(env.Root, dir)
	}
	b.rep.Profiles = b.prof.Keep(b.rep, dir)
	b.cleanup(ctx)
	paths, err := b.rep.Write(dir)
	if err != nil {
		return 1, err
	}
	log.Info("report written", "files", strings.Join(paths, ", "), "took", time.Since(started).Round(time.Second))
	fmt.Fprint(os.Stderr, summary(b.rep))
	if ctx.Err() != nil {
		return 1, ctx.Err()
	}
	if len(b.rep.Broken) > 0 {
		return 1, fmt.Errorf("%d checks failed: %s", len(b.rep.Broken), strings.Join(b.rep.Broken, "; "))
	}
	return 0, nil
}

// load reads the bench definitions and plans their layouts.
func (b *bench) load() error {
	reg, err := schemas.Load(filepath.Join(b.env.Root, "bench", "schemas"))
	if err != nil {
		return fmt.Errorf("load bench/schemas: %w", err)
	}
	b.reg, b.typ = reg, reg.Events["transaction"]
	if b.typ == nil {
		return fmt.Errorf("bench/schemas declares no transaction event")
	}
	for name, v := range reg.Views {
		l, err := aggregate.NewLayout(v)
		if err != nil {
			return fmt.Errorf("layout of %s: %w", name, err)
		}
		b.layouts[name] = l
		b.views = append(b.views, name)
	}
	sort.Strings(b.views)
	if v := reg.Views[serveView]; v == nil || len(v.Features) != 10 {
		return fmt.Errorf("bench/schemas must declare view %s with 10 features", serveView)
	}
	return nil
}

// summary is the table as a few plain lines for the terminal.
func summary(r *Report) string {
	var s strings.Builder
	s.WriteString("\n")
	for _, row := range r.Rows {
		verdict := ""
		if row.Pass != nil {
			verdict = "pass"
			if !*row.Pass {
				verdict = "MISS " + row.Miss
			}
		}
		ratio := ""
		if row.Ratio > 0 {
			ratio = fmt.Sprintf("ratio %s to %s", num(row.Ratio), row.LimitName)
		}
		fmt.Fprintf(&s, "%-22s %-48s %14s  %-50s %s\n", row.Section, row.Figure, fmtValue(row.Value, row.Unit), ratio, verdict)
	}
	for _, br := range r.Broken {
		fmt.Fprintf(&s, "BROKEN: %s\n", br)
	}
	return s.String()
}

// machine describes the machine and the servers' versions.
func machine(ctx context.Context, env *Env) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Kafka: "Apache Kafka (scripts/kafka-local.sh)", LoadAverage: loadAvg()}
	if !env.KafkaStarted {
		m.Kafka = "Apache Kafka (reused: " + strings.Join(env.Brokers, ",") + ")"
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGiB = int((kb + 512*1024) / (1024 * 1024))
		}
	}
	if info, err := env.Redis.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	return m
}
