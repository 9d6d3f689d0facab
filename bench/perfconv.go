package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// procNames maps process ids to the names the profiles show: "serve",
// "redis-server", "kafka", "harness". Others keep perf's command name.
var procNames sync.Map

// nameProcess names a process id in the profiles.
func nameProcess(pid int, name string) { procNames.Store(pid, name) }

// perfSample is one sample of `perf script`: the process and its stack,
// leaf first.
type perfSample struct {
	proc   string
	period int64
	frames []perfFrame
}

type perfFrame struct{ sym, dso string }

// parsePerfScript reads `perf script -F comm,pid,period,ip,sym,dso` output.
func parsePerfScript(r io.Reader) ([]perfSample, error) {
	var out []perfSample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur *perfSample
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			cur = nil
			continue
		}
		if line[0] != '\t' && line[0] != ' ' { // a header: comm pid period
			f := strings.Fields(line)
			if len(f) < 3 {
				return nil, fmt.Errorf("perf script: unexpected line %q", line)
			}
			period, err1 := strconv.ParseInt(f[len(f)-1], 10, 64)
			pid, err2 := strconv.Atoi(f[len(f)-2])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("perf script: unexpected header %q", line)
			}
			proc := strings.Join(f[:len(f)-2], " ")
			if n, ok := procNames.Load(pid); ok {
				proc = n.(string)
			} else if pid == 0 {
				proc = "idle"
			}
			out = append(out, perfSample{proc: proc, period: period})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			continue
		}
		// "\t addr sym+off (dso)"
		s := strings.TrimSpace(line)
		_, rest, _ := strings.Cut(s, " ")
		sym, dso := rest, ""
		if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
			sym, dso = rest[:i], rest[i+2:len(rest)-1]
		}
		if i := strings.LastIndex(sym, "+0x"); i > 0 {
			sym = sym[:i]
		}
		if sym == "" || sym == "[unknown]" {
			// Unresolved code (JIT, a stripped or deleted binary) stays
			// apart per process instead of merging across them.
			sym = "[unknown in " + cur.proc + "]"
		}
		cur.frames = append(cur.frames, perfFrame{sym: sym, dso: dso})
	}
	return out, sc.Err()
}

// perfToPprof converts a perf.data file to a gzipped pprof CPU profile at
// dst, every stack rooted at a frame naming its process (and labelled
// process=NAME), and summarizes each process's share of the machine and its
// hottest functions.
func perfToPprof(perf, data, dst string) ([][]string, error) {
	cmd := exec.Command(perf, "script", "-i", data, "-F", "comm,pid,period,ip,sym,dso")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("perf script: %w", err)
	}
	samples, err := parsePerfScript(&stdout)
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("no samples in %s", data)
	}
	f, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write(encodeProfile(samples)); err != nil {
		f.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return summarizeSamples(samples), nil
}

// summarizeSamples gives, per process, its share of all samples and its five
// hottest leaf functions.
func summarizeSamples(samples []perfSample) [][]string {
	total := int64(0)
	byProc := map[string]int64{}
	leaves := map[string]map[string]int64{}
	cum := map[string]map[string]int64{}
	for _, s := range samples {
		total += s.period
		byProc[s.proc] += s.period
		if leaves[s.proc] == nil {
			leaves[s.proc], cum[s.proc] = map[string]int64{}, map[string]int64{}
		}
		if len(s.frames) > 0 {
			leaves[s.proc][s.frames[0].sym] += s.period
		}
		seen := map[string]bool{}
		for _, f := range s.frames {
			if stage := stageOf(f.sym); stage != "" && !seen[stage] {
				seen[stage] = true
				cum[s.proc][stage] += s.period
			}
		}
	}
	procs := make([]string, 0, len(byProc))
	for p := range byProc {
		procs = append(procs, p)
	}
	sort.Slice(procs, func(i, j int) bool { return byProc[procs[i]] > byProc[procs[j]] })
	var rows [][]string
	for i, p := range procs {
		if i >= 8 {
			break
		}
		syms := make([]string, 0, len(leaves[p]))
		for s := range leaves[p] {
			syms = append(syms, s)
		}
		sort.Slice(syms, func(i, j int) bool { return leaves[p][syms[i]] > leaves[p][syms[j]] })
		var top []string
		if p == "harness" { // go run's binary: perf cannot name its functions
			top = append(top, "see the phase's .harness.pprof")
		}
		for k, s := range syms {
			if k >= 5 || p == "idle" || p == "harness" {
				break
			}
			top = append(top, fmt.Sprintf("%s %.0f%%", strings.ReplaceAll(s, "|", "/"), 100*float64(leaves[p][s])/float64(byProc[p])))
		}
		stages := make([]string, 0, len(cum[p]))
		for st := range cum[p] {
			stages = append(stages, st)
		}
		sort.Slice(stages, func(i, j int) bool { return cum[p][stages[i]] > cum[p][stages[j]] })
		var where []string
		for k, st := range stages {
			if k >= 6 {
				break
			}
			where = append(where, fmt.Sprintf("%s %.0f%%", st, 100*float64(cum[p][st])/float64(byProc[p])))
		}
		rows = append(rows, []string{p, fmt.Sprintf("%.1f%%", 100*float64(byProc[p])/float64(total)), strings.Join(top, ", "), strings.Join(where, ", ")})
	}
	return rows
}

