// Package devmode runs all of freshet in one process for a first try: an
// in-process Kafka-protocol broker (kfake) and Redis-protocol store
// (miniredis), ingest, featurize and serve, fed with the example events moved
// to the present and a small live feed. The embedded servers are for this
// mode and tests only; production runs the three services against real Kafka
// and Redis.
package devmode

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/freshet-ml/freshet/pipeline/auth"
	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/featurize"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/ingest"
	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/serve"
	"github.com/freshet-ml/freshet/pipeline/store"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/schemas"
)

// Config is dev mode's settings.
type Config struct {
	Schemas string
	// Registry, when not nil, is the definitions already loaded from
	// Schemas; nil: Run loads them.
	Registry *schemas.Registry
	// Sample is an NDJSON file of events of type Event, replayed with its
	// times shifted so that the last event is now. Empty: events.ndjson
	// beside the definitions (in the Schemas directory, or the directory
	// of the Schemas file).
	Sample string
	// Event is the sample's event type; empty: the only one defined.
	Event         string
	KafkaPort     int // taken: a free port instead
	RedisPort     int // taken: a free port instead
	IngestAddr    string
	FeaturizeAddr string
	ServeAddr     string
	// LiveEvery is how often a few live events are sent; 0 sends none.
	LiveEvery time.Duration
	// Telemetry, when not nil, instruments the three services together:
	// each address serves GET /metrics of the whole process.
	Telemetry *telemetry.Providers
	// Tokens, when not nil, is the bearer tokens the three APIs require
	// (`freshet dev --tokens FILE`); the curls printed then send
	// $FRESHET_TOKEN.
	Tokens *auth.Guard
}

// RegisterFlags registers dev mode's settings with their defaults, but for
// Schemas: `freshet dev` sets it from its --schemas, which every command
// has.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Sample, "sample", "", "NDJSON sample events, replayed so that the last one is now (default: events.ndjson beside the definitions)")
	fs.StringVar(&c.Event, "event", "", "event type of the sample (default: the only one defined)")
	fs.IntVar(&c.KafkaPort, "kafka-port", 9092, "port of the embedded Kafka-protocol broker (a free one when taken)")
	fs.IntVar(&c.RedisPort, "redis-port", 6379, "port of the embedded Redis-protocol store (a free one when taken)")
	// Loopback by default, as other dev servers do: an open API on every
	// interface of a laptop is not what a first try should do.
	fs.StringVar(&c.IngestAddr, "ingest-addr", "localhost:8081", "ingest HTTP address (:8081 listens on every interface)")
	fs.StringVar(&c.FeaturizeAddr, "featurize-addr", "localhost:8082", "featurize health address")
	fs.StringVar(&c.ServeAddr, "serve-addr", "localhost:8080", "serve HTTP address")
	fs.DurationVar(&c.LiveEvery, "live-every", 2*time.Second, "send a few live events this often; 0 for none")
}

// Validate reports every setting of RegisterFlags dev mode cannot run
// with, as *config.SettingErrors joined.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		port int
	}{{"kafka-port", c.KafkaPort}, {"redis-port", c.RedisPort}} {
		if p.port < 0 || p.port > 65535 {
			errs = append(errs, &config.SettingError{Setting: p.name, Value: strconv.Itoa(p.port), Problem: "is not a port",
				Expected: "a port from 1 to 65535, e.g. 9092 (0: any free port)"})
		}
	}
	for _, a := range []struct{ name, addr string }{
		{"ingest-addr", c.IngestAddr}, {"featurize-addr", c.FeaturizeAddr}, {"serve-addr", c.ServeAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, &config.SettingError{Setting: a.name, Value: a.addr, Problem: "is not an address",
				Expected: "[host]:port, e.g. :8081 or 127.0.0.1:8081"})
		}
	}
	if c.LiveEvery < 0 {
		errs = append(errs, &config.SettingError{Setting: "live-every", Value: c.LiveEvery.String(), Problem: "is negative",
			Expected: "a duration such as 2s, or 0 for no live events"})
	}
	return errors.Join(errs...)
}

// Run starts everything, replays the sample, prints how to query it to out
// and runs until ctx ends.
func Run(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	d := &dev{cfg: cfg, out: out, log: log}
	defer d.close()
	if err := d.loadSample(); err != nil {
		return err
	}
	if err := d.startEmbedded(); err != nil {
		return err
	}
	if err := d.buildServices(); err != nil {
		return err
	}
	if err := d.listen(); err != nil {
		return err
	}
	return d.run(ctx)
}

