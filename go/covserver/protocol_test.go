//go:build go1.20

package main

// The compact binary answer, POST /coverage as go-coverage-http's and
// coverport's clients send it, cross-site refusals, and the memory bound
// under many concurrent scrapes.

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawClient leaves Content-Encoding to the test.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}

// fetchBinary asks for the compact form and writes the files it holds into
// dir; it returns the answer's headers and its size on the wire.
func fetchBinary(t *testing.T, url string, gz bool, dir string) (http.Header, int) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "application/vnd.covfleet.coverage, application/json;q=0.5")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	wire, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, wire)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.covfleet.coverage" {
		t.Fatalf("Content-Type %q, want the binary type", ct)
	}
	if resp.ContentLength != int64(len(wire)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(wire))
	}
	body := wire
	if gz {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	} else if resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("not asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	ml, err1 := strconv.Atoi(resp.Header.Get("X-Covfleet-Meta-Length"))
	cl, err2 := strconv.Atoi(resp.Header.Get("X-Covfleet-Counters-Length"))
	if err1 != nil || err2 != nil || ml+cl != len(body) {
		t.Fatalf("lengths %q + %q, body %d bytes", resp.Header.Get("X-Covfleet-Meta-Length"), resp.Header.Get("X-Covfleet-Counters-Length"), len(body))
	}
	meta, counters := body[:ml], body[ml:]
	cname := resp.Header.Get("X-Covfleet-Counters-Name")
	hash := hex.EncodeToString(counters[8:24])
	if !strings.HasPrefix(cname, "covcounters."+hash+".") || !strings.HasSuffix(cname, "."+resp.Header.Get("X-Covfleet-Timestamp")) {
		t.Errorf("counters name %q, hash in data %s", cname, hash)
	}
	if mname := resp.Header.Get("X-Covfleet-Meta-Name"); ml > 0 {
		if mname != "covmeta."+hash || hex.EncodeToString(meta[24:40]) != hash {
			t.Errorf("meta name %q, hash in data %s", mname, hex.EncodeToString(meta[24:40]))
		}
		if err := os.WriteFile(filepath.Join(dir, mname), meta, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if mname != "" {
		t.Errorf("no meta data but meta name %q", mname)
	}
	if err := os.WriteFile(filepath.Join(dir, cname), counters, 0o644); err != nil {
		t.Fatal(err)
	}
	return resp.Header, len(wire)
}

func TestBinaryFormIsNegotiated(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	p.work(t, 30)

	viaJSON := t.TempDir()
	save(t, viaJSON, scrape(t, p.base+"/coverage"))
	want := textfmt(t, viaJSON)
	for _, gz := range []bool{true, false} {
		dir := t.TempDir()
		fetchBinary(t, p.base+"/coverage", gz, dir)
		if got := textfmt(t, dir); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("gzip=%v: binary form differs from JSON:\n%s\nvs\n%s", gz, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// Counters only, written next to the meta file of the first answer.
		only := t.TempDir()
		hdr, _ := fetchBinary(t, p.base+"/coverage?nometa=1", gz, only)
		if hdr.Get("X-Covfleet-Meta-Length") != "0" {
			t.Errorf("nometa=1: meta length %q", hdr.Get("X-Covfleet-Meta-Length"))
		}
	}
	// JSON stays the default, also for wildcards.
	for _, accept := range []string{"", "*/*", "application/json", "application/vnd.covfleet.coverage;q=0"} {
		resp, body := do(t, "GET", p.base+"/coverage?nometa=1", map[string]string{"Accept": accept})
		var pl payload
		if resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &pl) != nil || pl.CountersFilename == "" {
			t.Errorf("Accept %q: Content-Type %q, body %.80q", accept, resp.Header.Get("Content-Type"), body)
		}
	}
}

func TestPostLikeGoCoverageHTTPClient(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	p.work(t, 15)

	// What go-coverage-http's (and coverport's Go) client does, step by step:
	// POST a JSON body {"test_name": ...} with Go's default transport
	// (transparent gzip), decode the JSON, base64-decode both files and
	// write them under their names into <output>/<test name>.
	type coverageResponse struct {
		MetaFilename     string `json:"meta_filename"`
		MetaData         string `json:"meta_data"`
		CountersFilename string `json:"counters_filename"`
		CountersData     string `json:"counters_data"`
		TestName         string `json:"test_name"`
		Timestamp        int64  `json:"timestamp"`
	}
	testName := `e2e "quoted" \ test`
	reqBody, err := json.Marshal(map[string]string{"test_name": testName})
	if err != nil {
		t.Fatal(err)
	}
	httpClient := &http.Client{Timeout: 30 * time.Second}
	resp, err := httpClient.Post(p.base+"/coverage", "application/json", bytes.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("coverage endpoint returned %d: %s", resp.StatusCode, body)
	}
	var covResp coverageResponse
	if err := json.NewDecoder(resp.Body).Decode(&covResp); err != nil {
		t.Fatalf("decode coverage response: %v", err)
	}
	if covResp.TestName != testName {
		t.Errorf("test_name %q, want %q echoed", covResp.TestName, testName)
	}
	testDir := filepath.Join(t.TempDir(), "out", "e2e")
	if err := os.MkdirAll(testDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, data string }{{covResp.MetaFilename, covResp.MetaData}, {covResp.CountersFilename, covResp.CountersData}} {
		raw, err := base64.StdEncoding.DecodeString(f.data)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(testDir, f.name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Their report step: go tool covdata textfmt over that directory.
	covered := coveredLines(t, testDir)
	if covered == 0 {
		t.Error("no covered line in main.go after work")
	}

	// coverport's newer client: GET /coverage?name=<test>.
	got := scrape(t, p.base+"/coverage?name=smoke")
	var raw map[string]interface{}
	_, body := do(t, "GET", p.base+"/coverage?name=smoke", nil)
	if err := json.Unmarshal([]byte(body), &raw); err != nil || raw["test_name"] != "smoke" || got.CountersFilename == "" {
		t.Errorf("GET ?name=smoke: test_name %v (%v)", raw["test_name"], err)
	}
	// Without a name there is no test_name field, as before.
	_, body = do(t, "GET", p.base+"/coverage?nometa=1", nil)
	if strings.Contains(body, "test_name") {
		t.Errorf("test_name sent although not asked: %.100s", body)
	}
}

func TestCrossSitePostsAreRefused(t *testing.T) {
	ts := newTestServer(t, nil)
	post := func(path, body string, hdr map[string]string) int {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/coverage/reset", "/coverage"} {
		refused := []map[string]string{
			nil, // what a <form> or fetch(..., {mode: "no-cors"}) can send
			{"Content-Type": "text/plain"},
			{"Content-Type": "application/x-www-form-urlencoded"},
			{"Content-Type": "multipart/form-data; boundary=x"},
			{"Content-Type": "text/plain; charset=application/json"},
			{"X-Coverage-Client": "covfleet", "Origin": "https://evil.example"},
			{"Content-Type": "application/json", "Origin": "null"},
			{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
		}
		for _, hdr := range refused {
			if code := post(path, `{"test_name":"x"}`, hdr); code != 403 {
				t.Errorf("POST %s with %v: %d, want 403", path, hdr, code)
			}
		}
		accepted := []map[string]string{
			{"X-Coverage-Client": "covfleet"},
			{"Content-Type": "application/json"},
			{"Content-Type": "Application/JSON; charset=utf-8"},
		}
		for _, hdr := range accepted {
			// This test binary is not built with -cover: past the check, both
			// endpoints answer 500 "coverage unavailable".
			if code := post(path, `{"test_name":"x"}`, hdr); code == 403 {
				t.Errorf("POST %s with %v: refused", path, hdr)
			}
		}
	}
	if code := post("/coverage", `{"test_name":`, map[string]string{"Content-Type": "application/json"}); code != 400 {
		t.Errorf("truncated JSON body: %d, want 400", code)
	}
}

func TestRefusedResetKeepsCounters(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	p.work(t, 15)
	// A web page's form post, and a fetch carrying its Origin.
	for _, hdr := range []map[string]string{
		{"Content-Type": "application/x-www-form-urlencoded"},
		{"X-Coverage-Client": "x", "Origin": "http://attacker.example"},
	} {
		if resp, body := do(t, "POST", p.base+"/coverage/reset", hdr); resp.StatusCode != 403 {
			t.Errorf("reset with %v: %d %s", hdr, resp.StatusCode, body)
		}
	}
	dir := t.TempDir()
	save(t, dir, scrape(t, p.base+"/coverage"))
	nonzero := coveredLines(t, dir)
	if nonzero == 0 {
		t.Error("a refused reset zeroed the counters")
	}
}

// bigDemoBinary is the demo built with -coverpkg=all: about 200 packages
// and 0.8 MB of meta-data, the size of a large operator's.
func bigDemoBinary(t *testing.T) string {
	return demoBinary(t, "-cover", "-covermode=atomic", "-coverpkg=all")
}

// vm reads a VmRSS-style field of /proc/PID/status in KiB.
func vm(t *testing.T, pid int, field string) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, field+":") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func TestMemoryBoundedUnderConcurrentScrapes(t *testing.T) {
	bin := bigDemoBinary(t)
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	p.work(t, 10)
	// One scrape first: the buffers every later answer reuses.
	if meta := scrape(t, p.base+"/coverage"); len(meta.MetaData) < 500_000 {
		t.Fatalf("meta-data is only %d base64 bytes: not the large program this test needs", len(meta.MetaData))
	}
	pid := p.cmd.Process.Pid
	before := vm(t, pid, "VmHWM")

	const n = 200
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	startGate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", p.base+"/coverage", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			if i%2 == 1 {
				req.Header.Set("Accept", "application/vnd.covfleet.coverage")
			}
			<-startGate
			resp, err := client.Do(req)
			ok := err == nil && resp.StatusCode == 200
			if err == nil {
				n, _ := io.Copy(io.Discard, resp.Body)
				ok = ok && n > 100_000
				resp.Body.Close()
			}
			if !ok {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}(i)
	}
	close(startGate)
	wg.Wait()
	if failed != 0 {
		t.Fatalf("%d of %d scrapes failed", failed, n)
	}
	after := vm(t, pid, "VmHWM")
	growth := after - before
	t.Logf("host peak RSS %d KiB -> %d KiB (+%d KiB) over %d concurrent gzip scrapes", before, after, growth, n)
	// Unbounded, this took the program from 11 MB to 510 MB. Two slots of
	// about 3 MB each, plus 200 connections and the garbage collector's slack.
	if growth > 64<<10 {
		t.Errorf("peak RSS grew by %d KiB under %d concurrent scrapes, want at most 64 MiB", growth, n)
	}
	p.work(t, 3) // the program still works
}
