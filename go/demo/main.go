// Command demo is the small HTTP service that `covfleet demo` builds with
// coverage, runs as a few replicas and drives with traffic: some handlers
// get requests, some never do, so the report shows both.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"example.com/covfleet/demo/internal/inventory"
	"example.com/covfleet/demo/internal/pricing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newMux(inventory.NewStore(), pricing.DefaultRules()),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
		<-stop
		_ = srv.Close()
	}()
	log.Printf("demo listening on %s", *addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