// dev is one dev mode, built step by step by Run.
type dev struct {
	cfg Config
	out io.Writer
	log *slog.Logger

	// loadSample: the definitions and the sample.
	reg    *schemas.Registry
	typ    *schemas.Event
	sample []events.Event
	// startEmbedded: the Kafka-protocol broker and Redis-protocol store.
	brokers []string
	redis   *miniredis.Miniredis
	// buildServices: the three services, and the publisher that feeds
	// the sample in.
	kafka  broker.Config
	pub    *ingest.Publisher
	isrv   *ingest.Server
	fsvc   *featurize.Service
	ssrv   *serve.Server
	stats  *featurize.Stats
	closed []func() error
	// listen: ingest's, featurize's and serve's listeners, in that order.
	ls [3]net.Listener
}

// close releases, last first, whatever the steps opened.
func (d *dev) close() {
	for i := len(d.closed) - 1; i >= 0; i-- {
		_ = d.closed[i]() // shutting down: nothing left to report to
	}
}

// loadSample loads the definitions (unless given) and reads the sample.
func (d *dev) loadSample() error {
	d.reg = d.cfg.Registry
	if d.reg == nil {
		reg, err := schemas.Load(d.cfg.Schemas)
		if err != nil {
			return err
		}
		d.reg = reg
	}
	typ, err := sampleType(d.reg, d.cfg)
	if err != nil {
		return err
	}
	if d.cfg.Sample == "" {
		d.cfg.Sample = defaultSample(d.cfg.Schemas)
	}
	d.typ = typ
	d.sample, err = readSample(d.cfg.Sample, typ)
	return err
}

// startEmbedded starts kfake and miniredis, on the ports asked for or free
// ones, and says where.
func (d *dev) startEmbedded() error {
	kafkaPort := portOrFree(d.cfg.KafkaPort)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(kafkaPort))
	if err != nil {
		return fmt.Errorf("start embedded kafka on port %d: %w", kafkaPort, err)
	}
	d.closed = append(d.closed, func() error { cluster.Close(); return nil })
	d.redis = miniredis.NewMiniRedis()
	if err := d.redis.StartAddr(net.JoinHostPort("127.0.0.1", strconv.Itoa(portOrFree(d.cfg.RedisPort)))); err != nil {
		return fmt.Errorf("start embedded redis: %w", err)
	}
	d.closed = append(d.closed, func() error { d.redis.Close(); return nil })
	d.brokers = cluster.ListenAddrs()
	fmt.Fprintf(d.out, "freshet dev: Kafka protocol (kfake) on %s, Redis protocol (miniredis) on %s\n", d.brokers[0], d.redis.Addr())
	return nil
}

// buildServices builds ingest, featurize and serve with their defaults,
// on the embedded servers and the addresses of the settings.
func (d *dev) buildServices() error {
	rc := redis.NewClient(&redis.Options{Addr: d.redis.Addr()})
	d.closed = append(d.closed, rc.Close)
	tel := d.cfg.Telemetry
	if err := tel.InstrumentRedis(rc); err != nil {
		return err
	}
	st := store.NewRedis(rc, "freshet:")
	// As featurize's prologue does: GET /v1/views then shows the
	// definitions deployed.
	if err := st.Record(context.Background(), registry.Of(d.reg), time.Now()); err != nil {
		return err
	}

	icfg, fcfg, scfg := defaults()
	icfg.HTTPAddr, fcfg.HTTPAddr, scfg.HTTPAddr = d.cfg.IngestAddr, d.cfg.FeaturizeAddr, d.cfg.ServeAddr
	icfg.Kafka.Brokers, fcfg.Kafka.Brokers = d.brokers, d.brokers
	d.kafka = icfg.Kafka
	w := icfg.Kafka.NewWriter()
	d.closed = append(d.closed, w.Close)
	d.pub = ingest.NewPublisher(icfg.Kafka, w, ingest.WithTelemetry(tel))
	d.isrv = ingest.NewServer(d.reg, d.pub, icfg, d.log, ingest.WithTelemetry(tel), ingest.WithTokens(d.cfg.Tokens))
	var err error
	if d.fsvc, err = featurize.NewService(fcfg, d.reg, st, d.log, featurize.WithTelemetry(tel), featurize.WithTokens(d.cfg.Tokens)); err != nil {
		return err
	}
	d.stats = &d.fsvc.Proc.Stats
	d.ssrv, err = serve.New(d.reg, st, scfg, d.log, serve.WithTelemetry(tel), serve.WithTokens(d.cfg.Tokens))
	return err
}

