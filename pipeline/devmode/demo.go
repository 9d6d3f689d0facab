package devmode

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/retry"
	"github.com/freshet-ml/freshet/schemas"
)

// DemoConfig is the settings of `freshet demo`, the feed of the compose
// stack's demo profile.
type DemoConfig struct {
	// IngestURL is the base URL of a running ingest.
	IngestURL string
	// Sample is an NDJSON file of events of type Event.
	Sample string
	Event  string
	// Batch is how many events go in one request.
	Batch int
	// LiveEvery is how often a few live events are sent; 0 sends none.
	LiveEvery time.Duration
	// TokenFile, when set, is a file whose first line is the bearer token
	// to send (an ingest with --tokens); never logged.
	TokenFile string
	// IngestCA, when set, is the PEM file of the CAs to trust for an
	// https ingest URL (default: the system roots).
	IngestCA string

	// token and roots are what Validate read, which Demo uses.
	token string
	roots *x509.CertPool
}

// RegisterFlags registers the feed's settings with their defaults.
func (c *DemoConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.IngestURL, "ingest-url", "http://localhost:8081", "base URL of the ingest service to send events to")
	fs.StringVar(&c.Sample, "sample", "schemas/example/events.ndjson", "NDJSON sample events, sent with their times moved so that the last one is now")
	fs.StringVar(&c.Event, "event", "transaction", "event type of the sample")
	fs.IntVar(&c.Batch, "batch", 500, "events per request")
	fs.DurationVar(&c.LiveEvery, "live-every", 2*time.Second, "send a few live events this often; 0 for none")
	fs.StringVar(&c.TokenFile, "token-file", "", "file whose first line is the bearer token to send, for an ingest with --tokens "+
		"(freshet token new NAME ingest prints one)")
	fs.StringVar(&c.IngestCA, "ingest-ca", "", "PEM file of the CAs to trust for an https:// ingest-url (default: the system roots)")
}

// Validate reports every setting the feed cannot run with, as
// *config.SettingErrors joined: a batch of 0 would send nothing forever.
func (c *DemoConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.IngestURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, &config.SettingError{Setting: "ingest-url", Value: c.IngestURL, Problem: "is not an HTTP URL",
			Expected: "http://host:port of a running ingest, e.g. http://localhost:8081"})
	}
	if c.Sample == "" {
		errs = append(errs, &config.SettingError{Setting: "sample", Problem: "is empty", Expected: "an NDJSON file of events, e.g. schemas/example/events.ndjson"})
	}
	if c.Event == "" {
		errs = append(errs, &config.SettingError{Setting: "event", Problem: "is empty", Expected: "the event type of the sample, e.g. transaction"})
	}
	if c.Batch < 1 {
		errs = append(errs, &config.SettingError{Setting: "batch", Value: strconv.Itoa(c.Batch), Problem: "is less than 1",
			Expected: "a number of events per request of at least 1, e.g. 500"})
	}
	if c.LiveEvery < 0 {
		errs = append(errs, &config.SettingError{Setting: "live-every", Value: c.LiveEvery.String(), Problem: "is negative",
			Expected: "a duration such as 2s, or 0 for no live events"})
	}
	c.token, c.roots = "", nil
	if c.TokenFile != "" {
		tok, err := readToken(c.TokenFile)
		if err != nil {
			errs = append(errs, err)
		}
		c.token = tok
	}
	if c.IngestCA != "" {
		pool, err := config.CAPool("ingest-ca", c.IngestCA)
		if err != nil {
			errs = append(errs, err)
		}
		c.roots = pool
	}
	return errors.Join(errs...)
}

// readToken reads the first line of a token file, without its spaces.
func readToken(path string) (string, error) {
	const expected = "a file whose first line is a bearer token (freshet token new NAME ingest prints one)"
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &config.SettingError{Setting: "token-file", Value: path, Problem: "cannot be read: " + config.FileProblem(err), Expected: expected}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" || strings.ContainsAny(line, " \t") {
		return "", &config.SettingError{Setting: "token-file", Value: path, Problem: "has no token on its first line", Expected: expected}
	}
	return line, nil
}

// client is the HTTP client of the feed: trusting IngestCA when set.
func (c *DemoConfig) client() *http.Client {
	if c.roots == nil {
		return http.DefaultClient
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.roots}
	return &http.Client{Transport: tr}
}

// DemoSettings is the complete settings of `freshet demo`: those every
// freshet command has, and the feed's.
type DemoSettings struct {
	Common app.Common
	Demo   DemoConfig
}

// Validators are the parts to validate after parsing.
func (c *DemoSettings) Validators() []app.Validator { return []app.Validator{&c.Common, &c.Demo} }

// NewDemo registers `freshet demo`'s settings on a new flag set. The
// command parses it; the compose checks read it, as they read the services'
// flag sets (cli.Programs), to know which FRESHET_* variables and flags the
// demo accepts.
func NewDemo() (*DemoSettings, *flag.FlagSet) {
	c := &DemoSettings{}
	fs := flag.NewFlagSet("freshet demo", flag.ContinueOnError)
	c.Common.RegisterFlags(fs)
	c.Demo.RegisterFlags(fs)
	return c, fs
}

// Demo sends the sample over ingest's HTTP API with its times moved so that
// the last event is now, then keeps a small live feed going until ctx ends.
// It waits for ingest to accept events (503s are retried).
func Demo(ctx context.Context, reg *schemas.Registry, cfg DemoConfig, log *slog.Logger) error {
	typ := reg.Events[cfg.Event]
	if typ == nil {
		return fmt.Errorf("event %q is not defined", cfg.Event)
	}
	sample, err := readSample(cfg.Sample, typ)
	if err != nil {
		return err
	}
	client := cfg.client()
	post := func(evs []events.Event) error {
		return postEvents(ctx, client, cfg.token, cfg.IngestURL, typ.Name, evs)
	}
	shifted := Rebase(sample, time.Now().UnixMilli())
	for i := 0; i < len(shifted); i += cfg.Batch {
		if err := post(shifted[i:min(i+cfg.Batch, len(shifted))]); err != nil {
			return err
		}
	}
	log.Info("demo: sample sent", "events", len(shifted), "ingest", cfg.IngestURL)
	if cfg.LiveEvery <= 0 {
		return nil
	}
	return liveFeed(ctx, func(_ context.Context, evs []events.Event) error { return post(evs) }, sample, cfg.LiveEvery)
}

// postEvents sends events as NDJSON with client, and token when not
// empty, retrying while ingest answers 503 or cannot be reached (it may
// still be starting).
func postEvents(ctx context.Context, client *http.Client, token, base, event string, evs []events.Event) error {
	var body []byte
	for i := range evs {
		body = append(evs[i].AppendJSON(body), '\n')
	}
	backoff := retry.Backoff{First: 200 * time.Millisecond}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events/"+event, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		if cv := (*tls.CertificateVerificationError)(nil); errors.As(err, &cv) {
			// Waiting does not make a certificate trusted.
			return fmt.Errorf("%w (trust the server's CA with --ingest-ca FILE)", err)
		}
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			_ = res.Body.Close()
			switch {
			case res.StatusCode == http.StatusAccepted:
				return nil
			case res.StatusCode != http.StatusServiceUnavailable:
				return fmt.Errorf("ingest answered %d: %s", res.StatusCode, bytes.TrimSpace(msg))
			}
		}
		if werr := backoff.Wait(ctx); werr != nil {
			return errors.Join(werr, err)
		}
	}
}
