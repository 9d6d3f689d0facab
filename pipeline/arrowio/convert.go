package arrowio

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/schemas"
)

// This file holds the type rules from Arrow columns to event values. They
// mirror the JSON rules of events.Decode: each field type accepts the Arrow
// types that can only hold values of that type, and a column of any other
// type is refused before a row is read.

const msPerDay = 86_400_000

// fieldAccepts reports whether a column of type dt can hold a field of type
// ft:
//
//	string    ← utf8, large_utf8
//	int       ← int8…int64, uint8…uint64
//	float     ← any integer, float16, float32, float64
//	bool      ← bool
//	timestamp ← timestamp (any unit and zone), int32 and int64 (epoch ms),
//	            utf8 and large_utf8 (RFC 3339), date32, date64
//
// A dictionary is judged by its value type; a column of Arrow type null (all
// values null) can stand for any field.
func fieldAccepts(ft schemas.FieldType, dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.NULL:
		return true
	case arrow.DICTIONARY:
		return fieldAccepts(ft, dt.(*arrow.DictionaryType).ValueType)
	}
	switch ft {
	case schemas.String:
		return isString(dt)
	case schemas.Int:
		return isInteger(dt)
	case schemas.Float:
		return isInteger(dt) || isFloat(dt)
	case schemas.Bool:
		return dt.ID() == arrow.BOOL
	case schemas.Timestamp:
		switch dt.ID() {
		case arrow.TIMESTAMP, arrow.INT32, arrow.INT64, arrow.DATE32, arrow.DATE64:
			return true
		}
		return isString(dt)
	}
	return false
}

func isString(dt arrow.DataType) bool {
	return dt.ID() == arrow.STRING || dt.ID() == arrow.LARGE_STRING
}

func isInteger(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func isFloat(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false
}

// getter returns the value of one row of a column: an Absent value for a
// null, or a non-empty reason when the row's value cannot be the field's.
type getter func(i int) (events.Value, string)

func absentGetter(int) (events.Value, string) { return events.Value{}, "" }

// bindColumn returns the getter of a column for a field of type ft. The
// column's type must pass fieldAccepts. Strings are copied out of Arrow
// memory, so values outlive the record.
func bindColumn(ft schemas.FieldType, arr arrow.Array) getter {
	switch a := arr.(type) {
	case *array.Null:
		return absentGetter
	case *array.Dictionary:
		return bindDictionary(ft, a)
	}
	switch ft {
	case schemas.String:
		str := stringAt(arr)
		return func(i int) (events.Value, string) {
			if arr.IsNull(i) {
				return events.Value{}, ""
			}
			text, reason := cloneText(str(i))
			if reason != "" {
				return events.Value{}, reason
			}
			return events.Value{Kind: events.String, S: text}, ""
		}
	case schemas.Int:
		num := intAt(arr)
		return func(i int) (events.Value, string) {
			if arr.IsNull(i) {
				return events.Value{}, ""
			}
			v, u, ok := num(i)
			if !ok {
				return events.Value{}, "expected int, got " + strconv.FormatUint(u, 10) + " (out of int64 range)"
			}
			return events.Value{Kind: events.Int, I: v}, ""
		}
	case schemas.Float:
		var num func(int) float64
		if isInteger(arr.DataType()) {
			in := intAt(arr)
			num = func(i int) float64 {
				v, u, ok := in(i)
				if !ok {
					return float64(u)
				}
				return float64(v)
			}
		} else {
			num = floatAt(arr)
		}
		return func(i int) (events.Value, string) {
			if arr.IsNull(i) {
				return events.Value{}, ""
			}
			f := num(i)
			switch {
			case math.IsNaN(f):
				// NaN is how many tools spell a missing float; events
				// cannot hold it (its JSON form is null).
				return events.Value{}, ""
			case math.IsInf(f, 0):
				return events.Value{}, "expected float, got " + strconv.FormatFloat(f, 'g', -1, 64) + " (not a finite number)"
			}
			return events.Value{Kind: events.Float, F: f}, ""
		}
	case schemas.Bool:
		b := arr.(*array.Boolean)
		return func(i int) (events.Value, string) {
			if b.IsNull(i) {
				return events.Value{}, ""
			}
			return events.Value{Kind: events.Bool, B: b.Value(i)}, ""
		}
	case schemas.Timestamp:
		return bindTimestamp(arr)
	}
	return absentGetter
}

func bindTimestamp(arr arrow.Array) getter {
	var ms func(i int) (int64, string)
	switch a := arr.(type) {
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		ms = func(i int) (int64, string) {
			v, ok := unitToMillis(int64(a.Value(i)), unit)
			if !ok {
				return 0, "timestamp " + strconv.FormatInt(int64(a.Value(i)), 10) + unit.String() + " is out of range"
			}
			return v, ""
		}
	case *array.Int32:
		ms = func(i int) (int64, string) { return int64(a.Value(i)), "" }
	case *array.Int64:
		ms = func(i int) (int64, string) { return a.Value(i), "" }
	case *array.Date32:
		ms = func(i int) (int64, string) { return int64(a.Value(i)) * msPerDay, "" }
	case *array.Date64:
		ms = func(i int) (int64, string) { return int64(a.Value(i)), "" }
	default:
		str := stringAt(arr)
		ms = func(i int) (int64, string) {
			s := str(i)
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return 0, events.TimeReason(s, err)
			}
			return t.UnixMilli(), ""
		}
	}
	return func(i int) (events.Value, string) {
		if arr.IsNull(i) {
			return events.Value{}, ""
		}
		v, reason := ms(i)
		if reason != "" {
			return events.Value{}, reason
		}
		return events.Value{Kind: events.Time, I: v}, ""
	}
}

