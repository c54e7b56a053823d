// The fixture program the collect tests scrape. It runs a deterministic
// amount of work chosen by its arguments, then idles until SIGTERM/SIGINT
// (or FIXTURE_LIFETIME elapses) and returns from main, so a run with
// GOCOVERDIR set writes its final counters: the oracle the tests compare
// collected snapshots with.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	n := 7
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil {
			n = v
		}
	}
	counts := work(n)
	fmt.Println("ready", counts["fizz"], counts["buzz"], counts["fizzbuzz"], counts["number"])

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// SIGUSR1 runs more work, so tests can change coverage while the process lives.
	more := make(chan os.Signal, 1)
	signal.Notify(more, syscall.SIGUSR1)
	var lifetime <-chan time.Time
	if s := os.Getenv("FIXTURE_LIFETIME"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			lifetime = time.After(d)
		}
	}
	for {
		select {
		case <-sig:
			return
		case <-lifetime:
			return
		case <-more:
			work(n * 2)
			fmt.Println("worked")
		}
	}
}
