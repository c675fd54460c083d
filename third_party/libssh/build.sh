#!/bin/bash
# Builds Debian's libssh, with psi's patch, as a static library.
#
#   third_party/libssh/build.sh OUTPUT_DIR        (psi's Makefile uses build/libssh)
#
# Fetches Debian's source package of libssh from the libssh 0.11 series of Debian 13 (trixie and
# trixie-security), the newest version the system's mirrors serve, never older than MIN_VERSION,
# through a private apt configuration under OUTPUT_DIR/apt whose deb-src entries are derived from
# the system's own apt sources (same mirrors and keys, the suites of trixie), so the system's apt
# configuration and state are never touched. Unpacks it with dpkg-source (Debian's patches
# applied), applies psi-extensions.patch, and installs OUTPUT_DIR/install/lib/libssh.a and
# OUTPUT_DIR/install/include/libssh/*.h. OUTPUT_DIR/stamp records what was built; while it
# matches, the script does nothing (and does not go online).
# Environment: LIBSSH_VERSION builds exactly that source version instead.
set -euo pipefail

die() { echo "libssh: error: $*" >&2; exit 1; }
say() { echo "libssh: $*"; }

# Why trixie's and not bookworm's: the mirrors serve no source for bookworm's current security
# update (0.10.6-0+deb12u3), and deb12u2 lacks its fixes. Debian 13's 0.11.5-0+deb13u1 carries the
# same fixes (upstream's 0.11.4 and 0.11.5 security releases) and builds on Debian 12 unchanged.
source_name=libssh
series=0.11
min_version=0.11.5-0+deb13u1
release=trixie

