package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Proc is one of freshet's services running as a process of the harness.
type Proc struct {
	Name string
	Addr string // host:port of its HTTP endpoints
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	// peak is the highest resident set size seen, in bytes.
	peak atomic.Int64
}

// Service settings shared by every process of a run: FRESHET_* variables
// (see `go run ./cmd/freshet config`).
type settings map[string]string

// Start runs binary bin (with args) of the environment with the given
// FRESHET_* settings and an HTTP address on a free port, and waits until
// its /readyz answers 200 (skipped when ready is false).
func (e *Env) Start(ctx context.Context, name, bin string, set settings, ready bool, args ...string) (*Proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", port), log: filepath.Join(e.Work, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	p.cmd = exec.Command(filepath.Join(e.Bin, bin), args...)
	p.cmd.Env = e.serviceEnv(set, p.Addr)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	nameProcess(p.cmd.Process.Pid, bin)
	go func() {
		p.err = p.cmd.Wait()
		out.Close()
		close(p.done)
	}()
	go p.watchRSS()
	e.cleanups = append(e.cleanups, func() { _ = p.Stop() })
	if ready {
		if err := p.waitReady(ctx, 60*time.Second); err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	return p, nil
}

// serviceEnv is the harness's environment without FRESHET_* variables, plus
// the run's settings.
func (e *Env) serviceEnv(set settings, addr string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FRESHET_") {
			env = append(env, kv)
		}
	}
	base := settings{
		"FRESHET_SCHEMAS":       filepath.Join(e.Root, "bench", "schemas"),
		"FRESHET_KAFKA_BROKERS": strings.Join(e.Brokers, ","),
		"FRESHET_REDIS_URL":     e.RedisURL,
		"FRESHET_HTTP_ADDR":     addr,
		"FRESHET_LOG_LEVEL":     "warn",
	}
	for k, v := range set {
		base[k] = v
	}
	for k, v := range base {
		env = append(env, k+"="+v)
	}
	return append(env, e.Kafka.Env()...)
}

// URL is the service's base URL.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Proc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited during start-up (%v):\n%s", p.Name, p.err, p.LogTail(20))
		}
		resp, err := c.Get(p.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s:\n%s", p.Name, timeout, p.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watchRSS samples the process's VmHWM every 100 ms until it exits, so
// that a short-lived process's peak is known too.
func (p *Proc) watchRSS() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if v, err := vmHWM(p.cmd.Process.Pid); err == nil && !p.Exited() {
			p.peak.Store(max(p.peak.Load(), v))
		}
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

// PeakRSS is the process's peak resident set size in bytes: its VmHWM
// (from /proc/<pid>/status), read now while it runs and sampled every
// 100 ms before it exited.
func (p *Proc) PeakRSS() int64 {
	if !p.Exited() {
		if v, err := vmHWM(p.cmd.Process.Pid); err == nil {
			p.peak.Store(max(p.peak.Load(), v))
		}
	}
	return p.peak.Load()
}

// vmHWM reads a process's peak resident set size from /proc/<pid>/status.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// Stop sends SIGTERM, waits up to 15 s for the process to end, then kills
// it. It returns an error when the process had failed on its own.
func (p *Proc) Stop() error {
	if p.Exited() {
		p.PeakRSS()
		return p.exitErr(false)
	}
	p.PeakRSS()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.PeakRSS()
	return p.exitErr(true)
}

// Wait waits for the process to end by itself and returns its failure.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		p.PeakRSS()
		return p.exitErr(false)
	case <-ctx.Done():
		_ = p.Stop()
		return ctx.Err()
	}
}

func (p *Proc) exitErr(signalled bool) error {
	if p.err == nil {
		return nil
	}
	if ee, ok := p.err.(*exec.ExitError); ok && signalled {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil
		}
	}
	return fmt.Errorf("%s failed (%v):\n%s", p.Name, p.err, p.LogTail(20))
}

// LogTail returns the last n lines of the process's output.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stats reads featurize's GET /v1/stats.
func (p *Proc) stats(ctx context.Context, c *http.Client) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/v1/stats", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]int64
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s stats: %w", p.Name, err)
	}
	return m, nil
}