// stageOf names the part of a Go service a frame belongs to, for the
// cumulative breakdown: freshet's own functions by package and name, the
// HTTP server, go-redis, kafka-go, JSON, the garbage collector and the
// scheduler. Other frames have no stage.
func stageOf(sym string) string {
	const own = "github.com/freshet-ml/freshet/pipeline/"
	switch {
	case strings.HasPrefix(sym, own):
		name := strings.TrimPrefix(sym, own)
		if strings.HasSuffix(name, "-fm") || strings.Contains(name, ".func") || strings.Contains(name, ".gowrap") {
			return ""
		}
		return name
	case sym == "net/http.(*conn).serve":
		return "net/http server"
	case strings.HasPrefix(sym, "github.com/redis/go-redis/v9.(*Pipeline).Exec"), sym == "github.com/redis/go-redis/v9.(*baseClient).process":
		return "go-redis round trip"
	case strings.HasPrefix(sym, "github.com/segmentio/kafka-go.(*Reader)."), strings.HasPrefix(sym, "github.com/segmentio/kafka-go.(*Writer)."):
		return "kafka-go"
	case strings.HasPrefix(sym, "encoding/json."):
		return "encoding/json"
	case sym == "runtime.gcBgMarkWorker":
		return "GC"
	case sym == "runtime.schedule":
		return "Go scheduler"
	}
	return ""
}

// encodeProfile writes samples as a pprof profile.proto message
// (github.com/google/pprof/proto/profile.proto): sample type cpu
// nanoseconds, one function and location per (symbol, binary).
func encodeProfile(samples []perfSample) []byte {
	strs := map[string]int64{"": 0}
	table := []string{""}
	str := func(s string) int64 {
		if i, ok := strs[s]; ok {
			return i
		}
		strs[s] = int64(len(table))
		table = append(table, s)
		return strs[s]
	}
	funcs := map[perfFrame]uint64{}
	var funcOrder []perfFrame
	fn := func(k perfFrame) uint64 {
		if id, ok := funcs[k]; ok {
			return id
		}
		id := uint64(len(funcs) + 1)
		funcs[k] = id
		funcOrder = append(funcOrder, k)
		return id
	}
	var pb []byte
	// sample_type: cpu/nanoseconds
	pb = appendMsg(pb, 1, appendVarintField(appendVarintField(nil, 1, uint64(str("cpu"))), 2, uint64(str("nanoseconds"))))
	labelKey := str("process")
	for _, s := range samples {
		var ids []uint64
		for _, fr := range s.frames {
			ids = append(ids, fn(fr))
		}
		ids = append(ids, fn(perfFrame{"[" + s.proc + "]", ""}))
		var locs []byte
		for _, id := range ids {
			locs = binary.AppendUvarint(locs, id)
		}
		var m []byte
		m = appendBytesField(m, 1, locs)
		m = appendBytesField(m, 2, binary.AppendUvarint(nil, uint64(s.period)))
		m = appendMsg(m, 3, appendVarintField(appendVarintField(nil, 1, uint64(labelKey)), 2, uint64(str(s.proc))))
		pb = appendMsg(pb, 2, m)
	}
	// One mapping that claims symbolized functions, so pprof never tries
	// to symbolize the addresses-less locations.
	var mp []byte
	mp = appendVarintField(mp, 1, 1)
	mp = appendVarintField(mp, 5, uint64(str("perf")))
	mp = appendVarintField(mp, 7, 1)
	pb = appendMsg(pb, 3, mp)
	for i, k := range funcOrder {
		id := uint64(i + 1)
		var line []byte
		line = appendVarintField(line, 1, id)
		var loc []byte
		loc = appendVarintField(loc, 1, id)
		loc = appendVarintField(loc, 2, 1)
		loc = appendMsg(loc, 4, line)
		pb = appendMsg(pb, 4, loc)
		var f []byte
		f = appendVarintField(f, 1, id)
		f = appendVarintField(f, 2, uint64(str(k.sym)))
		f = appendVarintField(f, 3, uint64(str(k.sym)))
		f = appendVarintField(f, 4, uint64(str(k.dso)))
		pb = appendMsg(pb, 5, f)
	}
	period := samples[0].period
	pt := appendVarintField(appendVarintField(nil, 1, uint64(str("cpu"))), 2, uint64(str("nanoseconds")))
	for _, s := range table {
		pb = appendBytesField(pb, 6, []byte(s))
	}
	pb = appendMsg(pb, 11, pt)
	pb = appendVarintField(pb, 12, uint64(period))
	return pb
}

func appendVarintField(b []byte, field int, v uint64) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3) // wire type 0
	return binary.AppendUvarint(b, v)
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendMsg(b []byte, field int, m []byte) []byte { return appendBytesField(b, field, m) }
