package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc CPU times: 100 on
// every Linux this runs on.
const clockTicks = 100

// cpuSnapshot is the machine's CPU time and the share of it this run used
// (the harness, the services it waited for, and the Redis and Kafka it
// watches), at one moment.
type cpuSnapshot struct {
	at         time.Time
	busy, all  float64 // machine CPU seconds: busy, and busy + idle
	ours       float64 // CPU seconds of this run's processes
	servers    float64 // CPU seconds of the Redis and Kafka processes watched
	unreadable bool
}

// snapshot reads the machine's and this run's CPU time. watched are the
// Redis and Kafka process ids (0: not known).
func snapshot(watched ...int) cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		s.unreadable = true
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		if i >= 8 { // guest times are already in user and nice
			break
		}
		s.all += n / clockTicks
		if i != 3 && i != 4 {
			s.busy += n / clockTicks
		}
	}
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	sec := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	s.ours = sec(self.Utime) + sec(self.Stime) + sec(children.Utime) + sec(children.Stime)
	for _, pid := range watched {
		if pid > 0 {
			s.servers += procCPU(pid)
		}
	}
	return s
}

// procCPU is a process's user and system CPU seconds from /proc/<pid>/stat.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: the fields after it start past ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// cpuUse is how a stretch of the run used the machine.
type cpuUse struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	// Busy is the machine's busy share, Others the share used by processes
	// outside the run (another engineer's build, a test suite, ...): both
	// of the whole machine, all CPUs together.
	Busy   float64 `json:"busy"`
	Others float64 `json:"others"`
}

// use computes the machine's use between two snapshots.
func use(phase string, a, b cpuSnapshot) cpuUse {
	u := cpuUse{Phase: phase, Seconds: b.at.Sub(a.at).Seconds()}
	all := b.all - a.all
	if a.unreadable || b.unreadable || all <= 0 {
		return u
	}
	u.Busy = (b.busy - a.busy) / all
	u.Others = max(0, (b.busy-a.busy)-(b.ours-a.ours)-(b.servers-a.servers)) / all
	return u
}

// loadAvg is the one-minute load average, or -1.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
