//go:build go1.20 && linux

package main

// COVERAGE_FLUSH_INTERVAL and the SIGTERM flush, on real processes; and the
// seed-04 flow (an operator run as a `go test -c` binary).

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// handlerFile gives the demo its own SIGTERM handler: it says so on stdout
// and exits with status 3.
const handlerFile = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func init() {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGTERM)
	go func() {
		<-c
		fmt.Println("host handler: SIGTERM")
		time.Sleep(100 * time.Millisecond)
		fmt.Printf("host handler: %d more\n", len(c))
		os.Exit(3)
	}()
}
`

// counterFiles lists dir's covcounters.* files and reports whether any
// temporary file is left.
func counterFiles(t *testing.T, dir string) (names []string, tmp bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "covcounters.") {
			names = append(names, e.Name())
		}
		if strings.HasPrefix(e.Name(), "tmp.") {
			tmp = true
		}
	}
	return names, tmp
}

// totalCount sums the counts of main.go's blocks in dir, or -1 when dir
// holds no counter file yet.
func totalCount(t *testing.T, dir string) int {
	t.Helper()
	if names, _ := counterFiles(t, dir); len(names) == 0 {
		return -1
	}
	sum := 0
	for _, l := range textfmt(t, dir) {
		sum += countOf(l)
	}
	return sum
}

// waitCount polls until dir's main.go counts exceed floor.
func waitCount(t *testing.T, dir string, floor int) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n := totalCount(t, dir); n > floor {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flush with counts above %d in %s within 60 s", floor, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestFlushSurvivesSIGKILL(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port), "COVERAGE_FLUSH_INTERVAL=1s")
	p.work(t, 30)
	first := waitCount(t, p.covDir, 0)
	p.work(t, 45)
	second := waitCount(t, p.covDir, first)
	// Several flushes, one counter file (and the meta file Go wrote at start).
	names, tmp := counterFiles(t, p.covDir)
	if len(names) != 1 || tmp {
		t.Fatalf("after several flushes: counter files %v, temporary files left: %v", names, tmp)
	}
	if !strings.Contains(names[0], "."+strconv.Itoa(p.cmd.Process.Pid)+".") {
		t.Errorf("counter file %s is not named after pid %d", names[0], p.cmd.Process.Pid)
	}
	live := t.TempDir()
	save(t, live, scrape(t, p.base+"/coverage"))
	want := textfmt(t, live)

	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	// SIGKILL: Go wrote nothing; the last flush holds the work, readable by
	// go tool covdata, and agrees with a live scrape taken after it.
	if got := totalCount(t, p.covDir); got != second {
		t.Errorf("after SIGKILL: total count %d, last flush had %d", got, second)
	}
	if got := textfmt(t, p.covDir); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("flushed data differs from the live scrape:\n%s\nvs\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.stderr.Len() != 0 {
		t.Errorf("flushing wrote to stderr:\n%s", p.stderr)
	}
}

// termStatus runs bin under env, does some work, sends SIGTERM and returns
// how it ended, its stdout after the work, and its GOCOVERDIR.
func termStatus(t *testing.T, bin string, env ...string) (*exec.ExitError, string, *proc) {
	t.Helper()
	port := freePort(t)
	p := start(t, bin, port, append([]string{"COVERAGE_PORT=" + strconv.Itoa(port)}, env...)...)
	p.work(t, 30)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := p.stdout.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				rest <- b.String()
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("still running 60 s after SIGTERM")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("after SIGTERM: %v, want an abnormal end", err)
	}
	return exit, <-rest, p
}

func TestSIGTERMWithoutHandlerStillExits(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	// As before: without the flush, Go's default SIGTERM action kills it and
	// nothing reaches GOCOVERDIR but the meta file.
	exit, _, p := termStatus(t, bin)
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("baseline: %v", exit)
	}
	if names, _ := counterFiles(t, p.covDir); len(names) != 0 {
		t.Fatalf("baseline wrote counters %v", names)
	}
	// With the flush: the same end, by default after a wait, or at once with
	// COVERAGE_FLUSH_SIGTERM=exit; and the work is in GOCOVERDIR.
	for _, mode := range []string{"", "exit", "300ms"} {
		exit, _, p := termStatus(t, bin, "COVERAGE_FLUSH_INTERVAL=1h", "COVERAGE_FLUSH_SIGTERM="+mode)
		ws := exit.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("COVERAGE_FLUSH_SIGTERM=%q: ended with %v, want killed by SIGTERM as without the flush", mode, exit)
		}
		names, tmp := counterFiles(t, p.covDir)
		if len(names) != 1 || tmp || totalCount(t, p.covDir) <= 0 {
			t.Errorf("COVERAGE_FLUSH_SIGTERM=%q: counter files %v (tmp left %v), want one holding the work", mode, names, tmp)
		}
		if p.stderr.Len() != 0 {
			t.Errorf("stderr: %s", p.stderr)
		}
	}
}

func TestSIGTERMHandlerOfTheProgramIsKept(t *testing.T) {
	bin := buildGo(t, map[string]string{"main.go": demoMain, "handler.go": handlerFile}, "build", "-cover", "-covermode=atomic")
	for _, env := range [][]string{nil, {"COVERAGE_FLUSH_INTERVAL=1h"}} {
		exit, out, p := termStatus(t, bin, env...)
		if exit.ExitCode() != 3 || !strings.Contains(out, "host handler: SIGTERM\nhost handler: 0 more\n") {
			t.Errorf("env %v: ended with %v, stdout %q; want the program's own handler (status 3, one signal)", env, exit, out)
		}
		// os.Exit ran Go's exit hook: its counter file holds the work.
		if n := totalCount(t, p.covDir); n <= 0 {
			t.Errorf("env %v: counts in GOCOVERDIR %d", env, n)
		}
	}
}

func TestFlushOffByDefaultAndWithoutGOCOVERDIR(t *testing.T) {
	bin := demoBinary(t, "-cover", "-covermode=atomic")
	port := freePort(t)
	p := start(t, bin, port, "COVERAGE_PORT="+strconv.Itoa(port))
	p.work(t, 30)
	time.Sleep(1500 * time.Millisecond)
	if names, _ := counterFiles(t, p.covDir); len(names) != 0 {
		t.Errorf("no COVERAGE_FLUSH_INTERVAL but counter files %v", names)
	}
	// A SIGTERM still kills it at once, as without the server.
	p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() {
		t.Errorf("SIGTERM: %v", err)
	}
}

// The seed-04 flow: an operator built as a test binary whose only test runs
// main(), started with -test.run '^TestRunMain$' and -test.coverprofile.
const runMainTest = `//go:build testrunmain
// +build testrunmain

