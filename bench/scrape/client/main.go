// The measuring side of bench/scrape.sh: interleaved requests to the bare
// WriteCounters endpoint and to the coverage server in its forms, over
// kept-alive connections, printing medians, ratios and bytes on the wire.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"time"
)

type mode struct {
	name, url, accept string
	gzip              bool
	times             []time.Duration
	wire              int
	content           string
}

func main() {
	server := flag.String("server", "", "coverage server base URL")
	bare := flag.String("bare", "", "bare endpoint URL")
	n := flag.Int("n", 300, "requests per mode")
	label := flag.String("label", "", "label for the output")
	flag.Parse()
	modes := []*mode{
		{name: "bare WriteCounters (identity)", url: *bare},
		{name: "counters-only, compact+gzip", url: *server + "/coverage?nometa=1", accept: "application/vnd.covfleet.coverage", gzip: true},
		{name: "counters-only, JSON+gzip", url: *server + "/coverage?nometa=1", gzip: true},
		{name: "counters-only, compact, no gzip", url: *server + "/coverage?nometa=1", accept: "application/vnd.covfleet.coverage"},
		{name: "full (meta), compact+gzip", url: *server + "/coverage", accept: "application/vnd.covfleet.coverage", gzip: true},
		{name: "full (meta), JSON+gzip", url: *server + "/coverage", gzip: true},
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}}
	for round := -20; round < *n; round++ {
		for _, m := range modes {
			req, _ := http.NewRequest("GET", m.url, nil)
			if m.accept != "" {
				req.Header.Set("Accept", m.accept)
			}
			if m.gzip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				fmt.Fprintln(os.Stderr, m.name, err)
				os.Exit(1)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			el := time.Since(t0)
			if err != nil || resp.StatusCode != 200 {
				fmt.Fprintln(os.Stderr, m.name, resp.StatusCode, err)
				os.Exit(1)
			}
			if round < 0 {
				continue
			}
			m.times = append(m.times, el)
			m.wire = len(body)
			m.content = resp.Header.Get("Content-Type")
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err == nil {
					_, err = io.Copy(io.Discard, zr)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, m.name, "bad gzip:", err)
					os.Exit(1)
				}
			}
		}
	}
	med := func(m *mode) time.Duration {
		t := append([]time.Duration(nil), m.times...)
		sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
		return t[len(t)/2]
	}
	floor := med(modes[0])
	fmt.Printf("%s (%d requests per form, interleaved)\n", *label, *n)
	fmt.Printf("  %-32s %9s %7s %10s  %s\n", "form", "median", "x bare", "on wire", "content type")
	for _, m := range modes {
		d := med(m)
		fmt.Printf("  %-32s %7.2fms %6.2fx %8.1fKB  %s\n", m.name, float64(d.Microseconds())/1000, float64(d)/float64(floor), float64(m.wire)/1000, m.content)
	}
	c := modes[1]
	ratio := float64(med(c)) / float64(floor)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Printf("  target counters-only <= 1.5x bare: %.2fx (%s); <= 25 KB on the wire: %.1f KB (%s)\n",
		ratio, verdict(ratio <= 1.5 && c.content == "application/vnd.covfleet.coverage"),
		float64(c.wire)/1000, verdict(c.wire <= 25000 && c.content == "application/vnd.covfleet.coverage"))
}
