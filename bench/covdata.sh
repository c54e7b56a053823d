#!/usr/bin/env bash
# Benchmark: covfleet covdata vs go tool covdata on real coverage data.
#
#   bench/covdata.sh [NDIRS [NLARGE]]   (default 240 small and 12 large directories)
#   COVFLEET_BENCH_ROUNDS=N             (default 3 interleaved rounds per case)
#
# Two cases, each timed in the same run against `go tool covdata`:
# - small: the fixture app (go/fixtures/covdata) and cmd/gofmt built with
#   -cover, NDIRS directories of real coverage data (one "pod" per directory,
#   like one process's GOCOVERDIR in a cluster run; about 29 KB each).
# - large: go/fixtures/bigprog built with -cover -coverpkg=all (about 230
#   packages, 0.9 MB of meta-data, 82k blocks: the shape of a cluster binary
#   built that way), NLARGE directories from runs with different arguments.
# Data is generated once, cached in $COVFLEET_CACHE/bench-covdata/.
# For each case: per-directory `textfmt` (one process per directory, as the
# production system did) with `go tool covdata`, with the covdata binary
# directly and with covfleet, in interleaved rounds, each tool's best round
# counted (the machine's noise only ever adds time: a build's writeback, a
# neighbour); outputs compared; the ratios per directory;
# MB/s of input read and profile written by covfleet; one covfleet call over
# all directories. Then in-process throughput (crates/covdata/examples).
# Prints figures only; never fails on timing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
source scripts/lib.sh
ensure_go
export GOTOOLCHAIN=local GOFLAGS= GOWORK=off

N=${1:-240}
NLARGE=${2:-12}
gover=$(go env GOVERSION)
work="$COVFLEET_CACHE/bench-covdata/$gover-$N"
large="$COVFLEET_CACHE/bench-covdata/$gover-large-$NLARGE"
goroot=$(go env GOROOT)

log "building covfleet (release)"
cargo build --release --locked -q -p covfleet
cargo build --release --locked -q -p covdata --examples
covfleet="$CARGO_TARGET_DIR/release/covfleet"
covdata_bin=$(go tool -n covdata)
ROUNDS=${COVFLEET_BENCH_ROUNDS:-3}
# Write back what the build left dirty before anything is timed.
sync