// bindDictionary converts each dictionary entry once, when a row first uses
// it.
func bindDictionary(ft schemas.FieldType, d *array.Dictionary) getter {
	inner := bindColumn(ft, d.Dictionary())
	n := d.Dictionary().Len()
	vals := make([]events.Value, n)
	reasons := make([]string, n)
	done := make([]bool, n)
	return func(i int) (events.Value, string) {
		if d.IsNull(i) {
			return events.Value{}, ""
		}
		k := d.GetValueIndex(i)
		if !done[k] {
			vals[k], reasons[k] = inner(k)
			done[k] = true
		}
		return vals[k], reasons[k]
	}
}

// stringAt returns the accessor of a utf8 or large_utf8 array. The strings
// alias Arrow memory: copy them before they outlive the record.
func stringAt(arr arrow.Array) func(int) string {
	switch a := arr.(type) {
	case *array.String:
		return a.Value
	case *array.LargeString:
		return a.Value
	}
	return func(int) string { return "" }
}

// intAt returns the accessor of any integer array: the value as an int64,
// or ok false and the value as a uint64 when it is a uint64 above MaxInt64.
func intAt(arr arrow.Array) func(int) (v int64, u uint64, ok bool) {
	switch a := arr.(type) {
	case *array.Int8:
		return func(i int) (int64, uint64, bool) { return int64(a.Value(i)), 0, true }
	case *array.Int16:
		return func(i int) (int64, uint64, bool) { return int64(a.Value(i)), 0, true }
	case *array.Int32:
		return func(i int) (int64, uint64, bool) { return int64(a.Value(i)), 0, true }
	case *array.Int64:
		return func(i int) (int64, uint64, bool) { return a.Value(i), 0, true }
	case *array.Uint8:
		return func(i int) (int64, uint64, bool) { return int64(a.Value(i)), 0, true }
	case *array.Uint16:
		return func(i int) (int64, uint64, bool) { return int64(a.Value(i)), 0, true }
	case *array.Uint32:
		return func(i int) (int64, uint64, bool) { return int64(a.Value(i)), 0, true }
	case *array.Uint64:
		return func(i int) (int64, uint64, bool) {
			u := a.Value(i)
			if u > math.MaxInt64 {
				return 0, u, false
			}
			return int64(u), u, true
		}
	}
	return func(int) (int64, uint64, bool) { return 0, 0, true }
}

// floatAt returns the accessor of a float16, float32 or float64 array.
func floatAt(arr arrow.Array) func(int) float64 {
	switch a := arr.(type) {
	case *array.Float16:
		return func(i int) float64 { return float64(a.Value(i).Float32()) }
	case *array.Float32:
		return func(i int) float64 { return float64(a.Value(i)) }
	case *array.Float64:
		return a.Value
	}
	return func(int) float64 { return 0 }
}

// unitToMillis converts a timestamp in unit to epoch ms, flooring
// sub-millisecond values toward the past as events.Decode does; ok is false
// when seconds overflow int64 milliseconds.
func unitToMillis(v int64, unit arrow.TimeUnit) (int64, bool) {
	switch unit {
	case arrow.Second:
		if v > math.MaxInt64/1000 || v < math.MinInt64/1000 {
			return 0, false
		}
		return v * 1000, true
	case arrow.Microsecond:
		return aggregate.FloorDiv(v, 1000), true
	case arrow.Nanosecond:
		return aggregate.FloorDiv(v, 1_000_000), true
	}
	return v, true
}

// cloneText copies s out of Arrow memory, or says why it is no text:
// invalid UTF-8 is refused as ingest's decoder refuses it
// (events.StringReason), not replaced, so that two ids that differ only
// in invalid bytes never merge into one entity.
func cloneText(s string) (string, string) {
	if reason := events.StringReason(s); reason != "" {
		return "", reason
	}
	return strings.Clone(s), ""
}
