package cli

import (
	"log/slog"
	"os"
	"slices"

	"github.com/freshet-ml/freshet/pipeline/app"
)

// toolVariables are the FRESHET_* variables that are no program's setting
// but that tests, scripts and benchmarks read, by who reads them: a shell
// that exports them to run the tests must not make every service warn.
// TestToolVariablesAreRead checks each is still read somewhere.
var toolVariables = map[string]string{
	"FRESHET_TEST_REDIS_URL":        "pipeline/testenv, bench: a Redis to test against",
	"FRESHET_TEST_REDIS_CLUSTER":    "pipeline/testenv: seeds of a Redis Cluster to test against",
	"FRESHET_TEST_KAFKA_BROKERS":    "pipeline/testenv, bench: a Kafka to test against",
	"FRESHET_REDIS_PORT":            "scripts/redis-local.sh",
	"FRESHET_REDIS_CLUSTER_PORT":    "scripts/redis-local.sh",
	"FRESHET_REDIS_DIR":             "scripts/redis-local.sh",
	"FRESHET_REDIS_START_TIMEOUT":   "scripts/redis-local.sh",
	"FRESHET_KAFKA_PORT":            "scripts/kafka-local.sh",
	"FRESHET_KAFKA_CONTROLLER_PORT": "scripts/kafka-local.sh",
	"FRESHET_KAFKA_DIR":             "scripts/kafka-local.sh",
	"FRESHET_KAFKA_KEEP_DATA":       "scripts/kafka-local.sh",
	"FRESHET_KAFKA_START_TIMEOUT":   "scripts/kafka-local.sh",
	"FRESHET_KAFKA_HEAP_OPTS":       "scripts/kafka-local.sh",
	"FRESHET_BENCH_EVENTS":          "pipeline/backfill's BenchmarkBackfill",
	"FRESHET_BENCH_SPINE":           "pipeline/backfill's BenchmarkBackfill",
	"FRESHET_BENCH_ROWS":            "pipeline/ingest's replay benchmark",
	"FRESHET_TOKEN":                 "pipeline/devmode: the bearer token the curls freshet dev prints send, with --tokens",

	"FRESHET_REDIS_TLS_PORT":                        "scripts/redis-local.sh",
	"FRESHET_TEST_REDIS_TLS_URL":                    "pipeline/testenv: the TLS Redis of scripts/redis-local.sh start tls (featurize's user)",
	"FRESHET_TEST_REDIS_TLS_READONLY_URL":           "pipeline/testenv: the TLS Redis of scripts/redis-local.sh start tls (serve's read-only user)",
	"FRESHET_TEST_REDIS_TLS_PASSWORD_FILE":          "pipeline/testenv: the TLS Redis of scripts/redis-local.sh start tls",
	"FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE": "pipeline/testenv: the TLS Redis of scripts/redis-local.sh start tls",
	"FRESHET_TEST_REDIS_TLS_CA":                     "pipeline/testenv: the TLS Redis of scripts/redis-local.sh start tls",
	"FRESHET_TEST_REDIS_TLS_CLIENT_CERT":            "pipeline/testenv: the TLS Redis of scripts/redis-local.sh start tls",
	"FRESHET_TEST_REDIS_TLS_CLIENT_KEY":             "pipeline/testenv: the TLS Redis of scripts/redis-local.sh start tls",
	"FRESHET_TEST_REDIS_TLS_CLUSTER_URL":            "pipeline/testenv: the TLS cluster of scripts/redis-local.sh start tls (featurize's user)",
	"FRESHET_TEST_REDIS_TLS_CLUSTER_READONLY_URL":   "pipeline/testenv: the TLS cluster of scripts/redis-local.sh start tls (serve's read-only user)",
	"FRESHET_KAFKA_SASL_SSL":                        "scripts/kafka-local.sh",
	"FRESHET_KAFKA_SASL_SSL_PORT":                   "scripts/kafka-local.sh",
	"FRESHET_KAFKA_MTLS_PORT":                       "scripts/kafka-local.sh",
	"FRESHET_TEST_KAFKA_SASL_BROKERS":               "pipeline/testenv: the SASL_SSL Kafka of scripts/kafka-local.sh start --sasl-ssl",
	"FRESHET_TEST_KAFKA_SASL_CA":                    "pipeline/testenv: the SASL_SSL Kafka of scripts/kafka-local.sh start --sasl-ssl",
	"FRESHET_TEST_KAFKA_SASL_USERNAME":              "pipeline/testenv: the SASL_SSL Kafka of scripts/kafka-local.sh start --sasl-ssl",
	"FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE":         "pipeline/testenv: the SASL_SSL Kafka of scripts/kafka-local.sh start --sasl-ssl",
	"FRESHET_TEST_KAFKA_MTLS_BROKERS":               "pipeline/testenv: the mTLS Kafka listener of scripts/kafka-local.sh start --sasl-ssl",
	"FRESHET_TEST_KAFKA_CLIENT_CERT":                "pipeline/testenv: the mTLS Kafka listener of scripts/kafka-local.sh start --sasl-ssl",
	"FRESHET_TEST_KAFKA_CLIENT_KEY":                 "pipeline/testenv: the mTLS Kafka listener of scripts/kafka-local.sh start --sasl-ssl",
}

// ToolVariables returns, sorted, the FRESHET_* variables that are no
// program's setting but that tests, scripts and benchmarks read.
func ToolVariables() []string {
	var out []string
	for name := range toolVariables {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// KnownVariables returns, sorted, every FRESHET_* variable that some freshet
// program, test or script reads: the variable of every setting of every
// command (derived from the flag sets, so a new flag is known at once;
// Programs' tables list them all) and the tools' variables.
func KnownVariables() []string {
	var out []string
	for _, c := range Commands() {
		out = append(out, c.Variables()...)
	}
	out = append(out, ToolVariables()...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Logger builds the logger of a command with settings c, on stderr, and
// warns on it about every FRESHET_* variable of the environment that no
// freshet program reads (a misspelt setting is otherwise silently ignored),
// naming the variable it most likely misspells. A command calls it once, at
// start, so each warning is printed once.
func Logger(c *app.Common) *slog.Logger {
	log := c.Logger(os.Stderr)
	app.WarnUnknown(log, os.Environ(), KnownVariables())
	return log
}
