package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"
)

// profiler records CPU profiles of the phases that have goals, so that a
// missed goal can be explained: a pprof CPU profile of the harness itself
// (load generator, floor handler, direct clients) and, where Linux perf
// works, a system-wide perf profile of every process (the services, Redis,
// Kafka), converted to pprof with the process name as a sample label.
// freshet's services serve no /debug/pprof, so perf is how their CPU time is
// seen without changing them. Keep copies the profiles of missed goals
// beside the report.
type profiler struct {
	dir     string
	enabled bool
	perf    string // path of perf, "" when unusable
	log     *slog.Logger
	taken   map[string]bool
}

func newProfiler(dir string, enabled bool, log *slog.Logger) (*profiler, error) {
	p := &profiler{dir: dir, enabled: enabled, log: log, taken: map[string]bool{}}
	if !enabled {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create profile dir: %w", err)
	}
	if path, err := exec.LookPath("perf"); err == nil {
		// perf may be installed but not allowed (perf_event_paranoid, a
		// container without CAP_PERFMON): try it once.
		test := filepath.Join(dir, "probe.data")
		cmd := exec.Command(path, "record", "-a", "-F", "99", "-o", test, "--", "sleep", "0.1")
		if out, err := cmd.CombinedOutput(); err == nil {
			p.perf = path
		} else {
			log.Info("perf unusable; profiles of the harness only", "error", err, "output", strings.TrimSpace(string(out)))
		}
		_ = os.Remove(test)
	}
	return p, nil
}

// Phase runs fn while profiling.
func (p *profiler) Phase(ctx context.Context, name string, fn func() error) error {
	if !p.enabled || name == "" {
		return fn()
	}
	hf, err := os.Create(filepath.Join(p.dir, name+".harness.pprof"))
	if err != nil {
		return fmt.Errorf("create profile: %w", err)
	}
	defer hf.Close()
	cpu := pprof.StartCPUProfile(hf) == nil
	var perf *exec.Cmd
	if p.perf != "" {
		perf = exec.Command(p.perf, "record", "-a", "-g", "-F", "499", "-o", filepath.Join(p.dir, name+".perf.data"))
		perf.Stdout, perf.Stderr = nil, nil
		if err := perf.Start(); err != nil {
			perf = nil
		} else {
			// perf's start-up (a system-wide snapshot of every process's
			// mappings) takes a CPU for a moment: let it pass before the
			// phase, or the phase measures perf.
			time.Sleep(1500 * time.Millisecond)
		}
	}
	err = fn()
	if cpu {
		pprof.StopCPUProfile()
	}
	if perf != nil {
		_ = perf.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = perf.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = perf.Process.Kill()
			<-done
		}
	}
	p.taken[name] = true
	return err
}

// Keep copies the profiles of the phases whose goal was missed into
// outDir/<date>-profiles/ and returns their paths relative to outDir.
func (p *profiler) Keep(rep *Report, outDir string) []string {
	dest := filepath.Join(outDir, rep.Date+"-profiles")
	_ = os.RemoveAll(dest) // an earlier run's of the same day
	names := map[string]bool{}
	for _, r := range rep.Misses() {
		if r.Profile != "" && p.taken[r.Profile] {
			names[r.Profile] = true
		}
	}
	if len(names) == 0 {
		return nil
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		p.log.Warn("keep profiles", "error", err)
		return nil
	}
	var kept []string
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		src := filepath.Join(p.dir, name+".harness.pprof")
		if b, err := os.ReadFile(src); err == nil && len(b) > 0 {
			dst := filepath.Join(dest, name+".harness.pprof")
			if err := os.WriteFile(dst, b, 0o644); err == nil {
				kept = append(kept, rel(outDir, dst))
			}
		}
		data := filepath.Join(p.dir, name+".perf.data")
		if _, err := os.Stat(data); err != nil {
			continue
		}
		dst := filepath.Join(dest, name+".system.pprof")
		byProc, err := perfToPprof(p.perf, data, dst)
		if err != nil {
			p.log.Warn("convert perf profile", "phase", name, "error", err)
			continue
		}
		kept = append(kept, rel(outDir, dst))
		rep.Details = append(rep.Details, Detail{Title: fmt.Sprintf("Where the CPU went during %s (perf, all processes, 2 CPUs = 200%%)", name),
			Header: []string{"process", "CPU share of the machine", "top functions (self)", "where its time goes (cumulative share of the process)"}, Rows: byProc})
	}
	return kept
}

func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil {
		return r
	}
	return path
}
