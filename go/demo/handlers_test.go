package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"example.com/covfleet/demo/internal/inventory"
	"example.com/covfleet/demo/internal/pricing"
)

func TestHandlers(t *testing.T) {
	srv := httptest.NewServer(newMux(inventory.NewStore(), pricing.DefaultRules()))
	defer srv.Close()
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/items", "", 200},
		{"GET", "/items/1", "", 200},
		{"GET", "/items/99", "", 404},
		{"GET", "/items/x", "", 400},
		{"POST", "/items", `{"name":"x","price_cents":1}`, 201},
		{"POST", "/items", `{`, 400},
		{"POST", "/items", `{"name":""}`, 422},
		{"GET", "/quote?id=1&qty=12&coupon=gopher", "", 200},
		{"GET", "/quote?id=x", "", 400},
		{"DELETE", "/items/2", "", 204},
		{"POST", "/admin/reset", "", 204},
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}
