// The program bench/scrape.sh scrapes: it idles, and besides the injected
// coverage server (copied next to this file at benchmark time) serves the
// floor the server is compared with: a bare runtime/coverage.WriteCounters
// endpoint, in the same process, on BARE_ADDR.
package main

import (
	"net"
	"net/http"
	"os"
	"runtime/coverage"
)

func main() {
	ln, err := net.Listen("tcp", os.Getenv("BARE_ADDR"))
	if err != nil {
		os.Exit(3)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/bare", func(w http.ResponseWriter, r *http.Request) {
		coverage.WriteCounters(w)
	})
	http.Serve(ln, mux)
}