if [ ! -f "$work/.done" ]; then
    log "generating $N directories of coverage data in $work"
    rm -rf "$work"
    mkdir -p "$work/bin" "$work/data"
    (cd go/fixtures/covdata && go build -cover -covermode=atomic -coverpkg=example.com/covfix/... -o "$work/bin/app" ./cmd/app)
    (cd "$work" && go build -cover -covermode=atomic -coverpkg=cmd/gofmt,go/... -o bin/gofmt cmd/gofmt)
    mapfile -t srcdirs < <(cd "$goroot/src" && find go strings sort errors bufio bytes unicode text/template -maxdepth 1 -type d | sort)
    appargs=("all" "shapes circle:1 rect:2:3" "gen 1 2 3 4" "reg alpha x new" "work 7" "hooks -3 7 200" "shapes bad:1")
    for ((i = 0; i < N; i++)); do
        d=$(printf '%s/data/d%04d' "$work" "$i")
        mkdir -p "$d"
        if ((i % 2 == 0)); then
            src=${srcdirs[$(((i / 2) % ${#srcdirs[@]}))]}
            GOCOVERDIR="$d" "$work/bin/gofmt" -l "$goroot/src/$src" >/dev/null 2>&1 || true
        else
            # shellcheck disable=SC2086
            GOCOVERDIR="$d" "$work/bin/app" ${appargs[$(((i / 2) % ${#appargs[@]}))]} >/dev/null 2>&1 || true
            GOCOVERDIR="$d" "$work/bin/app" all >/dev/null 2>&1 || true
        fi
    done
    touch "$work/.done"
fi
if [ ! -f "$large/.done" ]; then
    log "building go/fixtures/bigprog with -coverpkg=all (takes a minute or two)"
    rm -rf "$large"
    mkdir -p "$large/bin" "$large/data"
    (cd go/fixtures/bigprog && go build -cover -covermode=atomic -coverpkg=all -o "$large/bin/bigprog" .)
    log "generating $NLARGE directories of coverage data in $large"
    for ((i = 0; i < NLARGE; i++)); do
        d=$(printf '%s/data/d%04d' "$large" "$i")
        mkdir -p "$d"
        GOCOVERDIR="$d" "$large/bin/bigprog" "$((i + 1))" >/dev/null 2>&1 || true
    done
    touch "$large/.done"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1e6}'; }
# Warm up both (the first `go tool covdata` may build the tool).
go tool covdata textfmt -i="$work/data/d0000" -o="$out/warm" >/dev/null
"$covfleet" covdata textfmt -i="$work/data/d0000" -o="$out/warm" >/dev/null

# bench_case NAME DATADIR TARGET: times per-directory textfmt three ways.
bench_case() {
    local name=$1 data=$2 target=$3
    local -a dirs
    mapfile -t dirs < <(find "$data" -mindepth 1 -maxdepth 1 -type d | sort)
    local bytes nfiles n=${#dirs[@]}
    bytes=$(find "$data" -type f \( -name 'covmeta.*' -o -name 'covcounters.*' \) -printf '%s\n' | awk '{s+=$1} END {print s}')
    nfiles=$(find "$data" -type f | wc -l)
    rm -rf "$out/go" "$out/direct" "$out/cf"
    mkdir -p "$out/go" "$out/direct" "$out/cf"
    log "$name: per-directory textfmt over $n dirs ($nfiles files, $bytes bytes)"
    local d r t0 t1 t2 t3 t4 t5 t6 g="" dd="" c=""
    for ((r = 0; r < ROUNDS; r++)); do
        t0=$(now)
        for d in "${dirs[@]}"; do go tool covdata textfmt -i="$d" -o="$out/go/${d##*/}.txt"; done
        t1=$(now)
        for d in "${dirs[@]}"; do "$covdata_bin" textfmt -i="$d" -o="$out/direct/${d##*/}.txt"; done
        t2=$(now)
        for d in "${dirs[@]}"; do "$covfleet" covdata textfmt -i="$d" -o="$out/cf/${d##*/}.txt"; done
        t3=$(now)
        g+="$(ms "$t0" "$t1") " dd+="$(ms "$t1" "$t2") " c+="$(ms "$t2" "$t3") "
    done
    # Same output (lines compared as sorted sets: ties may be ordered differently).
    local mismatch=0
    for d in "${dirs[@]}"; do
        if ! cmp -s <(sort "$out/go/${d##*/}.txt") <(sort "$out/cf/${d##*/}.txt"); then
            mismatch=$((mismatch + 1))
            [ "$mismatch" -le 3 ] && log "output differs for $d"
        fi
    done
    local outbytes all
    outbytes=$(cat "$out"/cf/*.txt | wc -c)
    all=$(IFS=,; echo "${dirs[*]}")
    t4=$(now)
    "$covfleet" covdata textfmt -i="$all" -o="$out/cf-all.txt"
    t5=$(now)
    "$covdata_bin" textfmt -i="$all" -o="$out/go-all.txt"
    t6=$(now)
    if ! cmp -s <(sort "$out/go-all.txt") <(sort "$out/cf-all.txt"); then
        log "the all-directories outputs differ"
        mismatch=$((mismatch + 1))
    fi
    echo
    echo "covdata benchmark, $name case: $n directories, $nfiles files, $(awk -v b="$bytes" 'BEGIN {printf "%.2f MB", b/1e6}') in, $(awk -v b="$outbytes" 'BEGIN {printf "%.2f MB", b/1e6}') of textfmt out ($gover, $(nproc) cores)"
    awk -v gs="$g" -v ds="$dd" -v cs="$c" -v n="$n" -v b="$bytes" -v o="$outbytes" -v t="$target" -v name="$name" -v rounds="$ROUNDS" '
    function best(list, a, k, i, m) {
        k = split(list, a, " ")
        m = a[1]
        for (i = 2; i <= k; i++) if (a[i] + 0 < m + 0) m = a[i]
        return m
    }
    BEGIN {
        g = best(gs); d = best(ds); c = best(cs)
        printf "  (best of %d interleaved rounds; all rounds, ms: go %s| covdata binary %s| covfleet %s)\n", rounds, gs, ds, cs
        printf "  per-directory textfmt, `go tool covdata`:        %8.1f ms total, %6.2f ms/dir\n", g, g / n
        printf "  per-directory textfmt, covdata binary directly: %8.1f ms total, %6.2f ms/dir\n", d, d / n
        printf "  per-directory textfmt, covfleet:                %8.1f ms total, %6.2f ms/dir (%.1f MB/s in, %.1f MB/s out)\n", c, c / n, b / 1e3 / c, o / 1e3 / c
        printf "  %s: speed-up per directory vs `go tool covdata`: %.1fx (target >= %dx: %s); vs the covdata binary itself: %.1fx\n", name, g / c, t, (g / c >= t ? "met" : "NOT met"), d / c
    }'
    echo "  one covfleet call over all $n dirs:              $(ms "$t4" "$t5") ms"
    echo "  one covdata-binary call over all $n dirs:         $(ms "$t5" "$t6") ms"
    echo "  output mismatches: $mismatch"
    echo "  in-process (no process start): $("$CARGO_TARGET_DIR/release/examples/textfmt" "${dirs[@]}" --rounds 3)"
}

# Process start-up, which dominates the small case: covfleet, and the same
# build with DataFusion linked in (covfleet-history, which runs publish and
# history; covfleet used to be that binary).
startup() {
    local bin=$1 i t0 t1
    t0=$(now)
    for ((i = 0; i < 200; i++)); do "$bin" --version >/dev/null; done
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e6 / 200}'
}
echo
echo "process start-up (--version, mean of 200): covfleet $(startup "$covfleet") ms; covfleet-history (DataFusion linked) $(startup "$covfleet-history") ms; go tool covdata (no command) $(t0=$(now); for ((i = 0; i < 20; i++)); do go tool covdata version >/dev/null 2>&1 || true; done; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e6 / 20}') ms"

bench_case small "$work/data" 10
bench_case large "$large/data" 15
echo
log "decode throughput"
"$CARGO_TARGET_DIR/release/examples/throughput" "$work/data" "$large/data" --rounds 5 || log "(throughput example unavailable)"
