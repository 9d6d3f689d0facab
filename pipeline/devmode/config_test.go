package devmode

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
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
