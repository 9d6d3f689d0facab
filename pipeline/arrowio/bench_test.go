package arrowio

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/testenv"
	"github.com/freshet-ml/freshet/schemas"
)

const benchRows = 200_000

// benchEvents makes n events of the example transaction type from
// synthetic JSON, as ingest would have decoded them.
func benchEvents(b *testing.B, n int) (*schemas.Event, []events.Event) {
	b.Helper()
	reg := testenv.Registry(b)
	typ := reg.Events["transaction"]
	base := time.Date(2024, 5, 30, 0, 0, 0, 0, time.UTC).UnixMilli()
	evs := make([]events.Event, n)
	for i := range evs {
		line := fmt.Sprintf(`{"txn_id":"t_%07d","user_id":"u_%04d","merchant_id":"m_%03d","amount":%d.%02d,"items":%d,"card_present":%t,"ts":%d}`,
			i, i%5000, i%200, i%500, i%100, 1+i%9, i%3 == 0, base+int64(i)*37)
		if i%10 == 0 { // some optional fields absent
			line = fmt.Sprintf(`{"txn_id":"t_%07d","user_id":"u_%04d","amount":%d.5,"ts":%d}`, i, i%5000, i%500, base+int64(i)*37)
		}
		var err error
		if evs[i], err = events.Decode(typ, []byte(line)); err != nil {
			b.Fatal(err)
		}
	}
	return typ, evs
}

// benchRead reports how fast a file of benchRows example transactions reads
// back as events.
func benchRead(b *testing.B, ext string) {
	typ, evs := benchEvents(b, benchRows)
	path := filepath.Join(b.TempDir(), "transactions"+ext)
	if err := WriteEvents(path, typ, evs, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := OpenEvents(path, typ)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		r.Close()
		if n != benchRows {
			b.Fatalf("read %d events, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkReadParquet(b *testing.B) { benchRead(b, ".parquet") }
func BenchmarkReadArrow(b *testing.B)   { benchRead(b, ".arrow") }
func BenchmarkReadCSV(b *testing.B)     { benchRead(b, ".csv") }
func BenchmarkReadCSVGzip(b *testing.B) { benchRead(b, ".csv.gz") }
func BenchmarkReadNDJSON(b *testing.B)  { benchRead(b, ".ndjson") }

func BenchmarkWriteParquet(b *testing.B) {
	typ, evs := benchEvents(b, benchRows)
	path := filepath.Join(b.TempDir(), "transactions.parquet")
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteEvents(path, typ, evs, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
