package main

import (
	"strings"
	"testing"
)

const perfScript = `serve 4242    2004008 
	          4a1b2c runtime.mallocgc+0x2c (/tmp/bin/serve)
	          4a0000 github.com/freshet-ml/freshet/pipeline/serve.(*Server).read+0x10 (/tmp/bin/serve)
	          4a0100 github.com/freshet-ml/freshet/pipeline/serve.(*Server).read-fm+0x10 (/tmp/bin/serve)

swapper     0    2004008 
	ffffffff821f236b pv_native_safe_halt ([kernel.kallsyms])

data-plane-kafka-request-handler-0 777    2004008 
	    7f0000001234 [unknown] ([unknown])

serve 4242    2004008 
	          4a1b2c runtime.mallocgc+0x2c (/tmp/bin/serve)

`

func TestParsePerfScript(t *testing.T) {
	nameProcess(777, "kafka")
	samples, err := parsePerfScript(strings.NewReader(perfScript))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 4 {
		t.Fatalf("%d samples, want 4", len(samples))
	}
	s := samples[0]
	if s.proc != "serve" || s.period != 2004008 || len(s.frames) != 3 ||
		s.frames[0] != (perfFrame{"runtime.mallocgc", "/tmp/bin/serve"}) || s.frames[1].sym != "github.com/freshet-ml/freshet/pipeline/serve.(*Server).read" {
		t.Errorf("first sample %+v", s)
	}
	if samples[2].frames[0].sym != "[unknown in kafka]" {
		t.Errorf("unresolved frame %q, want it named after its process", samples[2].frames[0].sym)
	}
	if samples[1].proc != "idle" || samples[2].proc != "kafka" {
		t.Errorf("processes %q, %q: want idle (pid 0) and kafka (named pid, whatever the thread)", samples[1].proc, samples[2].proc)
	}
	rows := summarizeSamples(samples)
	if len(rows) != 3 || rows[0][0] != "serve" || rows[0][1] != "50.0%" || !strings.HasPrefix(rows[0][2], "runtime.mallocgc 100%") {
		t.Errorf("summary %v", rows)
	}
	if rows[0][3] != "serve.(*Server).read 50%" {
		t.Errorf("breakdown %q, want the one sample under serve.(*Server).read", rows[0][3])
	}
	pb := encodeProfile(samples)
	for _, want := range []string{"cpu", "nanoseconds", "runtime.mallocgc", "[serve]", "process", "/tmp/bin/serve"} {
		if !strings.Contains(string(pb), want) {
			t.Errorf("profile lacks the string %q", want)
		}
	}
}
