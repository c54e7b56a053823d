#!/usr/bin/env bash
# Benchmark: the injected coverage server's scrape against the floor, a bare
# runtime/coverage.WriteCounters endpoint in the same process.
#
#   bench/scrape.sh [REV]     REV: also measure the server as of that git
#                             revision (e.g. the previous one) in the same run
#
# Builds bench/scrape/host (an idle program with both endpoints) with the
# server from go/covserver, with -coverpkg=all (about 200 packages and
# 0.8 MB of meta-data: the shape of a large operator built that way), runs
# it with its stdout and stderr going to files, and times interleaved
# requests with bench/scrape/client: the bare endpoint, counters-only and
# full scrapes, compact (what covfleet asks for) and JSON (the seed
# protocol), all with gzip. Prints medians, ratios to the bare endpoint,
# bytes on the wire, and the bytes the host wrote to stdout/stderr.
# Prints figures only; never fails on timing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
source scripts/lib.sh
ensure_go
export GOTOOLCHAIN=local GOFLAGS= GOWORK=off
N=${N:-300}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

(cd bench/scrape && go build -o "$work/client" ./client)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# measure LABEL SERVER_GO_FILE
measure() {
    local label=$1 server=$2 dir="$work/$RANDOM"
    mkdir -p "$dir/cov"
    cp bench/scrape/host/main.go "$dir/main.go"
    cp "$server" "$dir/zz_covfleet_coverage_server.go"
    printf 'module example.com/benchhost\n\ngo 1.16\n' > "$dir/go.mod"
    log "building the host with -coverpkg=all ($label)"
    (cd "$dir" && go build -cover -covermode=atomic -coverpkg=all -o host .)
    local sport bport
    sport=$(free_port)
    bport=$(free_port)
    GOCOVERDIR="$dir/cov" COVERAGE_PORT=$sport COVERAGE_BIND=127.0.0.1 BARE_ADDR=127.0.0.1:$bport \
        "$dir/host" >"$dir/stdout" 2>"$dir/stderr" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        curl -fsI "http://127.0.0.1:$sport/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$work/client" -label "$label" -n "$N" -server "http://127.0.0.1:$sport" -bare "http://127.0.0.1:$bport/bare"
    local meta pkgs
    meta=$(stat -c %s "$dir"/cov/covmeta.* 2>/dev/null || echo 0)
    pkgs=$(go tool covdata pkglist -i "$dir/cov" 2>/dev/null | wc -l)
    echo "  host: $pkgs packages, $meta bytes of meta-data; RSS $(awk '/VmHWM/ {print $2 " " $3}' "/proc/$pid/status") peak"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    echo "  bytes the host wrote: stdout $(stat -c %s "$dir/stdout"), stderr $(stat -c %s "$dir/stderr")"
}

if [ $# -ge 1 ]; then
    git show "$1:go/covserver/coverage_server.go" > "$work/old_server.go"
    measure "server at $1" "$work/old_server.go"
fi
measure "server in this tree" "${SERVER_GO:-go/covserver/coverage_server.go}"
