# A private apt configuration that reaches another Debian release's archive through the system's
# own mirrors and keys, without touching the system's apt configuration, lists or packages.
# Sourced by the build scripts (third_party/libssh/build.sh, tests/peer/build.sh):
#
#   private_apt_init DIR TYPE RELEASE [SUITE]
#       DIR/apt.conf and DIR/sources.list*: the system's effective configuration (apt-config dump:
#       proxies, keyrings, Acquire options) minus the hooks apt-get would run, every directory apt
#       writes to moved into DIR. Each "deb" entry of the system's sources (one-line or deb822)
#       becomes a TYPE entry ("deb" or "deb-src"), options (signed-by, ...) kept. Without SUITE,
#       each suite of the system's release (bookworm, bookworm-security, ...) becomes the same
#       suite of RELEASE (trixie, trixie-security, ...); with SUITE (trixie-backports), only the
#       entries that list the system's main suite are kept, with SUITE as their only suite.
#   apt_private COMMAND...   runs COMMAND with that configuration (APT_CONFIG).
#
# APT_CONFIG is read before apt.conf.d, so pointing Dir::Etc::parts and ::main at empty places
# stops apt from reading the system's files a second time (and from running their hooks).
# The callers define die().

private_apt_init() {
    local dir=$1 type=$2 release=$3 only_suite=${4:-}
    private_apt_dir=$dir
    rm -rf "$dir"
    mkdir -p "$dir/sources.list.d" "$dir/apt.conf.d" "$dir/lists/partial" \
        "$dir/cache/archives/partial" "$dir/state" "$dir/log"
    : >"$dir/apt.conf.empty"
    {
        apt-config dump --no-empty 2>/dev/null |
            grep -v -E '^(APT::Update::(Pre|Post)-Invoke|DPkg::(Pre|Post)-Invoke|DPkg::Pre-Install-Pkgs|CommandLine::)' || true
        cat <<CONF
Dir::Etc::parts "$dir/apt.conf.d";
Dir::Etc::main "$dir/apt.conf.empty";
Dir::Etc::sourcelist "$dir/sources.list";
Dir::Etc::sourceparts "$dir/sources.list.d";
Dir::State "$dir/state";
Dir::State::lists "$dir/lists";
Dir::State::status "$dir/state/status";
Dir::Cache "$dir/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Log "$dir/log";
CONF
    } >"$dir/apt.conf"
    # An empty dpkg status: a download must not depend on (or be refused for) what is installed.
    : >"$dir/state/status"

    local codename system_list system_parts path
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "cannot read this system's release codename (VERSION_CODENAME in /etc/os-release)"
    eval "$(apt-config shell system_list Dir::Etc::sourcelist/f system_parts Dir::Etc::sourceparts/d)"
    local one_line=() deb822=()
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
    # suite_for(word): the suite an entry of the system's suite word becomes ("" drops it).
    local suite_rule='
        function suite_for(word) {
            if (only != "") return word == from ? only : ""
            if (word == from || index(word, from "-") == 1) return to substr(word, length(from) + 1)
            return word
        }'
    if [ ${#one_line[@]} -gt 0 ]; then
        awk -v from="$codename" -v to="$release" -v only="$only_suite" -v type="$type" "$suite_rule"'
             { sub(/#.*/, ""); $1 = $1 }
             $1 == "deb" || $1 == "deb-src" {
                 $1 = type
                 suite = 3
                 if ($2 ~ /^\[/) { while (suite <= NF && $(suite - 1) !~ /\]$/) suite++; suite++ }
                 $suite = suite_for($suite)
                 if ($suite != "") print
             }' "${one_line[@]}" | awk '!seen[$0]++' >"$dir/sources.list"
    else
        : >"$dir/sources.list"
    fi
    if [ ${#deb822[@]} -gt 0 ]; then
        awk -v from="$codename" -v to="$release" -v only="$only_suite" -v type="$type" "$suite_rule"'
             function flush() {
                 if (n && is_deb && has_suite) { if (out++) print ""; for (i = 1; i <= n; i++) print lines[i] }
                 n = 0; is_deb = 0; in_types = 0; has_suite = 0
             }
             FNR == 1 { flush() }
             /^#/ { next }
             /^[ \t]*$/ { flush(); next }
             /^[ \t]/ { if (!in_types) lines[++n] = $0; next }
             {
                 field = tolower($0); sub(/:.*/, "", field); in_types = (field == "types")
                 if (in_types) {
                     value = $0; sub(/^[^:]*:/, "", value)
                     if (value ~ /(^|[ \t])deb(-src)?([ \t]|$)/) { is_deb = 1; lines[++n] = "Types: " type }
                     next
                 }
                 if (field == "suites") {
                     count = split(substr($0, index($0, ":") + 1), words, /[ \t]+/)
                     line = "Suites:"
                     for (i = 1; i <= count; i++) {
                         if (words[i] == "") continue
                         word = suite_for(words[i])
                         if (word == "" || index(line " ", " " word " ")) continue
                         line = line " " word
                         has_suite = 1
                     }
                     lines[++n] = line
                     next
                 }
                 lines[++n] = $0
             }
             END { flush() }' "${deb822[@]}" >"$dir/sources.list.d/system.sources"
    fi
    [ -s "$dir/sources.list" ] || [ -s "$dir/sources.list.d/system.sources" ] ||
        die "no 'deb' entry for $codename found in the system's apt sources ($system_list, $system_parts)"
}

apt_private() { APT_CONFIG=$private_apt_dir/apt.conf "$@"; }