// listen listens on each service's address or, when it is taken, on a free
// port of the same host, saying so and which flag sets it.
func (d *dev) listen() error {
	for i, a := range []struct {
		what, flag string
		addr       *string
	}{{"ingest", "--ingest-addr", &d.cfg.IngestAddr}, {"featurize", "--featurize-addr", &d.cfg.FeaturizeAddr}, {"serve", "--serve-addr", &d.cfg.ServeAddr}} {
		l, err := listenOrFree(*a.addr)
		if err != nil {
			return fmt.Errorf("%s: listen on %s: %w (%s sets the address)", a.what, *a.addr, err, a.flag)
		}
		d.ls[i] = l
		d.closed = append(d.closed, l.Close) // the service closes it too: a second close only fails
		if got := l.Addr().(*net.TCPAddr); !sameAddr(*a.addr, got.String()) {
			host, port, _ := net.SplitHostPort(*a.addr)
			moved := net.JoinHostPort(host, strconv.Itoa(got.Port))
			if port != "0" { // port 0 asks for any free one: nothing was taken
				fmt.Fprintf(d.out, "freshet dev: %s is taken (another freshet dev?): %s listens on %s instead (%s sets it)\n", *a.addr, a.what, moved, a.flag)
			}
			*a.addr = moved
		}
	}
	return nil
}

// run runs the three services, the report of dropped events and the
// sample's replay until ctx ends or one of them fails.
func (d *dev) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.isrv.Run(gctx, d.ls[0]) })
	g.Go(func() error { return d.fsvc.Run(gctx, d.ls[1]) })
	g.Go(func() error { return d.ssrv.Run(gctx, d.ls[2]) })
	g.Go(func() error {
		return reportDropped(gctx, d.out, d.stats, d.reg.ViewsOf(d.typ.Name), dropReportEvery)
	})
	g.Go(func() error { return d.feed(gctx) })
	return g.Wait()
}

// feed replays the sample moved to now, waits until featurize has it all,
// prints the welcome, then keeps the live feed going.
func (d *dev) feed(ctx context.Context) error {
	start := time.Now()
	if err := d.kafka.EnsureTopics(ctx, []string{d.kafka.Topic(d.typ.Name)}); err != nil {
		return err
	}
	shifted := Rebase(d.sample, time.Now().UnixMilli())
	if err := d.pub.Publish(ctx, shifted); err != nil {
		return fmt.Errorf("replay sample: %w", err)
	}
	for d.stats.Messages.Load() < int64(len(shifted)) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The sample went past the API: let it know how far the partitions
	// are, so that its 202s name late events at once.
	if err := d.isrv.RefreshMarks(ctx); err != nil {
		d.log.Warn("read the topic's newest event times", "error", err)
	}
	printWelcome(d.out, d.cfg, d.brokers[0], d.reg.ViewsOf(d.typ.Name), d.typ, shifted, time.Since(start))
	if d.cfg.LiveEvery > 0 {
		return liveFeed(ctx, d.pub.Publish, d.sample, d.cfg.LiveEvery)
	}
	return nil
}

// sampleType is the event type of the sample: cfg.Event, or the only one.
func sampleType(reg *schemas.Registry, cfg Config) (*schemas.Event, error) {
	names := reg.EventNames()
	if cfg.Event == "" {
		if len(names) != 1 {
			return nil, fmt.Errorf("%s defines %d event types (%s): name the sample's with --event", cfg.Schemas, len(names), strings.Join(names, ", "))
		}
		return reg.Events[names[0]], nil
	}
	typ := reg.Events[cfg.Event]
	if typ == nil {
		return nil, fmt.Errorf("event %q is not defined in %s; event types: %s", cfg.Event, cfg.Schemas, strings.Join(names, ", "))
	}
	return typ, nil
}

// defaultSample is events.ndjson beside the definitions.
func defaultSample(schemasPath string) string {
	dir := schemasPath
	if st, err := os.Stat(schemasPath); err == nil && !st.IsDir() {
		dir = filepath.Dir(schemasPath)
	}
	return filepath.Join(dir, "events.ndjson")
}

// listenOrFree listens on addr or, when its port is taken, on a free port
// of the same host: a second dev mode still starts.
func listenOrFree(addr string) (net.Listener, error) {
	l, err := httpx.Listen(addr)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return l, err
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	return httpx.Listen(net.JoinHostPort(host, "0"))
}

// sameAddr reports whether a listener on got is the one asked for as want
// (":8081" is "[::]:8081").
func sameAddr(want, got string) bool {
	_, wp, err1 := net.SplitHostPort(want)
	_, gp, err2 := net.SplitHostPort(got)
	return err1 == nil && err2 == nil && wp == gp
}

// dropReportEvery is how often dev mode says what featurize dropped.
const dropReportEvery = 2 * time.Second