[ $# -eq 1 ] || die "usage: $0 OUTPUT_DIR"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../private-apt.bash"
patch_file=$here/psi-extensions.patch
[ -r "$patch_file" ] || die "missing $patch_file"
mkdir -p "$1" || die "cannot create $1"
out=$(cd "$1" && pwd)

for tool in apt-get apt-cache apt-config dpkg dpkg-source dpkg-buildflags cmake ninja cc patch sha256sum awk; do
    command -v "$tool" >/dev/null || die "'$tool' not found; install the build dependencies (make deps)"
done

stamp=$out/stamp
lib=$out/install/lib/libssh.a
key="$source_name ${LIBSSH_VERSION:-$series>=$min_version} patch=$(sha256sum <"$patch_file" | cut -c1-16) script=$(cat "${BASH_SOURCE[0]}" "$here/../private-apt.bash" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ -f "$lib" ] && [ "$(head -n 1 "$stamp")" = "$key" ]; then
    touch "$stamp"   # up to date; a newer mtime on the inputs must not make make call us again
    exit 0
fi
rm -f "$stamp"

logs=$out/logs
mkdir -p "$logs"
# run STEP CMD...: runs CMD with its output in logs/STEP.log; on failure shows the log's tail and stops.
run() {
    local step=$1 log=$logs/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "$step failed (log: $log)"
    fi
}

# --- Private apt configuration (third_party/private-apt.bash): deb-src entries of trixie ---------
private_apt_init "$out/apt" deb-src "$release"

# --- Choose the version, fetch and unpack --------------------------------------------------------
say "looking up $source_name $series in $release's sources (apt log: $logs/apt-update.log)"
# A source without deb-src indexes (a third-party repository) must not stop the build: apt-get
# update's status is ignored; the version lookup below says clearly if the package cannot be found.
apt_private apt-get -q update >"$logs/apt-update.log" 2>&1 ||
    say "warning: apt-get update reported errors (see $logs/apt-update.log)"
listed=$(apt_private apt-cache showsrc --only-source "$source_name" 2>/dev/null | sed -n 's/^Version: //p' | sort -u)
if [ -n "${LIBSSH_VERSION:-}" ]; then
    version=$LIBSSH_VERSION
else
    version=
    for candidate in $listed; do
        upstream=${candidate#*:}
        upstream=${upstream%-*}
        [ "${upstream%.*}" = "$series" ] || continue
        dpkg --compare-versions "$candidate" ge "$min_version" || continue
        if [ -z "$version" ] || dpkg --compare-versions "$candidate" gt "$version"; then
            version=$candidate
        fi
    done
    [ -n "$version" ] || die "the system's mirrors list no source of $source_name $series at or above $min_version" \
        "in $release (versions listed: $(echo $listed | tr '\n' ' ')${listed:+; }log: $logs/apt-update.log)"
fi
upstream_version=${version#*:}
upstream_version=${upstream_version%-*}

say "fetching the source of $source_name $version"
src=$out/src
rm -rf "$src"
mkdir -p "$src"
if ! (cd "$src" && apt_private apt-get -q source --download-only "$source_name=$version") >"$logs/apt-source.log" 2>&1; then
    grep '^E:' "$logs/apt-source.log" | head -n 3 >&2 || true
    die "cannot download the source package $source_name $version from the system's mirrors" \
        "(versions listed: $(echo $listed | tr '\n' ' '); log: $logs/apt-source.log)"
fi
dscs=("$src/${source_name}"_*.dsc)
dsc=${dscs[0]}
[ -f "$dsc" ] || die "apt-get source downloaded no .dsc into $src"
tree=$src/$source_name-$upstream_version
# The .dsc's signature cannot be checked without debian-keyring (a warning); its hashes were
# checked by apt against the signed Release file.
run dpkg-source dpkg-source -x "$dsc" "$tree"
run patch patch -d "$tree" -p1 --forward --batch -i "$patch_file"

# --- Build -------------------------------------------------------------------------------------
# As Debian's debian/rules builds the OpenSSL flavour (libssh-4): its hardening build flags,
# zlib, OpenSSL; minus what psi does not need (GSSAPI, examples, tests, docs), static, plus
# the server side (psi's tests, and ssh_send_keepalive() lives in server.c).
say "building $source_name $upstream_version (static, patched; log: $logs/build.log)"
cmake_dir=$out/cmake
rm -rf "$cmake_dir" "$out/install"
cflags="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS) $(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)"
# libssh reads its socket MAX_BUF_SIZE bytes per poll round, 4 KiB by default: a tunnel moving
# gigabits then spends its time in poll and read. 64 KiB reads (the only other use of the
# constant is a bound on expanded option strings) cut those rounds 16-fold.
cflags="$cflags -DMAX_BUF_SIZE=65536"
run cmake env CFLAGS="$cflags" cmake -S "$tree" -B "$cmake_dir" -G Ninja -Wno-dev \
    -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_INSTALL_PREFIX="$out/install" \
    -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DBUILD_SHARED_LIBS=OFF \
    -DBUILD_STATIC_LIB=OFF \
    -DWITH_EXAMPLES=OFF \
    -DUNIT_TESTING=OFF \
    -DCLIENT_TESTING=OFF \
    -DSERVER_TESTING=OFF \
    -DWITH_BENCHMARKS=OFF \
    -DWITH_GSSAPI=OFF \
    -DWITH_GCRYPT=OFF \
    -DWITH_MBEDTLS=OFF \
    -DWITH_SERVER=ON \
    -DWITH_ZLIB=ON \
    -DWITH_SFTP=ON
# Ninja: CMake's ~100 configure checks take a third of the time they take with Makefiles.
# ninja has no jobserver client, so inside make it uses make's -jN (ninja's own default otherwise).
jobs=()
for word in ${MAKEFLAGS:-}; do
    case $word in
        -j[0-9]*) jobs=("$word") ;;
    esac
done
run build cmake --build "$cmake_dir" -- "${jobs[@]}"
run install cmake --install "$cmake_dir"
[ -f "$lib" ] || die "the build did not produce $lib"

printf '%s\n%s\n' "$key" "$version" >"$stamp"
say "installed $lib ($source_name $version)"
