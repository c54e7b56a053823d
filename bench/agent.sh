#!/usr/bin/env bash
# Benchmark `covfleet agent`: 100 instrumented Go processes (the collect
# fixture, built with -cover at run time) and the agent against a local
# file:// sink, all in a network namespace made for the run (root needed).
# After a warm-up, prints the agent's steady-state RSS, CPU share of one
# core, and bytes fetched per poll and per hour.
#
#   bench/agent.sh                         100 targets, 10 s schedule
#   BENCH_TARGETS=20 BENCH_SECONDS=30 bench/agent.sh
#   COVFLEET=target/debug/covfleet bench/agent.sh   another binary
#
# Target (issue 10): <= 30 MB RSS and <= 2% of one core at 100 targets on a
# 10 s schedule. Not run by scripts/test.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

N=${BENCH_TARGETS:-100}
SECONDS_MEASURED=${BENCH_SECONDS:-60}
WARMUP=${BENCH_WARMUP:-25}
source scripts/lib.sh  # CARGO_TARGET_DIR: the cache's, as scripts/test.sh builds
COVFLEET=${COVFLEET:-$CARGO_TARGET_DIR/release/covfleet}
WORK=$(mktemp -d /tmp/covfleet-bench-agent.XXXXXX)
NS=cfbench$$
cleanup() {
    ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
    sleep 0.5
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$COVFLEET" ]; then
    echo "building covfleet (release)…" >&2
    # As the DaemonSet's image builds it (no history engine).
    cargo build --release -p covfleet --no-default-features >&2
fi

if ! "$COVFLEET" agent --help > /dev/null 2>&1; then
    echo "$COVFLEET has no agent subcommand (set COVFLEET=…)" >&2
    exit 2
fi

mkdir -p "$WORK/src"
cp go/testserver/main.go go/testserver/work.go "$WORK/src/"
cp go/covserver/coverage_server.go "$WORK/src/"
printf 'module covfleet.invalid/bench\n\ngo 1.22\n' > "$WORK/src/go.mod"
(cd "$WORK/src" && GOFLAGS= go build -cover -covermode=atomic -o ../fixture .)

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

# 50 servers per port range: 53700.. by default, then COVERAGE_PORT ranges.
for i in $(seq 0 $((N - 1))); do
    base=$((53700 + (i / 50) * 100))
    ip netns exec "$NS" env COVERAGE_PORT=$base "$WORK/fixture" 5 > /dev/null 2>&1 &
    # Each server takes the first free port of its range: start them one by one.
    if (( i % 10 == 9 )); then sleep 0.3; fi
done
sleep 2

ip netns exec "$NS" "$COVFLEET" agent --sink "file://$WORK/sink" --spool "$WORK/spool" \
    --no-kube --hostname bench --schedule 10s --scan-interval 10s \
    --listen 127.0.0.1:9464 2> "$WORK/agent.log" &
agent=$!

metric() {
    ip netns exec "$NS" curl -sf http://127.0.0.1:9464/metrics | awk -v m="$1" '$1 == m { print $2 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$agent/stat"; }

sleep "$WARMUP"
if ! kill -0 "$agent" 2> /dev/null; then
    echo "the agent exited:" >&2
    cat "$WORK/agent.log" >&2
    exit 1
fi
active=$(ip netns exec "$NS" curl -s http://127.0.0.1:9464/metrics | awk '/state="active"/ { print $2 }')
t0=$(date +%s.%N); c0=$(cpu_ticks)
b0=$(metric covfleet_agent_scraped_bytes_total); s0=$(metric covfleet_agent_scrapes_total)
sleep "$SECONDS_MEASURED"
t1=$(date +%s.%N); c1=$(cpu_ticks)
b1=$(metric covfleet_agent_scraped_bytes_total); s1=$(metric covfleet_agent_scrapes_total)
rss_kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$agent/status")
hwm_kb=$(awk '/^VmHWM/ { print $2 }' "/proc/$agent/status")
hz=$(getconf CLK_TCK)

python3 - "$t0" "$t1" "$c0" "$c1" "$hz" "$b0" "$b1" "$s0" "$s1" "$rss_kb" "$hwm_kb" "$active" "$N" <<'EOF'
import sys
t0, t1, c0, c1, hz, b0, b1, s0, s1, rss, hwm, active, n = sys.argv[1:]
dt = float(t1) - float(t0)
cpu = (float(c1) - float(c0)) / float(hz) / dt * 100
polls = float(s1) - float(s0)
per_poll = (float(b1) - float(b0)) / polls if polls else 0
per_hour = (float(b1) - float(b0)) / dt * 3600
print(f"targets: {n} started, {active} followed by the agent")
print(f"steady-state RSS: {int(rss)/1024:.1f} MiB (peak {int(hwm)/1024:.1f} MiB)")
print(f"CPU: {cpu:.2f}% of one core over {dt:.0f} s")
print(f"polls: {polls:.0f} in {dt:.0f} s ({polls/dt:.1f}/s)")
print(f"fetched: {per_poll/1024:.1f} KiB per poll, {per_hour/2**20:.1f} MiB per hour")
EOF
