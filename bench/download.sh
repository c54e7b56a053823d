#!/usr/bin/env bash
# Benchmark `covfleet download` against a second S3 client (boto3) doing the
# same download, in the same run, from a real S3-compatible server (s3s-fs on
# loopback, SigV4 verified).
#
#   bench/download.sh                   2,160 entries (the seed's scale)
#   BENCH_ENTRIES=200 bench/download.sh a smaller run
#   BENCH_META_KB=64 BENCH_COUNTERS_KB=16  object sizes (defaults)
#   BENCH_CONCURRENCY="1 10 32"         the concurrency levels
#
# Each entry is one seed-layout directory
# ({prefix}/{host}/{ns}/{pod}/{container}/{time}/{image}/{binary}/) holding
# covmeta.<hash>, covcounters.<hash>.<pid>.1 and info.json: 3 objects, so
# both clients fetch exactly the same objects. Prints objects/s and MB/s per
# client and concurrency level. Not run by scripts/test.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
source scripts/lib.sh

N=${BENCH_ENTRIES:-2160}
META_KB=${BENCH_META_KB:-64}
COUNTERS_KB=${BENCH_COUNTERS_KB:-16}
LEVELS=${BENCH_CONCURRENCY:-1 10 32}
WORK=$(mktemp -d /tmp/covfleet-bench-dl.XXXXXX)
server_pid=
cleanup() {
    if [ "${ok:-0}" != 1 ] && [ -f "$WORK/s3s.log" ]; then log "s3s-fs log:"; tail -30 "$WORK/s3s.log" >&2; fi
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ensure_s3s_fs
ensure_boto3
cargo build --release -p covfleet --quiet
COVFLEET="$CARGO_TARGET_DIR/release/covfleet"

# The server, on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/s3/bench"
RUST_LOG=warn NO_COLOR=1 "$COVFLEET_S3S_FS" --host 127.0.0.1 --port "$port" --access-key bench-key --secret-key bench-secret-0123456789 \
    "$WORK/s3" >"$WORK/s3s.log" 2>&1 &
server_pid=$!
export AWS_ACCESS_KEY_ID=bench-key AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done

log "generating $N entries (${META_KB} KiB covmeta, ${COUNTERS_KB} KiB counters)"
"$COVFLEET_BOTO3_PYTHON" - "$WORK/tree" "$N" "$META_KB" "$COUNTERS_KB" <<'PY'
import os, sys
root, n, mkb, ckb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    d = os.path.join(root, f"node-{i % 6}", f"ns-{i % 24}", f"pod-{i}", "app", "20261130T120000Z",
                     f"quay.io_org_app{i % 40}_v1", "app")
    os.makedirs(d, exist_ok=True)
    h = f"{i % 40:032x}"
    with open(os.path.join(d, f"covmeta.{h}"), "wb") as f: f.write(os.urandom(mkb * 1024))
    with open(os.path.join(d, f"covcounters.{h}.{1000 + i}.1"), "wb") as f: f.write(os.urandom(ckb * 1024))
    with open(os.path.join(d, "info.json"), "w") as f: f.write('{"binary_name": "app", "pid": %d}' % (1000 + i))
PY
log "uploading with boto3"
"$COVFLEET_BOTO3_PYTHON" scripts/s3_boto3.py upload "$WORK/tree" s3://bench/openshift-ci/coverage/c1 --concurrency 32 >/dev/null

rate() { # objects bytes seconds -> "objects/s MB/s"
    python3 -c "o,b,s=$1,$2,$3; print(f'{o/s:10.0f} {b/s/1e6:8.1f} {s:8.2f}')"
}
printf '%-10s %12s %10s %8s %8s\n' client concurrency objects/s MB/s seconds
for c in $LEVELS; do
    rm -rf "$WORK/col"
    j=$("$COVFLEET" download --collection "$WORK/col" --url s3://bench/openshift-ci/coverage/c1 \
        --endpoint "$AWS_ENDPOINT_URL" --max-concurrency "$c" --json --quiet)
    read -r o b s < <(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(j['objects'], j['bytes'], j['seconds'])" "$j")
    printf '%-10s %12s %s\n' covfleet "$c" "$(rate "$o" "$b" "$s")"
    rm -rf "$WORK/boto"
    j=$("$COVFLEET_BOTO3_PYTHON" scripts/s3_boto3.py download s3://bench/openshift-ci/coverage/c1 "$WORK/boto" --concurrency "$c")
    read -r o b s < <(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(j['objects'], j['bytes'], j['seconds'])" "$j")
    printf '%-10s %12s %s\n' boto3 "$c" "$(rate "$o" "$b" "$s")"
done
ok=1
