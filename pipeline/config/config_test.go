package config

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParsePrecedence(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
		err  string
	}{
		{name: "default", want: "localhost:9092"},
		{name: "env", env: map[string]string{"FRESHET_KAFKA_BROKERS": "k1:9092"}, want: "k1:9092"},
		{name: "flag wins", args: []string{"--kafka-brokers=k2:9092"}, env: map[string]string{"FRESHET_KAFKA_BROKERS": "k1:9092"}, want: "k2:9092"},
		{name: "bad env", env: map[string]string{"FRESHET_TIMEOUT": "soon"}, err: `invalid FRESHET_TIMEOUT="soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			brokers := fs.String("kafka-brokers", "localhost:9092", "brokers")
			fs.Duration("timeout", time.Second, "timeout")
			err := parse(fs, tc.args, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, *brokers)
		})
	}
}

func TestEnvName(t *testing.T) {
	require.Equal(t, "FRESHET_KAFKA_BROKERS", EnvName("kafka-brokers"))
	require.Equal(t, "FRESHET_HTTP_ADDR", EnvName("http-addr"))
}

func TestMask(t *testing.T) {
	require.Equal(t, "redis://:xxxxx@h:6379/0", Mask("redis://:hunter2@h:6379/0"))
	require.Equal(t, "redis://u:xxxxx@h:1,redis://h:2", Mask("redis://u:pw@h:1,redis://h:2"))
	require.Equal(t, "localhost:9092", Mask("localhost:9092"))
}

func TestMarkdownTable(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("redis-url", "redis://localhost:6379/0", "Redis URL")
	var b strings.Builder
	require.NoError(t, WriteMarkdown(&b, fs))
	require.Contains(t, b.String(), "| `--redis-url` | `FRESHET_REDIS_URL` | `redis://localhost:6379/0` | Redis URL |")
}

func TestList(t *testing.T) {
	var l List
	require.NoError(t, l.Set(" a:1, b:2 ,,"))
	require.Equal(t, List{"a:1", "b:2"}, l)
	require.Equal(t, "a:1,b:2", l.String())
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var evs Strings
	fs.Var(&evs, "events", "event files")
	spine := fs.String("spine", "", "spine")
	pos, err := ParseInterspersed(fs, []string{"--events", "a.parquet", "b.parquet", "--spine", "s.csv", "c.parquet", "--events=d.csv"})
	require.NoError(t, err)
	require.Equal(t, Strings{"a.parquet", "d.csv"}, evs)
	require.Equal(t, []string{"b.parquet", "c.parquet"}, pos)
	require.Equal(t, "s.csv", *spine)
}
