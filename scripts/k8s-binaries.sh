#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from the Go module proxy (no other
# downloads) into a versioned cache folder, reused when present:
#
#   ${COVFLEET_CACHE:-~/.cache/covfleet}/k8s-<K8S_VERSION>/bin/{kube-apiserver,etcd}
#
# Used by crates/covfleet/tests/kube_real.rs (which finds the folder itself and
# skips only when the binaries are missing). Prints the bin folder on stdout.
#
#   scripts/k8s-binaries.sh            build what is missing
#   K8S_BUILD_TIMEOUT=1200 scripts/k8s-binaries.sh
#
# Why not `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.x`: the kubernetes
# go.mod replaces its staging modules (k8s.io/api, k8s.io/apiserver, ...) with
# ./staging/src/..., which `go install pkg@version` refuses, and the module zip
# on the proxy does not even contain those nested modules. So we copy the
# module to a writable folder and point each staging replace at the published
# module of the matching version (k8s.io/api v0.34.2 for kubernetes v1.34.2).
# etcd's server module has replace directives too; it builds as a dependency of
# a throwaway main module instead, where those are ignored.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.21}"
COVFLEET_CACHE="${COVFLEET_CACHE:-$HOME/.cache/covfleet}"
root="$COVFLEET_CACHE/k8s-$K8S_VERSION"
bin="$root/bin"
work="$root/build"

log() { printf '[%s] k8s-binaries: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v go >/dev/null || { log "go is required"; exit 2; }
mkdir -p "$bin"
# Module proxy only: never fall back to fetching from version control.
proxy=$(go env GOPROXY | sed -E 's/[,|]direct$//')
case "$proxy" in "" | direct | off) proxy=https://proxy.golang.org ;; esac
export GOPROXY="$proxy"
# A private build cache, deleted with the build folder: the binaries are what
# is reused, and kube-apiserver's compiled packages take ~2.3 GB.
export GOCACHE="${K8S_GOCACHE:-$work/gocache}"

# Published staging modules are tagged v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
staging_version="v0.${K8S_VERSION#v1.}"

build_apiserver() {
    local dir json
    json=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION") || true
    dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir" ] || { log "go mod download k8s.io/kubernetes@$K8S_VERSION gave no folder: $json"; return 1; }
    rm -rf "$work/kubernetes" || return 1
    mkdir -p "$work" || return 1
    cp -r "$dir" "$work/kubernetes" || return 1
    chmod -R u+w "$work/kubernetes" || return 1
    cd "$work/kubernetes" || return 1
    rm -f go.work go.work.sum || return 1
    # k8s.io/api => ./staging/src/k8s.io/api   becomes   k8s.io/api => k8s.io/api v0.34.2
    sed -i -E "s#^([[:space:]]*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+\$#\1\2 => \2 $staging_version#" go.mod || return 1
    if grep -q '=> ./staging' go.mod; then
        log "go.mod still has local staging replaces:"; grep '=> ./staging' go.mod >&2; return 1
    fi
    local ver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
    ver+=" -X k8s.io/component-base/version.gitMajor=1"
    ver+=" -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
        go build -trimpath -ldflags "-s -w $ver" -o "$bin/kube-apiserver.tmp" ./cmd/kube-apiserver || return 1
    mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
}

build_etcd() {
    rm -rf "$work/etcd" || return 1
    mkdir -p "$work/etcd" || return 1
    cd "$work/etcd" || return 1
    cat >go.mod <<EOF
module covfleet.local/etcdbuild

go 1.23

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
    [ -s go.mod ] || return 1
    GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
        go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 || return 1
    mv "$bin/etcd.tmp" "$bin/etcd"
}

timed() {
    local what=$1 start=$SECONDS
    shift
    if [ -x "$bin/$what" ]; then return 0; fi
    log "building $what (kubernetes $K8S_VERSION, etcd $ETCD_VERSION) into $bin"
    # Called as `timed … || status=1`, so `set -e` does not hold in here:
    # the build functions return at their first failure themselves.
    local rc=0
    ("$@") || rc=$?
    if [ "$rc" = 0 ] && [ -x "$bin/$what" ]; then
        log "built $what in $((SECONDS - start))s ($(du -sh "$bin/$what" | cut -f1))"
    else
        log "building $what failed after $((SECONDS - start))s (exit $rc)"
        return 1
    fi
}

status=0
timed etcd build_etcd || status=1
timed kube-apiserver build_apiserver || status=1
# The copied source is only needed to build; the module cache keeps the downloads.
rm -rf "$work"
if [ "$status" = 0 ]; then echo "$bin"; fi
exit "$status"
