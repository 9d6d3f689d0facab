package main

import "time"

// Plan is the size of a run: how many events, which rates, how long each
// phase lasts.
type Plan struct {
	// FeaturizeEvents is the number of events in each featurize topic.
	FeaturizeEvents int
	// Entities are the numbers of distinct entities of the featurize
	// topics, one topic each.
	Entities []int
	// ServeEntities picks the featurize topic whose state serve reads;
	// HeavyEntities the one whose (larger) entities it also reads at
	// HeavyRate.
	ServeEntities, HeavyEntities int
	HeavyRate                    float64
	// Rates are the single-entity request rates (requests/s).
	Rates []float64
	// BatchRates are the batch-of-100 request rates.
	BatchRates []float64
	// BatchSize is the entities per batch request.
	BatchSize int
	// Phase is how long a fixed-rate phase sends; SearchPhase one trial of
	// the highest-rate search.
	Phase, SearchPhase time.Duration
	// Search bounds the highest-rate search.
	Search Search
	// SLO is the p99 under which a rate counts as sustained.
	SLO time.Duration
	// IngestEvents go over HTTP in NDJSON batches of IngestBatch.
	IngestEvents, IngestBatch int
	// ReplayEvents are replayed from a Parquet file, and written by the
	// kafka-go Writer alone for the limit.
	ReplayEvents int
	// FreshRate (events/s) is kept up for FreshWarm, then for FreshFor
	// while freshness is measured.
	FreshRate           float64
	FreshWarm, FreshFor time.Duration
	// CatchUp bounds how long featurize may take to consume a topic before
	// the run is declared broken.
	CatchUp time.Duration
	// Only, when set, names the phases to run.
	Only map[string]bool
}

// FullPlan is the default run: under 10 minutes on a 2-core machine.
func FullPlan() Plan {
	return Plan{
		FeaturizeEvents: 1_000_000,
		Entities:        []int{1, 10_000, 1_000_000},
		ServeEntities:   1_000_000,
		HeavyEntities:   10_000,
		HeavyRate:       1000,
		Rates:           []float64{1000, 5000, 10000},
		BatchRates:      []float64{100, 500},
		BatchSize:       100,
		Phase:           3 * time.Second,
		SearchPhase:     2 * time.Second,
		Search:          Search{Start: 2500, Cap: 80_000, Refine: 3},
		SLO:             50 * time.Millisecond,
		IngestEvents:    300_000,
		IngestBatch:     1000,
		ReplayEvents:    1_000_000,
		FreshRate:       5000,
		FreshWarm:       5 * time.Second,
		FreshFor:        20 * time.Second,
		CatchUp:         3 * time.Minute,
	}
}

// ShortPlan is the smoke run (-short): every phase, a small workload, under
// 2 minutes. Its timings are not comparable with a full run's.
func ShortPlan() Plan {
	return Plan{
		FeaturizeEvents: 40_000,
		Entities:        []int{1, 1_000, 40_000},
		ServeEntities:   40_000,
		HeavyEntities:   1_000,
		HeavyRate:       500,
		Rates:           []float64{500},
		BatchRates:      []float64{20},
		BatchSize:       100,
		Phase:           500 * time.Millisecond,
		SearchPhase:     500 * time.Millisecond,
		Search:          Search{Start: 1000, Cap: 2000, Refine: 0},
		SLO:             50 * time.Millisecond,
		IngestEvents:    20_000,
		IngestBatch:     1000,
		ReplayEvents:    40_000,
		FreshRate:       5000,
		FreshWarm:       time.Second,
		FreshFor:        3 * time.Second,
		CatchUp:         time.Minute,
	}
}
