package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Tests run without -cover here (go test -race), so the server must answer
// with identity headers and a clear "not built with -cover" error.
func TestIdentityHeadersOnHead(t *testing.T) {
	rec := httptest.NewRecorder()
	_covHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/anything", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("HEAD status %d", rec.Code)
	}
	if rec.Header().Get("X-Art-Coverage-Server") != "1" || rec.Header().Get("X-Art-Coverage-Pid") == "" {
		t.Fatalf("identity headers missing: %v", rec.Header())
	}
}

func TestHealth(t *testing.T) {
	rec := httptest.NewRecorder()
	_covHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "healthy") {
		t.Fatalf("health: %d %q", rec.Code, rec.Body.String())
	}
}

func TestNotBuiltWithCover(t *testing.T) {
	rec := httptest.NewRecorder()
	_covHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/coverage", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "not built with -cover") {
		t.Fatalf("want 500 not built with -cover, got %d %q", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("X-Art-Coverage-Server") != "1" {
		t.Fatalf("identity headers missing on error")
	}
}

func TestTokenRequired(t *testing.T) {
	t.Setenv("COVERAGE_TOKEN", "s3cret")
	rec := httptest.NewRecorder()
	_covHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/coverage", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("want 401 without token, got %d", rec.Code)
	}
}

func TestWork(t *testing.T) {
	c := work(15)
	if c["fizzbuzz"] != 1 || c["fizz"] != 4 || c["buzz"] != 2 || c["number"] != 8 {
		t.Fatalf("work(15) = %v", c)
	}
}
