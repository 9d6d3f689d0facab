// Package arrowio reads and writes the columnar and text files that data
// scientists keep event history in: Parquet, Arrow IPC (file and stream),
// CSV and NDJSON, the text formats optionally gzip- or zstd-compressed.
//
// It owns three jobs:
//
//   - EventReader turns a file's rows into events.Event values of one
//     schemas.Event type, under the same strict type rules as events.Decode
//     applies to JSON, so that `ingest replay` and `featurize backfill` see
//     exactly the events that live ingestion would have accepted. Rows that
//     are not valid events come back as *RowError values; reading goes on.
//   - SpineReader and OutputWriter stream a training-set spine through
//     point-in-time feature lookups: the spine's columns pass through
//     unchanged and typed feature columns are appended.
//   - WriteStream answers batch lookups as an Arrow IPC stream, and
//     WriteEvents writes event files for tests, benchmarks and conversion.
//
// Everything streams: readers hold one Parquet row group, one IPC record or
// one chunk of text at a time and release Arrow memory as they go, so memory
// stays flat whatever the file size.
//
// CSV is read and written with encoding/csv, not arrow/csv, which gives up
// on a whole chunk at the first bad cell without a line number; freshet must
// skip and report each bad row by line and go on.
//
// Damaged files give errors naming the file (and the row group, record
// batch or line), not panics: Arrow metadata is checked before arrow/go v15
// trusts it (see verify.go), allocations are bounded by the file's size,
// and panics inside Arrow are recovered into errors.
//
// This package is freshet's only user of github.com/apache/arrow/go/v15
// (parquet/pqarrow, arrow/ipc, arrow/array, arrow/memory). No Arrow type
// appears in its exported API, so moving to arrow-go/v18 is an import change
// confined to this package. It must not know about Kafka, Redis or HTTP.
package arrowio
