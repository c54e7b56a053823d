#!/usr/bin/env bash
# Benchmark the history dataset: `covfleet publish` time per run, a run's
# dataset bytes against its coverage.db, and `covfleet history --never-ran`
# (and --trend) over 30 runs of a 2,000-entry collection in three clusters.
#
#   bench/history.sh                  30 runs of 2,000 entries
#   BENCH_RUNS=12 BENCH_DIRS=500 bench/history.sh
#   BENCH_WORK=/tmp/b bench/history.sh    keep (and reuse) the generated data there
#   COVFLEET_BIN=path bench/history.sh    time that covfleet binary
#
# The collections are real coverage data (bench/collection.sh: gofmt built
# with -cover -coverpkg=all, and the small fixture). Three distinct
# collections (the real runs assigned to entries with different offsets) are
# compiled once each; run k publishes collection k % 3, collected on day k,
# to cluster k % 3.
# Targets: a run's dataset at most half its coverage.db; --never-ran over 30
# runs under 10 s on the 2-core machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
source scripts/lib.sh

N=${BENCH_DIRS:-2000}
RUNS_N=${BENCH_RUNS:-30}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/covfleet-bench.XXXXXX)}
mkdir -p "$WORK/bin" "$WORK/runs"
log "work dir: $WORK"

if [ -n "${COVFLEET_BIN:-}" ]; then
    COVFLEET=$COVFLEET_BIN
else
    cargo build --release -p covfleet --quiet
    COVFLEET="$CARGO_TARGET_DIR/release/covfleet"
fi
source bench/collection.sh

now() { date +%s.%N; }
CLUSTERS=(east west north)
DBS=()
for k in 0 1 2; do
    col="$WORK/history-$N-$k"
    if [ ! -f "$col/.made" ]; then
        make_collection "$col" "$N" "2026-11-01T06:00:00Z" "$((k * 5))"
        touch "$col/.made"
    fi
    if [ ! -f "$col/coverage.db" ]; then
        "$COVFLEET" compile --collection "$col" --quiet
        sqlite3 "$col/coverage.db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
    fi
    DBS+=("$col/coverage.db")
done
db_bytes=$(stat -c %s "${DBS[0]}")
log "collections: 3 × $N entry dirs, coverage.db $db_bytes bytes each (about)"

DS="$WORK/dataset"
rm -rf "$DS"; mkdir -p "$DS"
total=0
t0=$(now)
for ((k = 0; k < RUNS_N; k++)); do
    db=${DBS[$((k % 3))]}
    # Each run its own day: copy the database with the run's collection time.
    day=$(printf '2026-10-%02d' $((k % 28 + 1)))
    cp "$db" "$WORK/run.db"
    sqlite3 "$WORK/run.db" "UPDATE report_sources SET collected_at = '${day}T06:00:00Z'" >/dev/null
    s=$(now)
    "$COVFLEET" publish --db "$WORK/run.db" --dataset "file://$DS" --cluster "${CLUSTERS[$((k % 3))]}" \
        --run "r$(printf %02d "$k")" --quiet
    e=$(now)
    total=$(awk -v t="$total" -v a="$s" -v b="$e" 'BEGIN { print t + b - a }')
done
t1=$(now)
ds_bytes=$(du -sb "$DS" | cut -f1)
run_bytes=$((ds_bytes / RUNS_N))
blocks_bytes=$(du -sb "$DS/blocks" | cut -f1)
for t in "$DS"/*/; do
    printf '  %-16s %12d bytes per run\n' "$(basename "$t")" $(($(du -sb "$t" | cut -f1) / RUNS_N)) >&2
done

s=$(now)
"$COVFLEET" history --dataset "file://$DS" --never-ran --json >"$WORK/never-ran.json"
e=$(now)
"$COVFLEET" history --dataset "file://$DS" --trend --json >"$WORK/trend.json"
e2=$(now)
rows=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rows"]))' "$WORK/never-ran.json")

awk -v n="$N" -v r="$RUNS_N" -v pub="$total" -v db="$db_bytes" -v rb="$run_bytes" -v bb="$blocks_bytes" \
    -v nr0="$s" -v nr1="$e" -v tr1="$e2" -v rows="$rows" 'BEGIN {
    printf "runs:                       %d runs of %d entries, 3 clusters\n", r, n
    printf "publish:                    %.3f s per run (from coverage.db)\n", pub / r
    printf "coverage.db:                %d bytes\n", db
    printf "dataset per run:            %d bytes = %.1f%% of coverage.db (target <= 50%%; blocks %.0f%% of it)\n", rb, 100 * rb / db, 100 * bb / r / rb
    printf "history --never-ran:        %.3f s over %d runs, %d candidates (target < 10 s)\n", nr1 - nr0, r, rows
    printf "history --trend:            %.3f s\n", tr1 - nr1
}'
