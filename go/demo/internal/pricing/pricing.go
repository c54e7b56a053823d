// Package pricing computes quotes: volume discounts and coupons.
package pricing

import "strings"

// Rules are the pricing knobs.
type Rules struct {
	// VolumeThreshold and VolumePercent: buying at least this many gives this discount.
	VolumeThreshold int
	VolumePercent   int
	// Coupons maps a code to a percentage off.
	Coupons map[string]int
	// MaxPercent caps the total discount.
	MaxPercent int
}

// Quote is a computed price.
type Quote struct {
	Quantity      int    `json:"quantity"`
	SubtotalCents int    `json:"subtotal_cents"`
	DiscountPct   int    `json:"discount_pct"`
	TotalCents    int    `json:"total_cents"`
	Note          string `json:"note,omitempty"`
}

// DefaultRules are the demo's rules.
func DefaultRules() Rules {
	return Rules{
		VolumeThreshold: 10,
		VolumePercent:   5,
		Coupons:         map[string]int{"GOPHER": 10, "STAFF": 30},
		MaxPercent:      30,
	}
}

// Quote prices qty units at unitCents with an optional coupon.
func (r Rules) Quote(unitCents, qty int, coupon string) Quote {
	q := Quote{Quantity: qty, SubtotalCents: unitCents * qty}
	if qty >= r.VolumeThreshold {
		q.DiscountPct += r.VolumePercent
		q.Note = "volume discount"
	}
	if coupon != "" {
		pct, ok := r.Coupons[strings.ToUpper(coupon)]
		if ok {
			q.DiscountPct += pct
			q.Note = joinNote(q.Note, "coupon "+strings.ToUpper(coupon))
		} else {
			q.Note = joinNote(q.Note, "unknown coupon ignored")
		}
	}
	if q.DiscountPct > r.MaxPercent {
		q.DiscountPct = r.MaxPercent
		q.Note = joinNote(q.Note, "discount capped")
	}
	q.TotalCents = q.SubtotalCents * (100 - q.DiscountPct) / 100
	return q
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
