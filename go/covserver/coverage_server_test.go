//go:build go1.20

package main

// Two kinds of tests: in-process handler tests (this test binary is not
// built with -cover unless asked), and tests that build a real demo program
// with the server file, run it and scrape it over TCP.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------- in-process

func TestAcceptsGzip(t *testing.T) {
	cases := map[string]bool{
		"":                         false,
		"gzip":                     true,
		"deflate, gzip;q=0.5":      true,
		"gzip;q=0":                 false,
		"GZIP":                     true,
		"br":                       false,
		"*":                        true,
		"*;q=0":                    false,
		"gzip;q=0, *":              false,
		"identity, x-gzip ; q=1.0": true,
	}
	for in, want := range cases {
		if got := _covAcceptsGzip(in); got != want {
			t.Errorf("_covAcceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}

func newTestServer(t *testing.T, env map[string]string) *httptest.Server {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	ts := httptest.NewServer(_covNewServer())
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// resetHdr is what covfleet's own client sends with POST /coverage/reset.
var resetHdr = map[string]string{"X-Coverage-Client": "covfleet"}

func TestIdentityHeadersOnEveryResponse(t *testing.T) {
	ts := newTestServer(t, map[string]string{
		"SOURCE_GIT_COMMIT": "abc123",
		"SOURCE_GIT_URL":    "https://example.invalid/repo",
		"SOFTWARE_GROUP":    "",
		"__doozer_group":    "grp-fallback",
		"SOFTWARE_KEY":      "key1",
		"__doozer_key":      "ignored",
	})
	want := map[string]string{
		"X-Art-Coverage-Server":         "1",
		"X-Art-Coverage-Pid":            strconv.Itoa(os.Getpid()),
		"X-Art-Coverage-Source-Commit":  "abc123",
		"X-Art-Coverage-Source-Url":     "https://example.invalid/repo",
		"X-Art-Coverage-Software-Group": "grp-fallback",
		"X-Art-Coverage-Software-Key":   "key1",
	}
	exe, _ := os.Executable()
	want["X-Art-Coverage-Binary"] = filepath.Base(exe)
	for _, c := range []struct{ method, path string }{
		{"HEAD", "/"}, {"HEAD", "/anything/at/all"}, {"HEAD", "/coverage"},
		{"GET", "/health"}, {"GET", "/nope"}, {"POST", "/coverage"}, {"GET", "/coverage"},
	} {
		resp, _ := do(t, c.method, ts.URL+c.path, nil)
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %s: header %s = %q, want %q", c.method, c.path, k, got, v)
			}
		}
		if c.method == "HEAD" && resp.StatusCode != 200 {
			t.Errorf("HEAD %s: status %d, want 200", c.path, resp.StatusCode)
		}
	}
}

func TestEmptyEnvHeadersAreOmitted(t *testing.T) {
	ts := newTestServer(t, map[string]string{
		"SOURCE_GIT_COMMIT": "", "SOURCE_GIT_URL": "", "SOFTWARE_GROUP": "", "__doozer_group": "",
		"SOFTWARE_KEY": "", "__doozer_key": "",
	})
	resp, _ := do(t, "HEAD", ts.URL+"/", nil)
	for _, k := range []string{"X-Art-Coverage-Source-Commit", "X-Art-Coverage-Source-Url",
		"X-Art-Coverage-Software-Group", "X-Art-Coverage-Software-Key"} {
		if _, ok := resp.Header[k]; ok {
			t.Errorf("header %s sent although its variable is empty", k)
		}
	}
}

func TestRoutesAndMethods(t *testing.T) {
	ts := newTestServer(t, nil)
	cases := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/health", 200, "coverage server healthy"},
		{"POST", "/health", 405, "method not allowed"},
		{"POST", "/coverage", 403, "cross-site protection"},
		{"PUT", "/coverage", 405, "method not allowed"},
		{"GET", "/coverage/reset", 405, "method not allowed"},
		{"GET", "/", 404, "not found"},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, ts.URL+c.path, nil)
		if resp.StatusCode != c.status || !strings.Contains(body, c.body) {
			t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.path, resp.StatusCode, body, c.status, c.body)
		}
	}
}

func TestNotBuiltWithCoverAnswersClearly(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("this test binary is built with -cover")
	}
	ts := newTestServer(t, nil)
	for _, c := range []struct{ method, path string }{{"GET", "/coverage"}, {"GET", "/coverage?nometa=1"}, {"POST", "/coverage/reset"}} {
		resp, body := do(t, c.method, ts.URL+c.path, resetHdr)
		// This is a test binary: the answer also says why a test binary
		// built with -cover could not answer either.
		if resp.StatusCode != 500 || !strings.HasPrefix(body, "coverage unavailable: ") || !strings.Contains(body, "not built with -cover") {
			t.Errorf("%s %s: %d %q", c.method, c.path, resp.StatusCode, body)
		}
	}
}