// reportDropped prints a line to out whenever featurize has dropped events
// since the last look: late ones (older than their partition's newest event
// minus max_lateness) and ones with an implausible time. In dev mode the
// console is where the user looks; the counters alone would go unseen.
func reportDropped(ctx context.Context, out io.Writer, st *featurize.Stats, views []*schemas.View, every time.Duration) error {
	var lateness []string
	for _, v := range views {
		lateness = append(lateness, v.Name+" "+schemas.FormatDuration(v.MaxLateness))
	}
	var late, rejected int64
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n := st.Late.Load(); n > late {
			fmt.Fprintf(out, "freshet dev: featurize dropped %d event×view update(s) as late (%d in all): older than the newest event of their partition minus max_lateness (%s). Send current times (\"ts\": $(date +%%s)000) or replay history with --rebase-time.\n",
				n-late, n, strings.Join(lateness, ", "))
			late = n
		}
		if n := st.RejectedTime.Load(); n > rejected {
			fmt.Fprintf(out, "freshet dev: featurize skipped %d event(s) with an implausible time (%d in all): see its log, and send epoch milliseconds or RFC 3339.\n", n-rejected, n)
			rejected = n
		}
	}
}

// Rebase returns copies of evs with every event time (and the timestamp
// field) shifted by the same amount, so that the latest event is at now,
// and with fresh ids (see freshID).
func Rebase(evs []events.Event, now int64) []events.Event {
	if len(evs) == 0 {
		return nil
	}
	latest := evs[0].Time
	for _, e := range evs {
		latest = max(latest, e.Time)
	}
	run := uint64(time.Now().UnixNano())
	out := make([]events.Event, len(evs))
	for i := range evs {
		out[i] = evs[i].At(evs[i].Time + now - latest)
		freshID(&out[i], run, uint64(i))
	}
	return out
}

// freshID gives a copy of a sample event an id of its own when its type
// declares an id field: sample events are sent again (each demo run, the
// live feed), and featurize would skip a repeated id as a duplicate. A
// string id gets the run's suffix; an integer id becomes run+i.
func freshID(e *events.Event, run, i uint64) {
	if e.Type.ID == "" {
		return
	}
	f, ok := e.Type.Field(e.Type.ID)
	if !ok {
		return
	}
	switch v := &e.Values[f.Index]; v.Kind {
	case events.String:
		v.S += "-" + strconv.FormatUint(run, 36)
	case events.Int:
		v.I = int64((run + i) &^ (1 << 63))
	}
}

// liveFeed sends a few sample events at the current time, forever, so the
// features keep moving while someone looks.
func liveFeed(ctx context.Context, publish func(context.Context, []events.Event) error, sample []events.Event, every time.Duration) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start, sent := uint64(time.Now().UnixNano()), uint64(0)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		batch := make([]events.Event, 1+rng.IntN(5))
		for i := range batch {
			batch[i] = sample[rng.IntN(len(sample))].At(time.Now().UnixMilli())
			sent++
			freshID(&batch[i], start+sent, 0)
		}
		if err := publish(ctx, batch); err != nil && ctx.Err() == nil {
			return fmt.Errorf("live feed: %w", err)
		}
	}
}

func readSample(path string, typ *schemas.Event) ([]events.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open sample events: %w", err)
	}
	defer f.Close()
	var out []events.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		e, err := events.Decode(typ, sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, errors.New("no sample events in " + path)
	}
	return out, nil
}

// portOrFree returns port when it can be listened on, else a free one.
func portOrFree(port int) int {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0
		}
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// defaults are the service configs with their flag defaults.
func defaults() (ingest.Config, featurize.Config, serve.Config) {
	var (
		ic ingest.Config
		fc featurize.Config
		sc serve.Config
	)
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	ic.RegisterFlags(fs)
	fc.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError)) // the same names as ingest's
	sc.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return ic, fc, sc
}

