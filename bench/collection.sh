# Shared by bench/compile.sh and bench/history.sh (sourced; needs $WORK and
# scripts/lib.sh): builds gofmt with -cover -coverpkg=all and the fixture in
# go/fixtures/collection, records distinct real coverage runs into
# $WORK/runs, and defines make_collection DIR N [COLLECTED_AT] [OFFSET].
go tool covdata help >/dev/null 2>&1 || true   # build the tool before timing it

GOROOT_SRC=$(go env GOROOT)/src
if [ ! -x "$WORK/bin/gofmt" ]; then
    log "building gofmt with -cover -coverpkg=all (takes a while)"
    (cd "$GOROOT_SRC/cmd/gofmt" && go build -cover -covermode=atomic -coverpkg=all -o "$WORK/bin/gofmt" .)
fi
if [ ! -x "$WORK/bin/fixture" ]; then
    (cd go/fixtures/collection && go build -cover -covermode=atomic -o "$WORK/bin/fixture" .)
fi

# Distinct real runs.
if [ ! -f "$WORK/runs/.done" ]; then
    log "recording real coverage runs"
    rm -rf "$WORK/runs"; mkdir -p "$WORK/runs"
    i=0
    for f in $(ls "$GOROOT_SRC"/go/parser/*.go "$GOROOT_SRC"/go/printer/*.go "$GOROOT_SRC"/strings/*.go "$GOROOT_SRC"/sort/*.go | grep -v _test | head -24); do
        mkdir -p "$WORK/runs/g$i"
        GOCOVERDIR="$WORK/runs/g$i" "$WORK/bin/gofmt" -l "$f" >/dev/null || true
        # every third run: a second process (a restart) in the same dir
        if [ $((i % 3)) = 0 ]; then GOCOVERDIR="$WORK/runs/g$i" "$WORK/bin/gofmt" -d "$f" >/dev/null || true; fi
        i=$((i + 1))
    done
    j=0
    for args in "-mode calc -n 3" "-mode words -n 2" "-mode both -n 7 -snapshots 2" "-mode calc -n 30"; do
        mkdir -p "$WORK/runs/f$j"
        # shellcheck disable=SC2086
        GOCOVERDIR="$WORK/runs/f$j" "$WORK/bin/fixture" $args >/dev/null
        j=$((j + 1))
    done
    touch "$WORK/runs/.done"
fi
mapfile -t RUNS < <(cd "$WORK/runs" && ls -d g* f* | sort)

# make_collection DIR N [COLLECTED_AT] [OFFSET]: a collection of N entry dirs
# in DIR (entry e gets real run e+OFFSET).
alpha=bcdfghjklmnpqrstvwxz2456789
sfx() { local n=$1 len=$2 s=""; for ((k = 0; k < len; k++)); do s+=${alpha:$(((n / (k + 1) + k * 7) % 27)):1}; n=$((n * 31 + 17)); done; printf %s "$s"; }
make_collection() {
    local col=$1 n=$2 at=${3:-2026-11-21T12:00:00Z} off=${4:-0} e run d ns pod host bin
    rm -rf "$col"; mkdir -p "$col/coverage"
    for ((e = 0; e < n; e++)); do
        run=${RUNS[$(((e + off) % ${#RUNS[@]}))]}
        d="$col/coverage/e$(printf %04d $e)"
        mkdir -p "$d"
        cp "$WORK/runs/$run"/cov* "$d/"
        ns="ns$((e % 9))"
        case $((e % 4)) in
            0|1) pod="app$((e % 11))-$(sfx $((e % 11)) 10)-$(sfx $e 5)"; host=false ;;
            2) pod="agent$((e % 5))-$(sfx $e 5)"; host=false ;;
            3) pod=""; ns="_host_"; host=true ;;
        esac
        bin=${run:0:1}; [ "$bin" = g ] && bin=gofmt || bin=fixture
        cat >"$d/metadata.json" <<JSON
{"pod_name": "$pod", "namespace": "$ns", "container": {"name": "$bin", "image": "registry.example/$ns/$bin:1"},
 "collected_at": "$at", "binary_name": "$bin", "hostname": "node-$((e % 6))", "host_process": $host}
JSON
    done
}
