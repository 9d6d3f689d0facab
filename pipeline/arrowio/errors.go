package arrowio

import "strconv"

// RowError is one row that is not a valid event. Readers return it from Next
// and go on: the caller counts it and calls Next again.
type RowError struct {
	// File is the path the reader was opened with.
	File string
	// Row is 1-based. For CSV and NDJSON it is the file's line number (the
	// CSV header is line 1, so the first data row is line 2; a quoted cell
	// spanning lines counts from the line the row starts on). For Parquet
	// and Arrow it is the row's index in the file.
	Row int64
	// Field is the schema field at fault, or empty when the row as a whole
	// is wrong (invalid JSON, wrong number of cells).
	Field string
	// Reason says what is wrong, e.g. `expected float, got "abc"`.
	Reason string
	// Raw is the row as text, for text formats (the NDJSON line, the CSV
	// cells joined by commas); nil for Parquet and Arrow.
	Raw []byte
}

// Error returns e.g. `events.csv:12: field amount: expected float, got "abc"`,
// without the "field X: " part when Field is empty.
func (e *RowError) Error() string {
	s := e.File + ":" + strconv.FormatInt(e.Row, 10) + ": "
	if e.Field != "" {
		s += "field " + e.Field + ": "
	}
	return s + e.Reason
}
