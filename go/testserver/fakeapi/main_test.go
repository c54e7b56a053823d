package main

import "testing"

func TestMatches(t *testing.T) {
	l := map[string]string{"app": "web", "tier": "front"}
	for sel, want := range map[string]bool{
		"": true, "app=web": true, "app==web": true, "app=db": false,
		"app=web,tier!=front": false, "tier": true, "zone": false,
	} {
		if got := matches(sel, l); got != want {
			t.Errorf("matches(%q) = %v, want %v", sel, got, want)
		}
	}
}
