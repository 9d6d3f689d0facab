// Package testenv gives tests a Redis and a Kafka-protocol broker: the real
// servers named by FRESHET_TEST_REDIS_URL and FRESHET_TEST_KAFKA_BROKERS when
// set; otherwise a redis-server found on PATH (else miniredis) and an
// in-process kfake broker, so `go test ./...` passes with nothing but Go.
// It also holds the fixtures tests share: the example definitions
// (Registry), a console buffer safe to read while written (Buffer), and
// telemetry variants for benchmarks (EachTelemetry).
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/freshet-ml/freshet/schemas"
)

var seq atomic.Int64

// Unique returns a name unique to this test process, for key prefixes,
// topic prefixes and group ids on shared servers.
func Unique(prefix string) string {
	return fmt.Sprintf("%s%d-%d-%d.", prefix, os.Getpid(), time.Now().UnixNano()%1e9, seq.Add(1))
}

// Redis returns the URL of a Redis for the test and a client on it, with
// each hook applied to the client once Redis answers (telemetry's
// InstrumentRedis, say). Keys of a shared server are not flushed: use Unique
// for a key prefix.
func Redis(tb testing.TB, hooks ...func(redis.UniversalClient) error) (string, *redis.Client) {
	tb.Helper()
	url := os.Getenv("FRESHET_TEST_REDIS_URL")
	if url == "" {
		url = startRedis(tb)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("FRESHET_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if err = c.Ping(ctx).Err(); err == nil {
			for _, h := range hooks {
				if err := h(c); err != nil {
					tb.Fatalf("redis client hook: %v", err)
				}
			}
			return url, c
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("redis at %s does not answer: %v", url, err)
	return "", nil
}

func startRedis(tb testing.TB) string {
	if _, err := exec.LookPath("redis-server"); err != nil {
		m := miniredis.RunT(tb)
		tb.Logf("testenv: no redis-server on PATH; using miniredis at %s", m.Addr())
		return "redis://" + m.Addr() + "/0"
	}
	port := FreePort(tb)
	RedisServer(tb, port, tb.TempDir(), "--save", "", "--appendonly", "no")
	return fmt.Sprintf("redis://127.0.0.1:%d/0", port)
}

// RedisServer starts a redis-server of the test's own on a loopback port
// with its files in dir and the extra arguments, and kills it at cleanup;
// the test is skipped without redis-server on PATH. For tests that stop
// and restart Redis: kill the returned process and call it again.
func RedisServer(tb testing.TB, port int, dir string, args ...string) *exec.Cmd {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("needs redis-server on PATH")
	}
	cmd := exec.Command(bin, append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir}, args...)...)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// Kafka returns the seed brokers of a Kafka-protocol broker for the test.
// Topics on a shared broker are not deleted: use Unique for a topic prefix.
func Kafka(tb testing.TB) []string {
	tb.Helper()
	if b := os.Getenv("FRESHET_TEST_KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		tb.Fatalf("start kfake: %v", err)
	}
	tb.Cleanup(c.Close)
	return c.ListenAddrs()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RepoRoot returns the repository root, found from the test's directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := FindRepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// FindRepoRoot is RepoRoot for a TestMain, which has no testing.TB: the
// directory holding go.mod, from the working directory up.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// Registry returns the example definitions, schemas/example (event type
// transaction; views user_spend and merchant_activity), which most tests
// run on. Every call loads a registry of its own, so a test may change it.
func Registry(tb testing.TB) *schemas.Registry {
	tb.Helper()
	reg, err := schemas.Load(filepath.Join(RepoRoot(tb), "schemas", "example"))
	if err != nil {
		tb.Fatalf("load schemas/example: %v", err)
	}
	return reg
}

// RedisCluster returns a client on the Redis Cluster named by
// FRESHET_TEST_REDIS_CLUSTER (comma-separated seed addresses), and false
// when it is not set: scripts/redis-local.sh start cluster provides one.
func RedisCluster(tb testing.TB) (*redis.ClusterClient, bool) {
	tb.Helper()
	seeds := os.Getenv("FRESHET_TEST_REDIS_CLUSTER")
	if seeds == "" {
		return nil, false
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(seeds, ",")})
	tb.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		tb.Fatalf("redis cluster at %s does not answer: %v", seeds, err)
	}
	return c, true
}