package main

import "testing"

func TestRunMain(t *testing.T) {
	main()
}
`

func TestSeed04TestBinary(t *testing.T) {
	bin := buildGo(t, map[string]string{"main.go": demoMain, "main_test.go": runMainTest},
		"test", "-c", "-cover", "-covermode=atomic", "-tags", "testrunmain")
	profile := filepath.Join(t.TempDir(), "coverage.out")
	port := freePort(t)
	// COVERAGE_IN_TESTS=1 starts the server in the test binary (start waits
	// for its identity headers)...
	p := startArgs(t, bin, []string{"-test.run", "^TestRunMain$", "-test.coverprofile=" + profile}, port,
		"COVERAGE_PORT="+strconv.Itoa(port), "COVERAGE_IN_TESTS=1")
	p.work(t, 30)
	// ...but without the companion file Go cannot give a test binary's
	// coverage before its tests end: the server says so, why, and how to
	// build it so that it can (TestSeed04TestBinaryLive).
	resp, body := do(t, "GET", p.base+"/coverage", nil)
	if resp.StatusCode != 500 || !strings.Contains(body, "`go test` binary") || !strings.Contains(body, "go build -cover") ||
		!strings.Contains(body, "-tags covfleet_testbinary -ldflags=-checklinkname=0") {
		t.Errorf("GET /coverage in a test binary: %d %q", resp.StatusCode, body)
	}
	p.work(t, 7)
	p.exit(t)

	// When main returns, TestRunMain passes and the testing package writes
	// the text profile, with the work in it.
	raw, err := os.ReadFile(profile)
	if err != nil {
		t.Fatalf("-test.coverprofile not written: %v", err)
	}
	if !strings.HasPrefix(string(raw), "mode: atomic\n") {
		t.Fatalf("profile starts %.40q", raw)
	}
	covered := 0
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "example.com/demo/main.go:") && countOf(l) > 0 {
			covered++
		}
	}
	if covered == 0 {
		t.Errorf("no covered main.go block in the profile:\n%s", raw)
	}
}

// TestSeed04TestBinaryLive: the same test binary built with the companion
// file (-tags covfleet_testbinary -ldflags=-checklinkname=0) serves live
// coverage while its test runs; the meta-data is byte for byte the one Go
// writes when the test ends, the live counters are what ran so far, and the
// -test.coverprofile written at exit is unchanged by the early hash.
func TestSeed04TestBinaryLive(t *testing.T) {
	bin := buildGo(t, map[string]string{"main.go": demoMain, "main_test.go": runMainTest},
		"test", "-c", "-cover", "-covermode=atomic", "-tags", "testrunmain,covfleet_testbinary",
		"-ldflags=-checklinkname=0")
	profile := filepath.Join(t.TempDir(), "coverage.out")
	exitDir := t.TempDir()
	port := freePort(t)
	p := startArgs(t, bin, []string{"-test.run", "^TestRunMain$", "-test.coverprofile=" + profile,
		"-test.gocoverdir=" + exitDir}, port,
		"COVERAGE_PORT="+strconv.Itoa(port), "COVERAGE_IN_TESTS=1")

	// Before any work: the server answers, and main.go's request loop has
	// not counted a single "ok" yet.
	before := t.TempDir()
	save(t, before, scrape(t, p.base+"/coverage"))
	p.work(t, 30)
	live := t.TempDir()
	got := scrape(t, p.base+"/coverage")
	save(t, live, got)
	if coveredLines(t, live) <= coveredLines(t, before) {
		t.Errorf("live coverage did not grow with the work: %v then %v", textfmt(t, before), textfmt(t, live))
	}
	// Counters only, named with the same hash.
	counters := scrape(t, p.base+"/coverage?nometa=1")
	if counters.MetaData != "" || !strings.Contains(counters.CountersFilename, strings.TrimPrefix(got.MetaFilename, "covmeta.")) {
		t.Errorf("nometa scrape: meta %d bytes, counters %q (meta %q)", len(counters.MetaData), counters.CountersFilename, got.MetaFilename)
	}
	p.work(t, 7)
	p.exit(t)

	// The meta-data served live is the file Go writes when the test ends.
	exitMeta, err := os.ReadFile(filepath.Join(exitDir, got.MetaFilename))
	if err != nil {
		entries, _ := os.ReadDir(exitDir)
		t.Fatalf("exit wrote no %s: %v (dir has %v)", got.MetaFilename, err, entries)
	}
	liveMeta, _ := os.ReadFile(filepath.Join(live, got.MetaFilename))
	if string(liveMeta) != string(exitMeta) {
		t.Errorf("live meta (%d bytes) differs from the exit meta (%d bytes)", len(liveMeta), len(exitMeta))
	}
	// Every block that ran by the scrape ran by the exit, at least as often.
	final := map[string]int{}
	for _, l := range textfmt(t, exitDir) {
		final[l[:strings.LastIndexByte(l, ' ')]] = countOf(l)
	}
	for _, l := range textfmt(t, live) {
		if n := countOf(l); n > final[l[:strings.LastIndexByte(l, ' ')]] {
			t.Errorf("block %q: %d live but %d at exit", l, n, final[l[:strings.LastIndexByte(l, ' ')]])
		}
	}
	raw, err := os.ReadFile(profile)
	if err != nil || !strings.HasPrefix(string(raw), "mode: atomic\n") {
		t.Fatalf("-test.coverprofile: %v, starts %.40q", err, raw)
	}
}