func TestTokenProtectsDataEndpointsOnly(t *testing.T) {
	ts := newTestServer(t, map[string]string{"COVERAGE_TOKEN": "s3cret"})
	for _, path := range []string{"/coverage", "/coverage?nometa=1"} {
		for _, auth := range []string{"", "Bearer wrong", "s3cret", "Bearer s3cret2"} {
			resp, _ := do(t, "GET", ts.URL+path, map[string]string{"Authorization": auth})
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s with %q: status %d, want 401 with WWW-Authenticate", path, auth, resp.StatusCode)
			}
		}
		resp, _ := do(t, "GET", ts.URL+path, map[string]string{"Authorization": "Bearer s3cret"})
		if resp.StatusCode == 401 {
			t.Errorf("GET %s with the right token: 401", path)
		}
	}
	resp, _ := do(t, "POST", ts.URL+"/coverage/reset", resetHdr)
	if resp.StatusCode != 401 {
		t.Errorf("POST /coverage/reset without token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", ts.URL+"/health", nil); resp.StatusCode != 200 {
		t.Errorf("/health must stay open: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "HEAD", ts.URL+"/coverage", nil); resp.StatusCode != 200 || resp.Header.Get("X-Art-Coverage-Server") != "1" {
		t.Errorf("HEAD must stay open for discovery: %d", resp.StatusCode)
	}
}

func TestConcurrentRequestsInProcess(t *testing.T) {
	ts := newTestServer(t, nil)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			paths := []string{"/coverage", "/coverage?nometa=1", "/health"}
			for j := 0; j < 10; j++ {
				resp, err := http.Get(ts.URL + paths[(i+j)%3])
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}(i)
	}
	wg.Wait()
}

// ---------------------------------------------------------------- real processes

const demoMain = `package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

// Names a careless injected file would collide with.
var log = "host log"
var http = 1
var json, coverage, strings, sync = 1, 2, 3, 4

func min(a, b int) int { return a }
func max(a, b int) int { return b }
func copy()             {}
func print()            {}
func close()            {}

func classify(n int) string {
	if n%15 == 0 {
		return "fizzbuzz"
	}
	if n%5 == 0 {
		return "buzz"
	}
	if n%3 == 0 {
		return "fizz"
	}
	return strconv.Itoa(n)
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, _ := strconv.Atoi(in.Text())
		out := ""
		for i := 1; i <= n; i++ {
			out = classify(i)
		}
		fmt.Println("ok", out)
	}
}
`

var (
	buildOnce sync.Map // build flags -> *builtDemo
)

type builtDemo struct {
	once sync.Once
	path string
	err  error
}

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go toolchain found on PATH or in GOROOT: %v", err)
	}
	return p
}

// demoBinary builds the demo program plus coverage_server.go with the given
// build flags, once per flag set per test run.
func demoBinary(t *testing.T, flags ...string) string {
	t.Helper()
	return buildGo(t, map[string]string{"main.go": demoMain}, append([]string{"build"}, flags...)...)
}

