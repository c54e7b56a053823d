#!/bin/sh
# covfleet go shim -- written by `covfleet go-shim install`; safe to delete.
#
# Adds `-cover -covermode=atomic` to `go build` and `go install` (nothing else:
# test, run, vet, list... pass through untouched). A -cover or -covermode flag
# the user gave (on the command line or in GOFLAGS) is left alone and not
# doubled; `-cover=false` turns the shim off for that call. The real go is
# $COVFLEET_REAL_GO, else the first `go` on PATH that is neither this file nor
# another covfleet shim.
#
# With $COVFLEET_COVERPKG (or the value `go-shim install --coverpkg` recorded
# below; the variable wins, empty turns it off) it also adds
# -coverpkg=PATTERNS,<the packages being built>, so libraries (vendored ones
# too) are covered and the main packages stay in the list (without them Go
# writes no coverage at exit). A -coverpkg the user gave is left alone.
set -f

default_coverpkg=''

self=$0
case $self in
*/*) ;;
*) self=$(command -v -- "$self") ;;
esac
self_dir=$(cd -P -- "$(dirname -- "$self")" 2>/dev/null && pwd -P)

real=${COVFLEET_REAL_GO:-}
if [ -z "$real" ]; then
    saved_ifs=$IFS
    IFS=:
    for d in $PATH; do
        [ -n "$d" ] || d=.
        [ -f "$d/go" ] && [ -x "$d/go" ] || continue
        dd=$(cd -P -- "$d" 2>/dev/null && pwd -P) || continue
        [ "$dd" = "$self_dir" ] && continue
        [ "$d/go" -ef "$self" ] && continue
        if head -c 512 "$d/go" 2>/dev/null | grep -q 'covfleet go shim'; then continue; fi
        real=$d/go
        break
    done
    IFS=$saved_ifs
fi
if [ -z "$real" ]; then
    echo "covfleet go shim: no real go found on PATH besides $self_dir; set COVFLEET_REAL_GO" >&2
    exit 127
fi

case ${1:-} in
build | install) ;;
*) exec "$real" "$@" ;;
esac
sub=$1
shift

add_cover=1
add_mode=1
add_pkg=1
note_flag() {
    case $1 in
    -cover=false | --cover=false | -cover=0 | --cover=0 | -cover=f | --cover=f | -cover=F | --cover=F | -cover=FALSE | --cover=FALSE | -cover=False | --cover=False)
        add_cover=0 add_mode=0 add_pkg=0 ;;
    -coverpkg | --coverpkg | -coverpkg=* | --coverpkg=*) add_pkg=0 ;;
    -cover | --cover | -cover=* | --cover=*) add_cover=0 ;;
    -covermode | --covermode | -covermode=* | --covermode=*) add_mode=0 ;;
    esac
}
for a in "$@"; do note_flag "$a"; done
for a in ${GOFLAGS:-}; do note_flag "$a"; done

extra=
[ "$add_cover" = 1 ] && extra="-cover"
[ "$add_mode" = 1 ] && extra="$extra -covermode=atomic"

coverpkg=${COVFLEET_COVERPKG-$default_coverpkg}
if [ "$add_pkg" = 1 ] && [ -n "$coverpkg" ]; then
    # The packages being built: the arguments that are not flags or flag values.
    pkgs= files= skip=0
    for a in "$@"; do
        if [ "$skip" = 1 ]; then skip=0; continue; fi
        case $a in
        -o | -p | -C | -tags | -ldflags | -gcflags | -asmflags | -mod | -modfile | -overlay | -pkgdir | -toolexec | \
        -installsuffix | -buildmode | -compiler | -gccgoflags | -pgo | -covermode | -exec | \
        --o | --p | --C | --tags | --ldflags | --gcflags | --asmflags | --mod | --modfile | --overlay | --pkgdir | \
        --toolexec | --installsuffix | --buildmode | --compiler | --gccgoflags | --pgo | --covermode | --exec)
            skip=1 ;;
        -*) ;;
        *.go) files=1 ;;
        *) pkgs="$pkgs,$a" ;;
        esac
    done
    [ -n "$files" ] && pkgs="$pkgs,command-line-arguments"
    [ -n "$pkgs" ] || pkgs=",."
    extra="$extra -coverpkg=$coverpkg$pkgs"
fi

if [ -n "$extra" ]; then
    # `-C dir` must stay the first flag.
    case ${1:-} in
    -C | --C)
        if [ $# -ge 2 ]; then
            c_flag=$1 c_dir=$2
            shift 2
            set -- "$c_flag" "$c_dir" $extra "$@"
        else
            set -- $extra "$@"
        fi
        ;;
    -C=* | --C=*)
        c_flag=$1
        shift
        set -- "$c_flag" $extra "$@"
        ;;
    *) set -- $extra "$@" ;;
    esac
fi
exec "$real" "$sub" "$@"
