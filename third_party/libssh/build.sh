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
patch_file=$here/psi-extensions.patch
[ -r "$patch_file" ] || die "missing $patch_file"
mkdir -p "$1" || die "cannot create $1"
out=$(cd "$1" && pwd)

for tool in apt-get apt-cache apt-config dpkg dpkg-source dpkg-buildflags cmake ninja cc patch sha256sum awk; do
    command -v "$tool" >/dev/null || die "'$tool' not found; install the build dependencies (make deps)"
done

stamp=$out/stamp
lib=$out/install/lib/libssh.a
key="$source_name ${LIBSSH_VERSION:-$series>=$min_version} patch=$(sha256sum <"$patch_file" | cut -c1-16) script=$(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-16)"
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

# --- Private apt configuration -----------------------------------------------------------------
# The system's effective configuration (apt-config dump: proxies, keyrings, Acquire options) minus
# the hooks that apt-get update would run, with every directory apt writes to moved into apt/.
# APT_CONFIG is read before apt.conf.d, so pointing Dir::Etc::parts and ::main at empty places stops
# apt from reading the system's files a second time (and from running their hooks).
apt_dir=$out/apt
rm -rf "$apt_dir"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/apt.conf.d" "$apt_dir/lists/partial" \
    "$apt_dir/cache/archives/partial" "$apt_dir/state" "$apt_dir/log"
: >"$apt_dir/apt.conf.empty"
{
    apt-config dump --no-empty 2>/dev/null |
        grep -v -E '^(APT::Update::(Pre|Post)-Invoke|DPkg::(Pre|Post)-Invoke|DPkg::Pre-Install-Pkgs|CommandLine::)' || true
    cat <<CONF
Dir::Etc::parts "$apt_dir/apt.conf.d";
Dir::Etc::main "$apt_dir/apt.conf.empty";
Dir::Etc::sourcelist "$apt_dir/sources.list";
Dir::Etc::sourceparts "$apt_dir/sources.list.d";
Dir::State "$apt_dir/state";
Dir::State::lists "$apt_dir/lists";
Dir::Cache "$apt_dir/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Log "$apt_dir/log";
CONF
} >"$apt_dir/apt.conf"

# deb-src entries derived from the system's sources: every "deb" entry (one-line format) or stanza
# (deb822 format) becomes the matching "deb-src" one, options (signed-by, ...) kept, and each
# suite of the system's release (bookworm, bookworm-security, ...) becomes the same suite of
# $release (trixie, trixie-security, ...). Files are read as apt reads them:
# Dir::Etc::sourcelist, then *.list and *.sources in Dir::Etc::sourceparts.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || die "cannot read this system's release codename (VERSION_CODENAME in /etc/os-release)"
eval "$(apt-config shell system_list Dir::Etc::sourcelist/f system_parts Dir::Etc::sourceparts/d)"
one_line=()
deb822=()
[ -f "${system_list:-}" ] && one_line+=("$system_list")
if [ -d "${system_parts:-}" ]; then
    for path in "$system_parts"/*; do
        if ! [[ ${path##*/} =~ ^[A-Za-z0-9_.-]+\.(list|sources)$ ]] || ! [ -f "$path" ]; then
            continue
        fi
        case $path in
            *.list) one_line+=("$path") ;;
            *.sources) deb822+=("$path") ;;
        esac
    done
fi
if [ ${#one_line[@]} -gt 0 ]; then
    awk -v from="$codename" -v to="$release" '
         { sub(/#.*/, ""); $1 = $1 }
         $1 == "deb" || $1 == "deb-src" {
             $1 = "deb-src"
             suite = 3
             if ($2 ~ /^\[/) { while (suite <= NF && $(suite - 1) !~ /\]$/) suite++; suite++ }
             if (index($suite, from) == 1 && (length($suite) == length(from) || substr($suite, length(from) + 1, 1) == "-"))
                 $suite = to substr($suite, length(from) + 1)
             print
         }' "${one_line[@]}" | awk '!seen[$0]++' >"$apt_dir/sources.list"
else
    : >"$apt_dir/sources.list"
fi
if [ ${#deb822[@]} -gt 0 ]; then
    awk -v from="$codename" -v to="$release" '
         function flush() {
             if (n && is_deb) { if (out++) print ""; for (i = 1; i <= n; i++) print lines[i] }
             n = 0; is_deb = 0; in_types = 0
         }
         FNR == 1 { flush() }
         /^#/ { next }
         /^[ \t]*$/ { flush(); next }
         /^[ \t]/ { if (!in_types) lines[++n] = $0; next }
         {
             field = tolower($0); sub(/:.*/, "", field); in_types = (field == "types")
             if (in_types) {
                 value = $0; sub(/^[^:]*:/, "", value)
                 if (value ~ /(^|[ \t])deb(-src)?([ \t]|$)/) { is_deb = 1; lines[++n] = "Types: deb-src" }
                 next
             }
             if (field == "suites") {
                 count = split(substr($0, index($0, ":") + 1), words, /[ \t]+/)
                 line = "Suites:"
                 for (i = 1; i <= count; i++) {
                     if (words[i] == "") continue
                     if (words[i] == from || index(words[i], from "-") == 1) words[i] = to substr(words[i], length(from) + 1)
                     line = line " " words[i]
                 }
                 lines[++n] = line
                 next
             }
             lines[++n] = $0
         }
         END { flush() }' "${deb822[@]}" >"$apt_dir/sources.list.d/system.sources"
fi
[ -s "$apt_dir/sources.list" ] || [ -s "$apt_dir/sources.list.d/system.sources" ] ||
    die "no 'deb' entry found in the system's apt sources ($system_list, $system_parts)"

apt_private() { APT_CONFIG=$apt_dir/apt.conf "$@"; }

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
