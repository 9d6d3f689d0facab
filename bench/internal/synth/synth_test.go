package synth

import (
	"bytes"
	"strings"
	"testing"

	"github.com/freshet-ml/freshet/schemas"
)

const example = `
events:
  transaction:
    key: user_id
    timestamp: ts
    fields: {txn_id: string, user_id: string, merchant_id: string, amount: float, items: int, card_present: bool}
`

func eventType(t *testing.T) *schemas.Event {
	t.Helper()
	reg, err := schemas.Parse("example.yaml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	return reg.Events["transaction"]
}

func TestTransactionsAreRepeatable(t *testing.T) {
	typ := eventType(t)
	spec := Spec{Users: 100, Merchants: 10, Seed: 3}
	a, b := NewTransactions(typ, spec), NewTransactions(typ, spec)
	for i := range 50 {
		ja := string(a.NextJSON())
		if jb := b.NextJSON(); ja != string(jb) {
			t.Fatalf("row %d differs: %s vs %s", i, ja, jb)
		}
	}
	first := string(NewTransactions(typ, spec).NextJSON())
	want := `"ts":` + "1714521600000}"
	if !strings.HasSuffix(first, want) || !strings.HasPrefix(first, `{"txn_id":"t000000000",`) {
		t.Errorf("first row %s: want txn t000000000 at DefaultStart", first)
	}
}

func TestCycleNamesEveryEntity(t *testing.T) {
	typ := eventType(t)
	g := NewTransactions(typ, Spec{Users: 1000, Merchants: 1000, Cycle: true, Start: 1, Spacing: 5})
	users, merchants := map[string]bool{}, map[string]bool{}
	for i := range 1000 {
		ev, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Time != 1+int64(i)*5 {
			t.Fatalf("row %d at %d, want %d", i, ev.Time, 1+int64(i)*5)
		}
		users[ev.Get("user_id").Text()] = true
		merchants[ev.Get("merchant_id").Text()] = true
	}
	if len(users) != 1000 || len(merchants) != 1000 {
		t.Errorf("%d users and %d merchants in 1000 rows, want 1000 each", len(users), len(merchants))
	}
}

func TestNowOverridesTime(t *testing.T) {
	g := NewTransactions(eventType(t), Spec{Users: 1, Merchants: 1, Now: func() int64 { return 42 }})
	if row := g.NextJSON(); !bytes.HasSuffix(row, []byte(`"ts":42}`)) {
		t.Errorf("row %s: want ts 42", row)
	}
}

func TestSpine(t *testing.T) {
	typ, evs, err := Spine(100, 10, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if typ.Name != "spine" || len(evs) != 100 {
		t.Fatalf("%s, %d rows", typ.Name, len(evs))
	}
	for _, ev := range evs {
		if ev.Time < DefaultStart || ev.Time >= DefaultStart+100*100 {
			t.Fatalf("spine row at %d outside the span", ev.Time)
		}
	}
}
