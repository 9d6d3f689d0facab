package ingest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/freshet-ml/freshet/pipeline/arrowio"
)

// progress reports a replay as it goes: a bar redrawn in place on a
// terminal, a plain line every few seconds otherwise (logs, CI).
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	start time.Time
	total int64 // bytes of every file

	mu       sync.Mutex
	finished int64 // bytes of the files read to the end
	cur      *arrowio.EventReader
	last     time.Time
	drawn    bool
	sent     atomic.Int64
}

func newProgress(w io.Writer, files []string) *progress {
	p := &progress{w: w, every: 5 * time.Second, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			p.total += st.Size()
		}
	}
	p.last = p.start
	return p
}

func (p *progress) file(r *arrowio.EventReader) {
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()
}

func (p *progress) fileDone() {
	p.mu.Lock()
	if p.cur != nil {
		_, total := p.cur.Progress()
		p.finished += total
	}
	p.cur = nil
	p.mu.Unlock()
}

func (p *progress) published(n int) { p.sent.Add(int64(n)) }

// tick redraws when it is time; the reader calls it every few thousand rows.
func (p *progress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	done := p.finished
	rows := int64(0)
	if p.cur != nil {
		d, _ := p.cur.Progress()
		done += d
		rows = p.cur.Rows()
	}
	elapsed := time.Since(p.start)
	sent := p.sent.Load()
	rate := float64(sent) / elapsed.Seconds()
	frac := 0.0
	if p.total > 0 {
		frac = min(1, float64(done)/float64(p.total))
	}
	left := "?"
	if frac > 0 {
		left = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	}
	status := fmt.Sprintf("%5.1f%% %s/%s, %d rows of this file, %d events sent, %.0f events/s, %s left",
		100*frac, mb(done), mb(p.total), rows, sent, rate, left)
	if p.tty {
		width := 24
		bar := strings.Repeat("=", int(frac*float64(width))) + strings.Repeat(" ", width-int(frac*float64(width)))
		fmt.Fprintf(p.w, "\r\033[K[%s] %s", bar, status)
		p.drawn = true
		return
	}
	fmt.Fprintf(p.w, "replay: %s\n", status)
}

// clear removes the bar so a message can be printed on its own line.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// done clears the bar before the closing summary.
func (p *progress) done() { p.clear() }

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
