package testenv

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/freshet-ml/freshet/pipeline/telemetry"
)

// EachTelemetry runs bench as a sub-benchmark in each way a service may be
// traced: with no exporter (the default without
// OTEL_EXPORTER_OTLP_ENDPOINT), with an exporter but no span sampled, and
// with every span recorded and exported (to an exporter that drops them).
// Metrics are on in all three.
func EachTelemetry(b *testing.B, bench func(*testing.B, *telemetry.Providers)) {
	for _, c := range []struct {
		name string
		opts []telemetry.Option
	}{
		{"traces=off", nil},
		{"traces=unsampled", []telemetry.Option{telemetry.WithSpanExporter(tracetest.NewNoopExporter()), telemetry.WithSampler(sdktrace.NeverSample())}},
		{"traces=sampled", []telemetry.Option{telemetry.WithSpanExporter(tracetest.NewNoopExporter()), telemetry.WithSampler(sdktrace.AlwaysSample())}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tel, shutdown, err := telemetry.Setup(context.Background(), "bench", c.opts...)
			if err != nil {
				b.Fatalf("telemetry setup: %v", err)
			}
			b.Cleanup(func() { _ = shutdown(context.Background()) })
			bench(b, tel)
		})
	}
}
