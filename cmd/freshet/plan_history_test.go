package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/broker"
)

// TestPlanHistory judges what partitions retain against what a view needs.
func TestPlanHistory(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	day := int64(86_400_000)
	at := func(h int) time.Time { return now.Add(-time.Duration(h) * time.Hour) }
	for _, tc := range []struct {
		name     string
		spans    []broker.Span
		retained bool
		messages int64
	}{
		{"never created", nil, true, 0},
		{"all since offset 0, short", []broker.Span{{First: 0, Last: 5, FirstTime: at(1)}, {First: 0, Last: 0}}, true, 5},
		{"trimmed but old enough", []broker.Span{{First: 10, Last: 50, FirstTime: at(30)}, {First: 0, Last: 3, FirstTime: at(2)}}, true, 43},
		{"trimmed, too recent", []broker.Span{{First: 10, Last: 50, FirstTime: at(20)}, {First: 7, Last: 9, FirstTime: at(23)}}, false, 42},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := history("t", tc.spans, day, now)
			require.Equal(t, tc.retained, h.Retained)
			require.Equal(t, tc.messages, h.Messages)
		})
	}
}
