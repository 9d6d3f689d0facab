package devmode

import (
	"bytes"
	"context"
	"encoding/pem"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestDemoValidate: the demo feed refuses what it cannot run with, every
// problem at once, each naming the setting and the form expected.
func TestDemoValidate(t *testing.T) {
	c, fs := NewDemo()
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, c.Demo.Validate(), "the defaults")
	for _, tc := range []struct {
		name string
		mod  func(*DemoConfig)
		want []string
	}{
		{"batch 0 would loop forever", func(d *DemoConfig) { d.Batch = 0 }, []string{`batch: "0" is less than 1; expected a number of events per request of at least 1, e.g. 500`}},
		{"negative batch", func(d *DemoConfig) { d.Batch = -5 }, []string{`batch: "-5" is less than 1`}},
		{"negative live-every", func(d *DemoConfig) { d.LiveEvery = -time.Second }, []string{`live-every: "-1s" is negative`}},
		{"not a URL", func(d *DemoConfig) { d.IngestURL = "localhost:8081" }, []string{`ingest-url: "localhost:8081" is not an HTTP URL`}},
		{"no host", func(d *DemoConfig) { d.IngestURL = "http://" }, []string{`ingest-url: "http://" is not an HTTP URL`}},
		{"missing token file", func(d *DemoConfig) { d.TokenFile = "/nonexistent/token" }, []string{`token-file: "/nonexistent/token" cannot be read: no such file`}},
		{"empty token file", func(d *DemoConfig) { d.TokenFile = writeFile(t, "\n\n") }, []string{`has no token on its first line`}},
		{"a tokens-file line, not a token", func(d *DemoConfig) { d.TokenFile = writeFile(t, "shop ingest sha256:ab\n") }, []string{`has no token on its first line`}},
		{"CA not PEM", func(d *DemoConfig) { d.IngestCA = writeFile(t, "not a certificate") }, []string{`ingest-ca: "`, `holds no PEM certificate`}},
		{"all at once", func(d *DemoConfig) { d.Sample, d.Event, d.Batch = "", "", 0 },
			[]string{`sample: "" is empty`, `event: "" is empty`, `batch: "0"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := c.Demo
			tc.mod(&d)
			err := d.Validate()
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			var se *config.SettingError
			require.ErrorAs(t, err, &se, "names its variable when one set it")
		})
	}
	require.NoError(t, (&DemoConfig{IngestURL: "https://ingest:8443", Sample: "s", Event: "e", Batch: 1}).Validate(), "live-every 0: no live feed")
}

// TestDevValidate: dev mode's ports and addresses must be ones it can
// listen on.
func TestDevValidate(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("freshet dev", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, c.Validate(), "the defaults")
	require.Nil(t, fs.Lookup("schemas"), "--schemas is the command's common one")

	c.KafkaPort, c.RedisPort, c.ServeAddr, c.LiveEvery = -1, 65536, "8080", -time.Second
	err := c.Validate()
	for _, w := range []string{`kafka-port: "-1" is not a port`, `redis-port: "65536" is not a port`,
		`serve-addr: "8080" is not an address`, `live-every: "-1s" is negative`} {
		require.ErrorContains(t, err, w)
	}
	c = Config{KafkaPort: 0, IngestAddr: "127.0.0.1:0", FeaturizeAddr: ":0", ServeAddr: "[::1]:8080"}
	require.NoError(t, c.Validate(), "port 0: any free one")
}

// writeFile writes content to a new file of the test and returns its path.
func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "f")
	require.NoError(tb, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// TestDemoSendsTokenOverTLS: with --token-file and --ingest-ca the feed
// reaches an https ingest that requires a token: every sample event
// arrives, each request with the token.
func TestDemoSendsTokenOverTLS(t *testing.T) {
	reg := testenv.Registry(t)
	var mu sync.Mutex
	var lines int
	var auths []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		mu.Lock()
		lines += bytes.Count(b, []byte("\n"))
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	ca := writeFile(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	sample := filepath.Join(testenv.RepoRoot(t), "schemas/example/events.ndjson")
	cfg := DemoConfig{IngestURL: srv.URL, Sample: sample, Event: "transaction", Batch: 1000,
		TokenFile: writeFile(t, "s3cret-token\n"), IngestCA: ca}
	require.NoError(t, cfg.Validate())
	require.NoError(t, Demo(context.Background(), reg, cfg, slog.New(slog.DiscardHandler)))
	want, err := os.ReadFile(sample)
	require.NoError(t, err)
	require.Equal(t, bytes.Count(bytes.TrimSpace(want), []byte("\n"))+1, lines)
	require.NotEmpty(t, auths)
	for _, a := range auths {
		require.Equal(t, "Bearer s3cret-token", a)
	}

	// Without the CA the server is not trusted: a clear error, not a retry loop.
	cfg.IngestCA = ""
	require.NoError(t, cfg.Validate())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // not reached: it fails at once
	defer cancel()
	err = Demo(ctx, reg, cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "certificate signed by unknown authority (trust the server's CA with --ingest-ca FILE)")
	require.NoError(t, ctx.Err(), "it stopped at once, not at the deadline")
}