// local turns a listen address into one curl can reach.
func local(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// TokenVariable is the shell variable the curls dev mode prints read the
// bearer token from when the APIs require tokens.
const TokenVariable = "FRESHET_TOKEN"

// bearerHeader is the curl option sending the token of TokenVariable,
// double-quoted so that the shell expands it.
const bearerHeader = ` -H "Authorization: Bearer $` + TokenVariable + `"`

// printTokens says, when the APIs require tokens, how the curls that
// follow get theirs: which tokens of the file can run them, and how to
// make one.
func printTokens(out io.Writer, g *auth.Guard) {
	set := g.Tokens()
	holders := func(s auth.Scope) string {
		if names := set.Names(s); len(names) > 0 {
			return strings.Join(names, ", ")
		}
		return "none yet"
	}
	fmt.Fprintf(out, "The APIs require bearer tokens of %s (--tokens). The curls below send $%s: set it to a token\n"+
		"of the file with the serve and ingest scopes (serve: %s; ingest: %s), e.g.\n\n"+
		"  export %s=...   # the token itself, as freshet token new printed it\n\n"+
		"To make one: go run ./cmd/freshet token new dev serve,ingest,metrics, then add the line it prints to\n"+
		"%s (re-read within a second, no restart).\n\n",
		g.Path(), TokenVariable, holders(auth.Serve), holders(auth.Ingest), TokenVariable, g.Path())
}

// printWelcome prints curl commands that work as printed: lookups of the
// entities of the latest sample events, and an event to send. With
// tokens, each sends $FRESHET_TOKEN.
func printWelcome(out io.Writer, cfg Config, kafkaAddr string, views []*schemas.View, typ *schemas.Event, evs []events.Event, took time.Duration) {
	latest := evs[len(evs)-1]
	serveAt, ingestAt := local(cfg.ServeAddr), local(cfg.IngestAddr)
	fmt.Fprintf(out, "\nfreshet dev: %d sample events replayed, moved to end now, and featurized in %s.\n\n", len(evs), took.Round(time.Millisecond))
	bearer := ""
	if cfg.Tokens != nil {
		printTokens(out, cfg.Tokens)
		bearer = bearerHeader
	}
	fmt.Fprintf(out, "Try:\n\n")
	// The view keyed like the events first: its entities are the ones
	// users think of (a card holder, not a merchant).
	v, bv := views[0], views[len(views)-1]
	for i, x := range views {
		if x.Entity == typ.Key {
			v, bv = x, views[(i+1)%len(views)]
		}
	}
	recent := func(field string, n int) []string {
		var out []string
		for i := len(evs) - 1; i >= 0 && len(out) < n; i-- {
			if e := evs[i].Get(field); e.Present() && !slices.Contains(out, e.Text()) {
				out = append(out, e.Text())
			}
		}
		return out
	}
	ent := recent(v.Entity, 1)[0]
	fmt.Fprintf(out, "  curl -s%s %s/v1/features/%s/%s\n\n", bearer, serveAt, v.Name, url.PathEscape(ent))
	fmt.Fprintf(out, "  curl -s%s -X POST %s/v1/features/%s -H 'Content-Type: application/json' -d '{\"entities\": %s}'\n\n", bearer, serveAt, bv.Name, jsonList(recent(bv.Entity, 3)))
	var feats []string
	for _, f := range v.Features[:min(3, len(v.Features))] {
		feats = append(feats, v.Name+":"+f.Name)
	}
	fmt.Fprintf(out, "  curl -s%s -X POST %s/get-online-features -H 'Content-Type: application/json' -d '{\"features\": %s, \"entities\": {\"%s\": %s}}'\n\n",
		bearer, serveAt, jsonList(feats), v.Entity, jsonList([]string{ent}))
	// An event stamped with the shell's clock when the command runs.
	body := string(latest.AppendJSON(nil))
	stamp := strconv.FormatInt(latest.Time, 10)
	if i := strings.Index(body, stamp); i >= 0 {
		body = body[:i] + `'"$(date +%s)000"'` + body[i+len(stamp):]
	}
	fmt.Fprintf(out, "Send an event (then look it up again):\n\n  curl -s%s -X POST %s/v1/events/%s -H 'Content-Type: application/json' -d '%s'\n\n", bearer, ingestAt, typ.Name, body)
	fmt.Fprintf(out, "Replay a file of %s events (Parquet, Arrow, CSV, NDJSON), its times moved so that the last is now:\n\n  go run ./cmd/ingest replay --kafka-brokers %s --event %s --rebase-time FILE\n\n", typ.Name, kafkaAddr, typ.Name)
	if cfg.Telemetry != nil {
		scope := ""
		if cfg.Tokens != nil {
			scope = " (the token needs the metrics scope)"
		}
		fmt.Fprintf(out, "Metrics (Prometheus text)%s:\n\n  curl -s%s %s/metrics | grep ^freshet_\n\n", scope, bearer, serveAt)
	}
	if cfg.LiveEvery > 0 {
		fmt.Fprintf(out, "A few live events arrive every %s. Ctrl-C stops everything.\n", cfg.LiveEvery)
	}
}

func jsonList(xs []string) string {
	b := []byte{'['}
	for i, x := range xs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = events.Value{Kind: events.String, S: x}.AppendJSON(b)
	}
	return string(append(b, ']'))
}
