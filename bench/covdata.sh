#!/usr/bin/env bash
# Benchmark: covfleet covdata vs go tool covdata on real coverage data.
#
#   bench/covdata.sh [NDIRS]        (default 240 directories)
#
# 1. Builds the fixture app (go/fixtures/covdata) and cmd/gofmt with -cover,
#    and generates NDIRS directories of real coverage data (one "pod" per
#    directory, like one process's GOCOVERDIR in a cluster run): gofmt over
#    different GOROOT package dirs and the app with different arguments.
#    Cached in $COVFLEET_CACHE/bench-covdata/<go version>-<NDIRS>.
# 2. Times per-directory `textfmt` (one process per directory, as the
#    production system did) with `go tool covdata` and with covfleet in the
#    same run, checks the outputs agree, and prints the ratio.
# 3. Times one covfleet call over all directories (-i d1,d2,...).
# 4. Prints decode throughput in MB/s (crates/covdata/examples/throughput.rs).
# Prints figures only; never fails on timing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
source scripts/lib.sh
ensure_go
export GOTOOLCHAIN=local GOFLAGS= GOWORK=off

N=${1:-240}
gover=$(go env GOVERSION)
work="$COVFLEET_CACHE/bench-covdata/$gover-$N"
goroot=$(go env GOROOT)

log "building covfleet (release)"
cargo build --release --locked -q -p covfleet
covfleet="$CARGO_TARGET_DIR/release/covfleet"
covdata_bin=$(go tool -n covdata)

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
mapfile -t dirs < <(find "$work/data" -mindepth 1 -maxdepth 1 -type d | sort)
bytes=$(find "$work/data" -type f \( -name 'covmeta.*' -o -name 'covcounters.*' \) -printf '%s\n' | awk '{s+=$1} END {print s}')
nfiles=$(find "$work/data" -type f | wc -l)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/go" "$out/direct" "$out/cf"

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1e6}'; }

log "per-directory textfmt over ${#dirs[@]} dirs ($nfiles files, $bytes bytes)"
# Warm up both (the first `go tool covdata` may build the tool).
go tool covdata textfmt -i="${dirs[0]}" -o="$out/warm" >/dev/null
"$covfleet" covdata textfmt -i="${dirs[0]}" -o="$out/warm" >/dev/null

t0=$(now)
for d in "${dirs[@]}"; do go tool covdata textfmt -i="$d" -o="$out/go/${d##*/}.txt"; done
t1=$(now)
for d in "${dirs[@]}"; do "$covdata_bin" textfmt -i="$d" -o="$out/direct/${d##*/}.txt"; done
t2=$(now)
for d in "${dirs[@]}"; do "$covfleet" covdata textfmt -i="$d" -o="$out/cf/${d##*/}.txt"; done
t3=$(now)

# Same output (lines compared as sorted sets: ties may be ordered differently).
mismatch=0
for d in "${dirs[@]}"; do
    n=${d##*/}
    if ! cmp -s <(sort "$out/go/$n.txt") <(sort "$out/cf/$n.txt"); then
        mismatch=$((mismatch + 1))
        [ "$mismatch" -le 3 ] && log "output differs for $d"
    fi
done

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

n=${#dirs[@]}
go_ms=$(ms "$t0" "$t1"); direct_ms=$(ms "$t1" "$t2"); cf_ms=$(ms "$t2" "$t3")
echo
echo "covdata benchmark: $n directories, $nfiles files, $(awk -v b="$bytes" 'BEGIN {printf "%.2f MB", b/1e6}') ($gover, $(nproc) cores)"
awk -v g="$go_ms" -v d="$direct_ms" -v c="$cf_ms" -v n="$n" 'BEGIN {
    printf "  per-directory textfmt, `go tool covdata`:        %8.1f ms total, %6.2f ms/dir\n", g, g / n
    printf "  per-directory textfmt, covdata binary directly: %8.1f ms total, %6.2f ms/dir\n", d, d / n
    printf "  per-directory textfmt, covfleet:                %8.1f ms total, %6.2f ms/dir\n", c, c / n
    printf "  speed-up vs `go tool covdata`: %.1fx   (vs the covdata binary itself: %.1fx; target >= 10x)\n", g / c, d / c
}'
echo "  one covfleet call over all $n dirs:              $(ms "$t4" "$t5") ms"
echo "  one covdata-binary call over all $n dirs:         $(ms "$t5" "$t6") ms"
echo "  output mismatches: $mismatch"
echo
log "decode throughput"
cargo run --release --locked -q -p covdata --example throughput -- "$work/data" --rounds 5 || log "(throughput example unavailable)"
