// Package featurize consumes events from Kafka in a consumer group and keeps
// every feature view's tiles in the online store, effectively once.
//
// One event's path, in the order the code runs it:
//
//  1. Consumer.fill fetches a micro-batch from the Source (a consumer group).
//  2. Consumer.prepare has Processor.Prepare load the saved watermark of each
//     partition the process was not following (new here, or resumed at an
//     offset other than the next one).
//  3. Processor.Plan decodes the event, rejects an implausible event time,
//     judges lateness per view against its partition's watermark, and
//     coalesces it into a store.Unit: one per view, entity and partition.
//  4. Consumer.flush has Processor.Apply write the units to the store, which
//     skips every event it applied before (by offset and id): idempotent,
//     so it retries until it succeeds. Apply then saves the watermarks.
//  5. Consumer.commitPending commits the partitions' offsets to Kafka once
//     the batch has been in the store for CommitDelay, unless the store's
//     server restarted meanwhile: then Consumer.rewind drops what is not
//     committed and starts over from the committed offsets.
//
// A crash anywhere redelivers messages whose effects the store either holds
// (skipped) or lacks (applied).
//
// The package owns that loop and lateness, and serves its own health,
// stats and metrics endpoints (Service). It must not know the tile format or
// the store's Redis keys: it hands events to store.Online and reads back
// counts.
//
// The files: config.go the settings; processor.go planning and applying a
// batch, and the per-partition state; consumer.go the consume loop;
// service.go the process and its HTTP endpoints; observe.go the observer of
// the loop (spans and metrics); rebuild.go recomputing the store from Kafka.
package featurize
