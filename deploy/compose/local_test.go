package compose

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

func TestLocalInstances(t *testing.T) {
	p := stack(t, false)
	next := 40000
	port := func() (int, error) { next++; return next, nil }
	l := Local{
		Bin:   "/opt/freshet/bin",
		Addrs: map[string]string{"kafka:9092": "127.0.0.1:19092", "redis:6379": "127.0.0.1:16379"},
		Env:   map[string]string{"FRESHET_TOPIC_PREFIX": "run1.", "FRESHET_GROUP_ID": "g1"},
		Port:  port,
	}
	insts, err := l.Instances(p, []string{"ingest", "featurize", "serve", "demo"})
	require.NoError(t, err)
	var names []string
	byName := map[string]Instance{}
	for _, in := range insts {
		names = append(names, in.Name)
		byName[in.Name] = in
	}
	require.Equal(t, []string{"ingest", "featurize_1", "featurize_2", "serve", "demo"}, names)

	schemas := filepath.Join(testenv.RepoRoot(t), "schemas", "example")
	ingest := byName["ingest"]
	require.Equal(t, "http://127.0.0.1:40001", ingest.URL)
	require.Equal(t, []string{"ingest"}, ingest.Command)
	require.Equal(t, []string{"freshet", "healthcheck", "http://127.0.0.1:40001/readyz"}, ingest.Health)
	for _, kv := range []string{
		"PATH=/opt/freshet/bin", "FRESHET_SCHEMAS=" + schemas, "FRESHET_KAFKA_BROKERS=127.0.0.1:19092",
		"FRESHET_HTTP_ADDR=127.0.0.1:40001", "FRESHET_PARTITIONS=6", "FRESHET_LOG_FORMAT=json", "FRESHET_TOPIC_PREFIX=run1.",
	} {
		require.Contains(t, ingest.Env, kv)
	}
	require.False(t, slices.ContainsFunc(ingest.Env, func(kv string) bool { return strings.HasPrefix(kv, "FRESHET_GROUP_ID=") }),
		"ingest has no group id: an override goes only where it is a setting")

	f1, f2 := byName["featurize_1"], byName["featurize_2"]
	require.NotEqual(t, f1.URL, f2.URL, "replicas listen on ports of their own")
	require.Contains(t, f1.Env, "FRESHET_REDIS_URL=redis://127.0.0.1:16379/0")
	require.Contains(t, f1.Env, "FRESHET_GROUP_ID=g1")
	require.Contains(t, f1.Changes, "FRESHET_GROUP_ID=freshet-featurize → g1", "every change is reported")

	demo := byName["demo"]
	require.Equal(t, "", demo.URL)
	require.Equal(t, []string{"freshet", "demo", "--sample", filepath.Join(schemas, "events.ndjson"), "--event", "transaction"}, demo.Command)
	require.Contains(t, demo.Env, "FRESHET_INGEST_URL=http://127.0.0.1:40001", "the demo feeds the local ingest")
	require.Empty(t, demo.Health, "the demo has no healthcheck: it listens on nothing")

	// A healthcheck that names another service is rewritten as the rest.
	d := p.Services["demo"]
	d.HealthCheck = &types.HealthCheckConfig{Test: types.HealthCheckTest{"CMD", "freshet", "healthcheck", "http://ingest:8081/readyz"}}
	p.Services["demo"] = d
	next = 40000
	insts, err = l.Instances(p, []string{"ingest", "demo"})
	require.NoError(t, err)
	require.Equal(t, []string{"freshet", "healthcheck", "http://127.0.0.1:40001/readyz"}, insts[1].Health)

	// An address of the stack left unmapped is an error, not a process
	// that cannot reach its broker.
	l.Addrs = map[string]string{"redis:6379": "127.0.0.1:16379"}
	_, err = l.Instances(p, []string{"ingest"})
	require.ErrorContains(t, err, "names kafka:9092")
	// So is a freshet service named by another but not run here.
	_, err = Local{Bin: "/b", Port: port}.Instances(p, []string{"demo"})
	require.ErrorContains(t, err, "names ingest:8081")
}

func TestReplaceAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"kafka:9092", "H:1"},
		{"kafka:9092,kafka:9092", "H:1,H:1"},
		{"redis://kafka:9092/0", "redis://H:1/0"},
		{"mykafka:9092", "mykafka:9092"},
		{"kafka:90921", "kafka:90921"},
		{"kafka.local:9092", "kafka.local:9092"},
	} {
		require.Equal(t, c.want, replaceAddr(c.in, "kafka:9092", "H:1"), c.in)
	}
}
