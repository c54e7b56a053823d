package pricing

import "testing"

func TestQuote(t *testing.T) {
	r := DefaultRules()
	cases := []struct {
		name       string
		unit, qty  int
		coupon     string
		wantPct    int
		wantTotal  int
		wantNoteIn string
	}{
		{"plain", 1000, 2, "", 0, 2000, ""},
		{"volume", 100, 10, "", 5, 950, "volume discount"},
		{"coupon", 1000, 1, "gopher", 10, 900, "coupon GOPHER"},
		{"unknown coupon", 1000, 1, "nope", 0, 1000, "unknown coupon ignored"},
		{"capped", 100, 10, "STAFF", 30, 700, "discount capped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := r.Quote(c.unit, c.qty, c.coupon)
			if q.DiscountPct != c.wantPct || q.TotalCents != c.wantTotal {
				t.Fatalf("got %+v, want pct %d total %d", q, c.wantPct, c.wantTotal)
			}
			if c.wantNoteIn != "" && !contains(q.Note, c.wantNoteIn) {
				t.Fatalf("note %q lacks %q", q.Note, c.wantNoteIn)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
