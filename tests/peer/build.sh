#!/bin/bash
# Builds the real Psiphon peer for psi's tests and benchmarks: psiphond (Psiphon's server) and
# ConsoleClient (Psiphon's own client, the reference psi is measured against).
#
#   tests/peer/build.sh OUTPUT_DIR        (psi's Makefile: make peer, into build/peer)
#
# Source: the psiphon-tunnel-core checkout named by PSIPHON_TUNNEL_CORE (default: one in
# ../shared/psiphon-tunnel-core, where a build machine without the Internet keeps it); where it
# does not exist, a shallow clone of the pinned commit into OUTPUT_DIR/src (needs the Internet).
# Go: go.mod asks for Go 1.26, Debian 12 has 1.19. Debian's golang-1.26-go and golang-1.26-src
# from trixie-backports are downloaded through a private apt configuration derived from the
# system's sources (third_party/private-apt.bash) and unpacked into OUTPUT_DIR/go; nothing is
# installed on the system. The build is offline (vendor/, no module proxy, no toolchain download).
# OUTPUT_DIR/stamp records what was built; while the source and this script are the same, the
# script does nothing.
set -euo pipefail

die() { echo "peer: error: $*" >&2; exit 1; }
say() { echo "peer: $*"; }

pinned_commit=a70e0b58c68377dcdfd7b081c0054bf9c2aae1c8
upstream=https://github.com/Psiphon-Labs/psiphon-tunnel-core.git
go_series=1.26
go_release=trixie
go_suite=trixie-backports

[ $# -eq 1 ] || die "usage: $0 OUTPUT_DIR"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/third_party/private-apt.bash"
mkdir -p "$1" || die "cannot create $1"
out=$(cd "$1" && pwd)
logs=$out/logs
mkdir -p "$logs"

run() {
    local step=$1 log=$logs/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "$step failed (log: $log)"
    fi
}

# --- The source -------------------------------------------------------------------------------
source_tree=${PSIPHON_TUNNEL_CORE:-$repo/../shared/psiphon-tunnel-core}
if [ -f "$source_tree/go.mod" ] && [ -d "$source_tree/Server" ]; then
    source_tree=$(cd "$source_tree" && pwd)
elif [ -f "$out/src/go.mod" ] && [ "$(git -C "$out/src" rev-parse HEAD 2>/dev/null)" = "$pinned_commit" ]; then
    source_tree=$out/src
else
    command -v git >/dev/null || die "no psiphon-tunnel-core tree at $source_tree and no git to clone one (set PSIPHON_TUNNEL_CORE)"
    say "no psiphon-tunnel-core tree at $source_tree; cloning commit ${pinned_commit:0:12} into $out/src"
    rm -rf "$out/src"
    if ! { git init -q "$out/src" &&
           git -C "$out/src" fetch -q --depth 1 "$upstream" "$pinned_commit" &&
           git -C "$out/src" checkout -q FETCH_HEAD; } >"$logs/clone.log" 2>&1; then
        die "no psiphon-tunnel-core tree at $source_tree, and cloning $upstream failed (no Internet?); set PSIPHON_TUNNEL_CORE to a copy of commit $pinned_commit"
    fi
    source_tree=$out/src
fi
# The source's identity: its commit where it is a git checkout, else a hash of every file.
if identity=$(git -C "$source_tree" rev-parse HEAD 2>/dev/null) && [ -z "$(git -C "$source_tree" status --porcelain 2>/dev/null | head -n 1)" ]; then
    identity="commit $identity"
else
    identity="tree $(cd "$source_tree" && find . -type f ! -path './.git/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
fi

stamp=$out/stamp
key="psiphon-tunnel-core $identity script=$(cat "${BASH_SOURCE[0]}" "$repo/third_party/private-apt.bash" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ -x "$out/psiphond" ] && [ -x "$out/ConsoleClient" ] && [ "$(head -n 1 "$stamp")" = "$key" ]; then
    touch "$stamp"
    exit 0
fi
rm -f "$stamp"

# --- Go from trixie-backports, unpacked, never installed ---------------------------------------
goroot=$out/go/usr/lib/go-$go_series
if ! [ -x "$goroot/bin/go" ] || ! "$goroot/bin/go" version 2>/dev/null | grep -q "go$go_series"; then
    for tool in apt-get apt-config dpkg-deb; do
        command -v "$tool" >/dev/null || die "'$tool' not found"
    done
    say "fetching golang-$go_series-go and golang-$go_series-src from $go_suite (log: $logs/apt-update.log)"
    private_apt_init "$out/apt" deb "$go_release" "$go_suite"
    apt_private apt-get -q update >"$logs/apt-update.log" 2>&1 ||
        say "warning: apt-get update reported errors (see $logs/apt-update.log)"
    rm -rf "$out/debs" "$out/go"
    mkdir -p "$out/debs"
    if ! (cd "$out/debs" && apt_private apt-get -q download "golang-$go_series-go" "golang-$go_series-src") >"$logs/apt-download.log" 2>&1; then
        grep '^E:' "$logs/apt-download.log" | head -n 3 >&2 || true
        die "cannot download golang-$go_series-go and golang-$go_series-src from $go_suite through the system's mirrors (log: $logs/apt-download.log)"
    fi
    for deb in "$out"/debs/*.deb; do
        run unpack dpkg-deb -x "$deb" "$out/go"
    done
    [ -x "$goroot/bin/go" ] || die "the Go packages did not unpack to $goroot/bin/go"
fi

# --- Build, offline ----------------------------------------------------------------------------
export GOROOT=$goroot GOTOOLCHAIN=local GOFLAGS=-mod=vendor GOPROXY=off GOSUMDB=off \
    GOCACHE=$out/cache GOPATH=$out/gopath GOTELEMETRY=off CGO_ENABLED=1
jobs=()
for word in ${MAKEFLAGS:-}; do
    case $word in
        -j[0-9]*) jobs=(-p "${word#-j}") ;;
    esac
done
say "building psiphond and ConsoleClient with $("$goroot/bin/go" version | cut -d' ' -f3) from $source_tree (log: $logs/build.log)"
build() {
    (cd "$source_tree/Server" && "$goroot/bin/go" build "${jobs[@]}" -trimpath -o "$out/psiphond.new" .) &&
    (cd "$source_tree/ConsoleClient" && "$goroot/bin/go" build "${jobs[@]}" -trimpath -o "$out/ConsoleClient.new" .)
}
run build build
mv -f "$out/psiphond.new" "$out/psiphond"
mv -f "$out/ConsoleClient.new" "$out/ConsoleClient"
printf '%s\n%s\n' "$key" "$source_tree" >"$stamp"
say "built $out/psiphond and $out/ConsoleClient"
