package aggregate

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
)

// Int128 is a two's complement 128-bit integer: the exact sum of int64
// values. A window's sum is exact in any order of its events, even when a
// partial sum leaves int64 on the way; only the final sum has to fit.
// Overflowing 128 bits needs 2^64 events of the largest int64.
type Int128 struct {
	Hi int64
	Lo uint64
}

// Int128Of returns x as an Int128.
func Int128Of(x int64) Int128 { return Int128{Hi: x >> 63, Lo: uint64(x)} }

// Add returns a + b.
func (a Int128) Add(b Int128) Int128 {
	lo, carry := bits.Add64(a.Lo, b.Lo, 0)
	return Int128{Hi: a.Hi + b.Hi + int64(carry), Lo: lo}
}

// Int64 returns a and whether it fits an int64.
func (a Int128) Int64() (int64, bool) {
	lo := int64(a.Lo)
	return lo, a.Hi == lo>>63
}

// Float returns a rounded to a float64.
func (a Int128) Float() float64 {
	if x, ok := a.Int64(); ok {
		return float64(x)
	}
	f, _ := new(big.Float).SetInt(a.big()).Float64()
	return f
}

func (a Int128) big() *big.Int {
	b := new(big.Int).SetInt64(a.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(a.Lo))
}

// Append appends a's decimal text.
func (a Int128) Append(b []byte) []byte {
	if x, ok := a.Int64(); ok {
		return strconv.AppendInt(b, x, 10)
	}
	return a.big().Append(b, 10)
}

var (
	minInt128 = new(big.Int).Lsh(big.NewInt(-1), 127)
	maxInt128 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))
)

// ParseInt128 reads decimal text written by Append. It also reads an
// integral float's text ("1.234567e+06"), which is how sums of integer
// columns were stored before they were exact, so state written by an
// earlier version reads back unchanged.
func ParseInt128(s string) (Int128, error) {
	if x, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Int128Of(x), nil
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || f != math.Trunc(f) {
			return Int128{}, fmt.Errorf("not an integer: %q", s)
		}
		b, _ = big.NewFloat(f).Int(nil)
	}
	if b.Cmp(minInt128) < 0 || b.Cmp(maxInt128) > 0 {
		return Int128{}, fmt.Errorf("integer %q out of 128-bit range", s)
	}
	lo := new(big.Int).And(b, new(big.Int).SetUint64(math.MaxUint64)).Uint64()
	return Int128{Hi: new(big.Int).Rsh(b, 64).Int64(), Lo: lo}, nil
}
