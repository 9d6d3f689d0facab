package events

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/schemas"
)

// The transaction event of schemas/example.
const transactionSchema = `
events:
  transaction:
    key: user_id
    timestamp: ts
    fields:
      txn_id: string
      user_id: string
      merchant_id: string
      amount: float
      items: int
      card_present: bool
    required: [txn_id, user_id, amount, ts]
`

var transaction = []byte(`{"txn_id":"t-000123","user_id":"u_0042","merchant_id":"m_017","amount":42.17,"items":3,"card_present":true,"ts":"2024-05-01T12:34:56.789Z"}`)

func transactionType(tb testing.TB) *schemas.Event {
	tb.Helper()
	reg, err := schemas.Parse("transaction.yaml", []byte(transactionSchema))
	require.NoError(tb, err)
	return reg.Events["transaction"]
}

func BenchmarkDecode(b *testing.B) {
	t := transactionType(b)
	ev, err := Decode(t, transaction)
	require.NoError(b, err)
	require.Equal(b, "u_0042", ev.Key())
	b.ReportAllocs()
	b.SetBytes(int64(len(transaction)))
	for b.Loop() {
		if _, err := Decode(t, transaction); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	ev, err := Decode(transactionType(b), transaction)
	require.NoError(b, err)
	buf := ev.AppendJSON(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
}

func BenchmarkSplitNDJSON(b *testing.B) {
	var body []byte
	for range 100 {
		body = append(append(body, transaction...), '\n')
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Split(body, true, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitArray(b *testing.B) {
	body := []byte{'['}
	for i := range 100 {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, transaction...)
	}
	body = append(body, ']')
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Split(body, false, 0); err != nil {
			b.Fatal(err)
		}
	}
}
