//go:build go1.20 && linux

package main

// A web page on another site tries to reset the counters through the user's
// browser (headless Chromium, when installed): every way a page can POST
// without a CORS preflight reaches the server and is refused, the ways that
// need a preflight never get past it, and the counters stay.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const attackPage = `<!doctype html><html><body><script>
const u = "%s/coverage/reset";
const tries = [
  fetch(u, {method: "POST", mode: "no-cors"}),
  fetch(u, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"}),
  fetch(u, {method: "POST", mode: "no-cors", headers: {"X-Coverage-Client": "page"}}),
  fetch(u, {method: "POST", headers: {"X-Coverage-Client": "page"}}),
  fetch(u, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}),
];
Promise.allSettled(tries).then(() => fetch("/done")).then(() => {
  const f = document.createElement("form");
  f.method = "POST";
  f.action = u;
  document.body.appendChild(f);
  f.submit();
});
</script></body></html>`

func TestWebPageCannotReset(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium on PATH (scripts/test.sh setup installs it)")
	}
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port), "COVERAGE_BIND=127.0.0.1", "COVERAGE_DEBUG=1")
	p.work(t, 15)
	if coveredLines(t, scrapeDir(t, p)) == 0 {
		t.Fatal("no counts to protect")
	}

	// The attacker's site: localhost, another port (another site than
	// 127.0.0.1 for the browser).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, attackPage, p.base)
	})
	mux.HandleFunc("/done", func(w http.ResponseWriter, r *http.Request) {
		select {
		case done <- struct{}{}:
		default:
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	page := fmt.Sprintf("http://localhost:%d/", ln.Addr().(*net.TCPAddr).Port)

	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after they are killed, and a failed removal
	// would fail the test.
	profile, err := os.MkdirTemp("", "covserver-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+profile, page)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	// Its own process group, so that the browser goes with all its helpers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the page did not run its requests within 60 s")
	}
	// The fetches without a preflight and the form post reach the server and
	// are refused (COVERAGE_DEBUG=1 logs each refusal).
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.stderr.String(), "refused cross-site POST /coverage/reset") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("expected 4 refused requests (3 no-cors fetches, 1 form post); server log:\n%s", p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(p.stderr.String(), "counters reset") {
		t.Errorf("a web page reset the counters; server log:\n%s", p.stderr)
	}
	if coveredLines(t, scrapeDir(t, p)) == 0 {
		t.Error("counters are zero after the page's attempts")
	}
}

// scrapeDir scrapes p into a fresh directory.
func scrapeDir(t *testing.T, p *proc) string {
	t.Helper()
	dir := t.TempDir()
	save(t, dir, scrape(t, p.base+"/coverage"))
	return dir
}
