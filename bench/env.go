package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/freshet-ml/freshet/pipeline/broker"
)

// Env is the servers and binaries a run uses: Redis and Kafka (reused when
// named, otherwise started with scripts/redis-local.sh and
// scripts/kafka-local.sh on free ports and stopped by Close), and freshet's
// three services built into a temporary directory.
type Env struct {
	Root     string // repository root
	Work     string // temporary directory of this run
	Bin      string // built binaries
	RedisURL string
	Brokers  []string
	// Kafka is how every connection of the run reaches Brokers (TLS,
	// SASL): the harness's own clients and the services it starts.
	Kafka broker.Security
	Redis *redis.Client
	// KafkaPID is the broker's process id when this run started it.
	KafkaPID int
	// RedisPID is the Redis server's process id when it runs here.
	RedisPID int
	// RedisStarted and KafkaStarted say this run started the server.
	RedisStarted, KafkaStarted bool
	log                        *slog.Logger
	cleanups                   []func()
}

// Servers says which servers to reuse; empty fields are started.
type Servers struct {
	RedisURL string
	Brokers  string
	// Kafka is the TLS and SASL settings of reused Brokers.
	Kafka broker.Security
	// KafkaDir holds the broker the harness starts (jars are kept there
	// between runs; the data is formatted anew each time).
	KafkaDir string
}

// NewEnv builds the services and starts or reuses the servers. Close
// undoes what it did, even after an error.
func NewEnv(ctx context.Context, srv Servers, log *slog.Logger) (*Env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "freshet-bench-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	e := &Env{Root: root, Work: work, Bin: filepath.Join(work, "bin"), Kafka: srv.Kafka, log: log}
	e.cleanups = append(e.cleanups, func() { _ = os.RemoveAll(work) })
	if err := e.build(ctx); err != nil {
		return e, err
	}
	if err := e.startRedis(ctx, srv.RedisURL); err != nil {
		return e, err
	}
	if err := e.startKafka(ctx, srv.Brokers, srv.KafkaDir); err != nil {
		return e, err
	}
	e.nameServers(ctx)
	return e, nil
}

// Close stops what NewEnv started, last first.
func (e *Env) Close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
}

func (e *Env) build(ctx context.Context) error {
	t := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", e.Bin+string(filepath.Separator), "./cmd/ingest", "./cmd/featurize", "./cmd/serve")
	cmd.Dir = e.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the services: %w\n%s", err, out)
	}
	e.log.Info("built ingest, featurize and serve", "dir", e.Bin, "took", time.Since(t).Round(time.Millisecond))
	return nil
}

// script runs one of scripts/*-local.sh with extra environment and returns
// the value of the variable its export line sets.
func (e *Env) script(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.Root, "scripts", name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/%s %s: %w", name, strings.Join(args, " "), err)
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if _, kv, ok := strings.Cut(sc.Text(), "export "); ok {
			if _, v, ok := strings.Cut(kv, "="); ok {
				return v, nil
			}
		}
	}
	return "", nil
}

func (e *Env) startRedis(ctx context.Context, url string) error {
	if url == "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		env := []string{fmt.Sprintf("FRESHET_REDIS_PORT=%d", port), "FRESHET_REDIS_DIR=" + filepath.Join(e.Work, "redis")}
		e.log.Info("starting redis-server", "port", port)
		if url, err = e.script(ctx, env, "redis-local.sh", "start", "standalone"); err != nil {
			return err
		}
		e.RedisStarted = true
		e.cleanups = append(e.cleanups, func() {
			if _, err := e.script(context.Background(), env, "redis-local.sh", "stop", "standalone"); err != nil {
				e.log.Warn("stop redis", "error", err)
			}
		})
	} else {
		e.log.Info("reusing Redis", "url", url)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("redis url %q: %w", url, err)
	}
	e.RedisURL, e.Redis = url, redis.NewClient(opt)
	e.cleanups = append(e.cleanups, func() { _ = e.Redis.Close() })
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.Redis.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", url, err)
	}
	return nil
}

func (e *Env) startKafka(ctx context.Context, brokers, dir string) error {
	if brokers != "" {
		e.log.Info("reusing Kafka", "brokers", brokers)
		e.Brokers = strings.Split(brokers, ",")
		return nil
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	cport, err := freePort()
	if err != nil {
		return err
	}
	env := []string{fmt.Sprintf("FRESHET_KAFKA_PORT=%d", port), fmt.Sprintf("FRESHET_KAFKA_CONTROLLER_PORT=%d", cport), "FRESHET_KAFKA_DIR=" + dir}
	// A broker left running in our directory by an interrupted run would
	// be mistaken for a fresh one: stop it first.
	if _, err := e.script(ctx, env, "kafka-local.sh", "stop"); err != nil {
		return err
	}
	e.log.Info("starting Kafka (scripts/kafka-local.sh)", "port", port, "dir", dir)
	b, err := e.script(ctx, env, "kafka-local.sh", "start")
	if err != nil {
		return err
	}
	e.KafkaStarted = true
	e.cleanups = append(e.cleanups, func() {
		if _, err := e.script(context.Background(), env, "kafka-local.sh", "stop"); err != nil {
			e.log.Warn("stop kafka", "error", err)
		}
		_ = os.RemoveAll(filepath.Join(dir, "data")) // the topics of this run: up to a few GB
	})
	if pid, err := os.ReadFile(filepath.Join(dir, "kafka.pid")); err == nil {
		_, _ = fmt.Sscan(string(pid), &e.KafkaPID)
	}
	e.Brokers = strings.Split(b, ",")
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// repoRoot finds the directory holding go.mod from the working directory up.
func repoRoot() (string, error) {
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
			return "", errors.New("go.mod not found above the working directory: run the harness from the repository")
		}
		dir = parent
	}
}

// nameServers names the servers' and the harness's processes in profiles.
func (e *Env) nameServers(ctx context.Context) {
	nameProcess(os.Getpid(), "harness")
	if e.KafkaPID > 0 {
		nameProcess(e.KafkaPID, "kafka")
	}
	if info, err := e.Redis.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "process_id:"); ok {
				if pid, err := strconv.Atoi(v); err == nil {
					if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
						e.RedisPID = pid
						nameProcess(pid, "redis-server")
					}
				}
			}
		}
	}
}
