#!/usr/bin/env bash
# Benchmark: `covfleet collect --kube` at cluster scale through a real
# kube-apiserver + etcd (the ones the test suite builds, scripts/k8s-binaries.sh).
#
#   bench/kube.sh [LABEL=COVFLEET_BINARY ...]   also measure those binaries
#                                               (e.g. before=/path/to/old/covfleet),
#                                               interleaved with this tree's
#
# Starts the control plane on loopback, 16 network namespaces each running
# one real instrumented Go program, and 400 Running pods whose podIPs point
# at them (written like a kubelet would); then times `collect --kube` through
# the apiserver's pod proxy, output on the disk of $COVFLEET_BENCH_OUT
# (default: cargo's test scratch space under the target dir, not /tmp,
# which may be tmpfs), several runs per binary and --concurrency.
# Prints, per run and as medians: seconds, pods/s (target >= 700 at 400
# pods), collect's CPU time, and the apiserver's CPU time per pod (from
# /proc/<apiserver>/stat before and after). Figures only; never fails on
# timing. Needs root (ip netns), Go, curl, openssl.
#
# Environment: COVFLEET_BENCH_PODS (400), COVFLEET_BENCH_SERVERS (16),
# COVFLEET_BENCH_RUNS (5), COVFLEET_BENCH_CONCURRENCY ("16 64"),
# COVFLEET_BENCH_OUT.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
source scripts/lib.sh
ensure_go
if ! ls "${COVFLEET_CACHE:-$HOME/.cache/covfleet}"/k8s-*/bin/kube-apiserver >/dev/null 2>&1 \
    && [ -z "${COVFLEET_K8S_BIN:-}" ]; then
    log "building kube-apiserver and etcd (scripts/k8s-binaries.sh)"
    scripts/k8s-binaries.sh >/dev/null
fi
bins=()
for spec in "$@"; do
    label=${spec%%=*}
    path=${spec#*=}
    [ -x "$path" ] || { echo "bench/kube.sh: $path is not an executable" >&2; exit 2; }
    bins+=("$label=$(cd "$(dirname "$path")" && pwd)/$(basename "$path")")
done
export COVFLEET_BENCH_BINS="${bins[*]:-}"
log "building covfleet and the benchmark (release)"
cargo test --release -p covfleet --test kube_scale --no-run 2>&1 | grep -v '^\s*\(Compiling\|Finished\|Executable\)' >&2 || true
cargo test --release -q -p covfleet --test kube_scale -- \
    --ignored --exact bench_collect_at_scale --nocapture --test-threads 1 2>&1 \
    | grep -v '^\(running\|test result\|$\)'
