// Package project writes a new freshet project: `freshet init DIR` makes a
// directory holding feature definitions, a sample of events and a README of
// the next commands, which `freshet validate DIR` accepts and
// `freshet dev --schemas DIR` serves, as `feast init` does for Feast. The
// package owns the template; it must not know Kafka, Redis or HTTP.
package project

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/freshet-ml/freshet/pipeline/events"
)

//go:embed template
var template embed.FS

// The sample: this many orders of this many customers over span, before
// the last event; dev mode moves them so that the last one is now.
const (
	sampleEvents    = 600
	sampleCustomers = 40
	sampleSpan      = 48 * time.Hour
)

var categories = []string{"books", "games", "garden", "kitchen", "music", "sports", "toys"}

// Files are the files Init writes, in the order it writes them.
var Files = []string{"features.yaml", "events.ndjson", "README.md"}

// Init writes a new project into dir, creating it if needed, and returns
// the paths written. It refuses to overwrite: if any of Files exists in
// dir, it writes nothing and names them.
func Init(dir string) ([]string, error) {
	var exist []string
	for _, f := range Files {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			exist = append(exist, filepath.Join(dir, f))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(exist) > 0 {
		return nil, fmt.Errorf("%s already exist(s): choose a new directory, or move them away", strings.Join(exist, ", "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	sample, last := sampleOrders()
	vars := map[string]string{
		"{{DIR}}":        dir,
		"{{EVENTS}}":     strconv.Itoa(sampleEvents),
		"{{CUSTOMERS}}":  strconv.Itoa(sampleCustomers),
		"{{SPAN}}":       "two days",
		"{{CUSTOMER}}":   last,
		"{{CATEGORIES}}": `["books", "games", "toys"]`,
	}
	var written []string
	for _, name := range Files {
		var data []byte
		if name == "events.ndjson" {
			data = sample
		} else {
			tmpl, err := template.ReadFile("template/" + name)
			if err != nil {
				return written, err
			}
			data = fill(tmpl, vars)
		}
		path := filepath.Join(dir, name)
		// O_EXCL: a file that appeared since the check is not overwritten.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return written, err
		}
		_, werr := f.Write(data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return written, fmt.Errorf("write %s: %w", path, werr)
		}
		written = append(written, path)
	}
	return written, nil
}

func fill(tmpl []byte, vars map[string]string) []byte {
	for k, v := range vars {
		tmpl = bytes.ReplaceAll(tmpl, []byte(k), []byte(v))
	}
	return tmpl
}

// sampleOrders returns the sample as NDJSON, the same every time, and the
// customer of its last order. Times are in the past of a fixed day; dev
// mode rebases them.
func sampleOrders() ([]byte, string) {
	rng := rand.New(rand.NewPCG(2024, 6))
	end := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	start := end.Add(-sampleSpan)
	step := sampleSpan / sampleEvents
	var b []byte
	last := ""
	for i := range sampleEvents {
		t := start.Add(time.Duration(i+1) * step)
		// A few customers order most: a skewed pick.
		c := int(float64(sampleCustomers) * rng.Float64() * rng.Float64())
		last = fmt.Sprintf("c_%03d", c+1)
		total := float64(int(500+rng.ExpFloat64()*3500)) / 100
		b = append(b, `{"order_id":"o_`...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, `","customer_id":`...)
		b = events.Value{Kind: events.String, S: last}.AppendJSON(b)
		if rng.IntN(10) > 0 { // category is optional: one order in ten has none
			b = append(b, `,"category":`...)
			b = events.Value{Kind: events.String, S: categories[rng.IntN(len(categories))]}.AppendJSON(b)
		}
		b = append(b, `,"total":`...)
		b = events.Value{Kind: events.Float, F: total}.AppendJSON(b)
		b = append(b, `,"items":`...)
		b = strconv.AppendInt(b, int64(1+rng.IntN(5)), 10)
		b = append(b, `,"ts":"`...)
		b = t.AppendFormat(b, time.RFC3339)
		b = append(b, "\"}\n"...)
	}
	return b, last
}