// buildGo writes files (plus go.mod, the server as
// zz_covfleet_coverage_server.go and its companion, inert without
// -tags covfleet_testbinary, as zz_covfleet_coverage_testbinary.go) into a fresh module and runs
// `go ARGS -o BIN .` there, once per (files, args) per test run.
func buildGo(t *testing.T, files map[string]string, args ...string) string {
	t.Helper()
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	key := strings.Join(args, " ")
	for _, name := range names {
		key += "\x00" + name + "\x00" + files[name]
	}
	v, _ := buildOnce.LoadOrStore(key, &builtDemo{})
	b := v.(*builtDemo)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "covserver-demo-")
		if err != nil {
			b.err = err
			return
		}
		server, err := os.ReadFile("coverage_server.go")
		if err != nil {
			b.err = err
			return
		}
		companion, err := os.ReadFile("coverage_testbinary.go")
		if err != nil {
			b.err = err
			return
		}
		all := map[string]string{
			"go.mod":                             "module example.com/demo\n\ngo 1.16\n",
			"zz_covfleet_coverage_server.go":     string(server),
			"zz_covfleet_coverage_testbinary.go": string(companion),
		}
		for name, content := range files {
			all[name] = content
		}
		for name, content := range all {
			if b.err = os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); b.err != nil {
				return
			}
		}
		b.path = filepath.Join(dir, "demo")
		full := append(append([]string{}, args...), "-o", b.path, ".")
		cmd := exec.Command(goTool(t), full...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(full, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncBuffer
	base   string // http://127.0.0.1:PORT
	port   int
	covDir string
}

// syncBuffer is a bytes.Buffer that a process can write while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// probeClient gives up quickly: a port may belong to a listener that never answers.
var probeClient = &http.Client{Timeout: 2 * time.Second}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs bin with env and waits until a coverage server answers on port.
func start(t *testing.T, bin string, port int, env ...string) *proc {
	t.Helper()
	return startArgs(t, bin, nil, port, env...)
}

// startArgs is start with command-line arguments for the program.
func startArgs(t *testing.T, bin string, args []string, port int, env ...string) *proc {
	t.Helper()
	p := &proc{covDir: t.TempDir(), stderr: &syncBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), append([]string{"GOCOVERDIR=" + p.covDir}, env...)...)
	p.cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdout = bufio.NewReader(out)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stdin.Close()
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	// The server moves on to the next port when one is taken (possibly by
	// another test's process since freePort checked it): look at a few.
	deadline := time.Now().Add(30 * time.Second)
	for {
		for q := port; q < port+5; q++ {
			base := fmt.Sprintf("http://127.0.0.1:%d", q)
			resp, err := probeClient.Head(base + "/")
			if err == nil {
				resp.Body.Close()
				if resp.Header.Get("X-Art-Coverage-Pid") == strconv.Itoa(p.cmd.Process.Pid) {
					p.base, p.port = base, q
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no coverage server of pid %d on ports %d..%d; stderr: %s", p.cmd.Process.Pid, port, port+4, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) work(t *testing.T, n int) {
	t.Helper()
	fmt.Fprintf(p.stdin, "%d\n", n)
	line, err := p.stdout.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok ") {
		t.Fatalf("demo answered %q, %v", line, err)
	}
}

// exit closes stdin and waits; the demo then returns from main.
func (p *proc) exit(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("demo exited with %v; stderr:\n%s", err, p.stderr)
	}
}

type payload struct {
	MetaFilename     string `json:"meta_filename"`
	MetaData         string `json:"meta_data"`
	CountersFilename string `json:"counters_filename"`
	CountersData     string `json:"counters_data"`
	Timestamp        int64  `json:"timestamp"`
}

func scrape(t *testing.T, url string) payload {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET %s: bad JSON %v: %.200s", url, err, body)
	}
	return p
}

// save writes the payload's files into dir (meta only when present).
func save(t *testing.T, dir string, p payload) {
	t.Helper()
	for _, f := range []struct{ name, data string }{{p.MetaFilename, p.MetaData}, {p.CountersFilename, p.CountersData}} {
		if f.name == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(f.data)
		if err != nil {
			t.Fatalf("%s: bad base64: %v", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// textfmt runs `go tool covdata textfmt` over dir and returns the lines for
// the demo's own main.go, sorted.
func textfmt(t *testing.T, dir string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "profile.txt")
	cmd := exec.Command(goTool(t), "tool", "covdata", "textfmt", "-i", dir, "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go tool covdata textfmt -i %s: %v\n%s", dir, err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "example.com/demo/main.go:") {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		t.Fatalf("textfmt of %s has no main.go lines:\n%s", dir, raw)
	}
	return lines
}

// coveredLines counts main.go's blocks with a non-zero count in dir.
func coveredLines(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, l := range textfmt(t, dir) {
		if countOf(l) > 0 {
			n++
		}
	}
	return n
}

func countOf(line string) int {
	n, _ := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
	return n
}

func TestLiveScrapeMatchesGOCOVERDIR(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))

	// The very first request asks for counters only: the seed server named
	// them "covcounters.unknown..." at this point.
	first := scrape(t, p.base+"/coverage?nometa=1")
	if first.MetaFilename != "" || first.MetaData != "" {
		t.Errorf("nometa=1 still sent meta: %q", first.MetaFilename)
	}
	p.work(t, 30)
	p.work(t, 7)
	full := scrape(t, p.base+"/coverage")
	hash := strings.TrimPrefix(full.MetaFilename, "covmeta.")
	if len(hash) != 32 {
		t.Fatalf("meta_filename %q", full.MetaFilename)
	}
	prefix := fmt.Sprintf("covcounters.%s.%d.", hash, p.cmd.Process.Pid)
	for _, c := range []payload{first, full} {
		if !strings.HasPrefix(c.CountersFilename, prefix) || !strings.HasSuffix(c.CountersFilename, "."+strconv.FormatInt(c.Timestamp, 10)) {
			t.Errorf("counters_filename %q, want %s<timestamp %d>", c.CountersFilename, prefix, c.Timestamp)
		}
	}
	live := t.TempDir()
	save(t, live, full)
	p.exit(t)

	// Go's own exit-time files: same meta file name, same counts for main.go.
	entries, _ := os.ReadDir(p.covDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !contains(names, full.MetaFilename) {
		t.Errorf("GOCOVERDIR holds %v, no %s", names, full.MetaFilename)
	}
	got, want := textfmt(t, live), textfmt(t, p.covDir)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("live scrape differs from GOCOVERDIR:\nlive:\n%s\nexit:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	covered := 0
	for _, l := range got {
		if countOf(l) > 0 {
			covered++
		}
	}
	if covered == 0 {
		t.Errorf("no covered block in main.go after work")
	}
	if p.stderr.Len() != 0 {
		t.Errorf("server not silent by default; stderr:\n%s", p.stderr)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestResetZeroesCounters(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	p.work(t, 15)
	before := t.TempDir()
	save(t, before, scrape(t, p.base+"/coverage"))
	nonzero := coveredLines(t, before)
	if nonzero == 0 {
		t.Fatal("no counts before reset")
	}
	if resp, body := do(t, "GET", p.base+"/coverage/reset", nil); resp.StatusCode != 405 {
		t.Errorf("GET reset: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", p.base+"/coverage/reset", resetHdr); resp.StatusCode != 200 {
		t.Fatalf("POST reset: %d %s", resp.StatusCode, body)
	}
	after := t.TempDir()
	save(t, after, scrape(t, p.base+"/coverage"))
	for _, l := range textfmt(t, after) {
		if countOf(l) != 0 {
			t.Errorf("after reset: %s", l)
		}
	}
	p.work(t, 5)
	again := t.TempDir()
	save(t, again, scrape(t, p.base+"/coverage"))
	nonzero = coveredLines(t, again)
	if nonzero == 0 {
		t.Error("counting did not resume after reset")
	}
}

func TestResetRefusedOutsideAtomicMode(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=set")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	resp, body := do(t, "POST", p.base+"/coverage/reset", resetHdr)
	if resp.StatusCode != 409 || !strings.Contains(body, "atomic") {
		t.Errorf("reset in set mode: %d %q, want 409 mentioning atomic", resp.StatusCode, body)
	}
	// runtime/coverage cannot read live counters outside atomic mode.
	resp, body = do(t, "GET", p.base+"/coverage", nil)
	if resp.StatusCode != 500 || !strings.HasPrefix(body, "coverage unavailable: ") || !strings.Contains(body, "atomic") {
		t.Errorf("GET /coverage in set mode: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", p.base+"/health", nil); resp.StatusCode != 200 {
		t.Errorf("/health: %d", resp.StatusCode)
	}
}

func TestGzipWhenAccepted(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, ae := range []string{"gzip", ""} {
		req, _ := http.NewRequest("GET", p.base+"/coverage", nil)
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = resp.Body
		if ae == "gzip" {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Accept-Encoding gzip: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			if r, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		} else if resp.Header.Get("Content-Encoding") != "" || resp.ContentLength <= 0 {
			t.Errorf("plain: Content-Encoding %q, Content-Length %d", resp.Header.Get("Content-Encoding"), resp.ContentLength)
		}
		var pl payload
		if err := json.NewDecoder(r).Decode(&pl); err != nil || pl.MetaFilename == "" {
			t.Errorf("Accept-Encoding %q: %v %q", ae, err, pl.MetaFilename)
		}
		resp.Body.Close()
	}
}

// The demo is built with -race: concurrent scrapes, resets and work must
// produce no data race report and all answers must be consistent.
func TestConcurrentScrapesUnderRace(t *testing.T) {
	bin := demoBinary(t, "-race", "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	var wg sync.WaitGroup
	var mu sync.Mutex
	names := map[string]bool{}
	errs := 0
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 8; j++ {
				url := p.base + "/coverage"
				if (i+j)%2 == 0 {
					url += "?nometa=1"
				}
				if i == 0 && j%3 == 0 {
					req, _ := http.NewRequest("POST", p.base+"/coverage/reset", nil)
					req.Header.Set("X-Coverage-Client", "test")
					if resp, err := http.DefaultClient.Do(req); err == nil {
						resp.Body.Close()
					}
				}
				resp, err := http.Get(url)
				if err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
					continue
				}
				var pl payload
				err = json.NewDecoder(resp.Body).Decode(&pl)
				resp.Body.Close()
				mu.Lock()
				if err != nil || resp.StatusCode != 200 {
					errs++
				} else {
					names[strings.Join(strings.SplitN(pl.CountersFilename, ".", 3)[:2], ".")] = true
				}
				mu.Unlock()
			}
		}(i)
	}
	for k := 0; k < 20; k++ {
		p.work(t, 10)
	}
	wg.Wait()
	if errs != 0 {
		t.Errorf("%d failed requests", errs)
	}
	if len(names) != 1 || names["covcounters.unknown"] {
		t.Errorf("counter names used %v, want exactly one real hash", names)
	}
	p.exit(t)
	if strings.Contains(p.stderr.String(), "DATA RACE") {
		t.Errorf("race detected:\n%s", p.stderr)
	}
}

func TestNotBuiltWithCoverProgramRunsNormally(t *testing.T) {
	bin := demoBinary(t)
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	resp, body := do(t, "GET", p.base+"/coverage", nil)
	if resp.StatusCode != 500 || !strings.Contains(body, "not built with -cover") {
		t.Errorf("GET /coverage: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", p.base+"/health", nil); resp.StatusCode != 200 {
		t.Errorf("/health: %d", resp.StatusCode)
	}
	p.work(t, 15)
	p.exit(t)
	if p.stderr.Len() != 0 {
		t.Errorf("stderr not empty:\n%s", p.stderr)
	}
}

func TestPortFallbackAndDebugLog(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	// Find a port P with P+1 free too, and hold P.
	var held net.Listener
	var port int
	for tries := 0; tries < 50 && held == nil; tries++ {
		p := freePort(t)
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue
		}
		if probe, err := net.Listen("tcp", fmt.Sprintf(":%d", p+1)); err == nil {
			probe.Close()
			held, port = ln, p
		} else {
			ln.Close()
		}
	}
	if held == nil {
		t.Fatal("no pair of free ports")
	}
	defer held.Close()
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port), "COVERAGE_DEBUG=1")
	if p.port != port+1 {
		t.Errorf("port %d was taken: server on %d, want %d", port, p.port, port+1)
	}
	scrape(t, p.base+"/coverage")
	p.exit(t)
	if !strings.Contains(p.stderr.String(), "[covfleet-coverage]") || !strings.Contains(p.stderr.String(), "GET /coverage") {
		t.Errorf("COVERAGE_DEBUG=1 logged nothing useful:\n%s", p.stderr)
	}
}

func TestBindAndToken(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port), "COVERAGE_BIND=127.0.0.1", "COVERAGE_TOKEN=tok")
	if resp, _ := do(t, "GET", p.base+"/coverage", nil); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", p.base+"/coverage", map[string]string{"Authorization": "Bearer tok"}); resp.StatusCode != 200 {
		t.Errorf("token: %d", resp.StatusCode)
	}
	// Bound to 127.0.0.1 only: the IPv6 loopback must not answer.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("[::1]:%d", p.port), time.Second); err == nil {
		c.Close()
		t.Errorf("COVERAGE_BIND=127.0.0.1 but [::1]:%d accepted a connection", p.port)
	}
}

func TestDisabled(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "COVERAGE_PORT="+strconv.Itoa(port), "COVERAGE_DISABLE=1", "GOCOVERDIR="+t.TempDir())
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	out := &bytes.Buffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("COVERAGE_DISABLE=1 but port %d answers", port)
	}
	pw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestNotStartedInGoTestBinariesUnlessAsked(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	for _, asked := range []bool{false, true} {
		port := freePort(t)
		env := []string{"COVERAGE_PORT=" + strconv.Itoa(port)}
		if asked {
			env = append(env, "COVERAGE_IN_TESTS=1")
		}
		cmd := exec.Command(bin, "-test.paniconexit0", "-test.timeout=10m0s")
		cmd.Env = append(os.Environ(), append(env, "GOCOVERDIR="+t.TempDir())...)
		pr, pw := io.Pipe()
		cmd.Stdin = pr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		up := false
		for i := 0; i < 50 && !up; i++ {
			if resp, err := http.Head(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
				resp.Body.Close()
				up = resp.Header.Get("X-Art-Coverage-Pid") == strconv.Itoa(cmd.Process.Pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
		pw.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if up != asked {
			t.Errorf("with -test.* args and COVERAGE_IN_TESTS=%v: server up = %v", asked, up)
		}
	}
}
