# shellcheck shell=bash
# A real systemd-resolved for the lab's client, on a private D-Bus system bus, in a mount
# namespace of the fixture's own, so that psi-tun takes its systemd-resolved path:
#
#   [client netns] + [private mount namespace]
#       /run                  tmpfs: the host's /run (its bus, resolved, networkd, nscd) unseen
#       /run/dbus             dbus-daemon, own config: system bus + resolve1's D-Bus policy
#       /run/systemd/resolve  systemd-resolved (DNS=, FallbackDNS= empty, no LLMNR/mDNS, no cache)
#       /etc/resolv.conf      "nameserver 127.0.0.53" (the stub, as psi-tun checks for)
#       /usr/bin/resolvectl   the package's (an overlay on /usr/bin), where psi-tun runs it
#       /sys                  the client namespace's sysfs, as ip netns exec mounts it
#
# systemd-resolved is never installed on the host (its postinst rewrites /etc/resolv.conf):
# the package matching the host's libsystemd-shared is fetched with apt-get download and
# unpacked into build/resolved/pkg the first time, then kept (again when libsystemd-shared
# changes). The user systemd-resolved becomes, systemd-resolve, is created if missing.
# Everything started runs in the client netns and the mount namespace and is stopped by PID.
# Source after lab.bash (lab.bash's lab__wait_for, lab__spawn); needs root.
#
#   resolved_fetch         the package only (resolved_up calls it)
#   resolved_up            the above, after lab_up; waits until resolved answers on the bus
#   resolved_down          stops every process in the mount namespace, removes it (idempotent)
#   resolved_restart       systemd-resolved stopped and started again
#   resolved_client CMD    CMD in the client netns and the mount namespace
#   resolved_as UID CMD    same as numeric UID (gid = UID), no groups, no capabilities
#   resolved_ctl ARGS      resolvectl ARGS there
#   resolved_psi ARGS      build/psi --config $LAB_DIR/psi.conf ARGS there (after psi_lab_up)
#   resolved_psi_tun ARGS  build/psi-tun --config $LAB_DIR/psi.conf ARGS there
#   resolved_uplink_dns_start  a resolver on the router (the uplink's, "the ISP's") that
#                          answers inet.psi.test with $RESOLVED_UPLINK_ANSWER; queries logged
#                          in $LAB_DIR/uplink-dns.out; resolved_uplink_queries counts them

RESOLVED_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RESOLVED_ROOT=$RESOLVED_REPO/build/resolved
RESOLVED_PKG=$RESOLVED_ROOT/pkg
RESOLVED_UPLINK_ANSWER=192.0.2.66
export RESOLVED_UPLINK_ANSWER

# --- the package ------------------------------------------------------------------

# The version to fetch: libsystemd-shared's, which the package's binaries link to.
resolved__wanted_version() {
    dpkg-query -W -f='${Version}' libsystemd-shared 2>/dev/null ||
        dpkg-query -W -f='${Version}' systemd 2>/dev/null
}

resolved__unpacked() { [ -x "$RESOLVED_PKG/lib/systemd/systemd-resolved" ] && [ -x "$RESOLVED_PKG/usr/bin/resolvectl" ]; }

# apt-get download into the current directory; its messages shown without addresses.
resolved__download() { # [=VERSION]
    apt-get download -q "systemd-resolved$1" >/dev/null 2>download.err && return 0
    sed -E 's#[a-z]+://[^ ]*#<address>#g' download.err >&2
    return 1
}

resolved_fetch() {
    local wanted
    wanted=$(resolved__wanted_version) || wanted=
    if resolved__unpacked && [ "$(cat "$RESOLVED_PKG/.version" 2>/dev/null)" = "$wanted" ]; then
        return 0
    fi
    mkdir -p "$RESOLVED_ROOT" || return 1
    (
        flock 9 || exit 1
        if resolved__unpacked && [ "$(cat "$RESOLVED_PKG/.version" 2>/dev/null)" = "$wanted" ]; then
            exit 0
        fi
        work=$(mktemp -d "$RESOLVED_ROOT/fetch.XXXXXX") || exit 1
        trap 'rm -rf "$work"' EXIT
        # apt downloads as its sandbox user where it may write.
        if getent passwd _apt >/dev/null; then chown _apt "$work"; fi
        cd "$work" || exit 1
        if ! { [ -n "$wanted" ] && resolved__download "=$wanted"; } && ! resolved__download ""; then
            echo "resolved_fetch: apt-get download systemd-resolved failed; trying after apt-get update" >&2
            apt-get update -q >/dev/null 2>&1
            if ! { [ -n "$wanted" ] && resolved__download "=$wanted"; } && ! resolved__download ""; then
                if resolved__unpacked; then
                    echo "resolved_fetch: keeping the unpacked $(cat "$RESOLVED_PKG/.version" 2>/dev/null)" >&2
                    exit 0
                fi
                echo "resolved_fetch: cannot download systemd-resolved" >&2
                exit 1
            fi
        fi
        deb=$(ls systemd-resolved_*.deb) && dpkg-deb -x "$deb" pkg || exit 1
        dpkg-deb -f "$deb" Version >pkg/.version || exit 1
        if [ ! -x pkg/lib/systemd/systemd-resolved ] || [ ! -x pkg/usr/bin/resolvectl ]; then
            echo "resolved_fetch: $deb has no systemd-resolved or resolvectl where expected" >&2
            exit 1
        fi
        [ -z "$wanted" ] || [ "$(cat pkg/.version)" = "$wanted" ] ||
            echo "resolved_fetch: systemd-resolved $(cat pkg/.version) unpacked, libsystemd-shared is $wanted" >&2
        rm -rf "$RESOLVED_PKG" && mv pkg "$RESOLVED_PKG"
    ) 9>"$RESOLVED_ROOT/fetch.lock"
}

# The user systemd-resolved becomes, as the package's sysusers.d file makes it.
resolved__add_user() {
    getent passwd systemd-resolve >/dev/null && return 0
    useradd --system --user-group --no-create-home --home-dir / --shell /usr/sbin/nologin \
        --comment "systemd Resolver" systemd-resolve
}

# --- building and tearing down ------------------------------------------------------

resolved_up() {
    if [ -z "${LAB_DIR:-}" ] || [ ! -d "$LAB_DIR" ]; then
        echo "resolved_up: no lab: call lab_up (or psi_lab_up) first" >&2
        return 1
    fi
    if [ -n "${RESOLVED_DIR:-}" ] && [ -d "$RESOLVED_DIR" ]; then
        echo "resolved_up: already up in $RESOLVED_DIR" >&2
        return 1
    fi
    resolved_fetch && resolved__add_user || return 1
    RESOLVED_DIR=$LAB_DIR/resolved
    RESOLVED_NS=$RESOLVED_DIR/ns/mnt
    export RESOLVED_DIR RESOLVED_NS
    if ! resolved__build; then
        echo "resolved_up: failed; resolved's and dbus's messages:" >&2
        cat "$LAB_DIR/resolved.err" "$LAB_DIR/dbus.err" >&2 2>/dev/null
        resolved_down
        return 1
    fi
}

resolved__build() {
    mkdir -p "$RESOLVED_DIR/ns" "$RESOLVED_DIR/bin" &&
        cp "$RESOLVED_PKG/usr/bin/resolvectl" "$RESOLVED_DIR/bin/" &&
        resolved__write_files &&
        resolved__make_namespace &&
        resolved__mount &&
        resolved__start_daemons
}

resolved__write_files() {
    printf 'nameserver 127.0.0.53\noptions edns0 trust-ad\n' >"$RESOLVED_DIR/resolv.conf" &&
        cat >"$RESOLVED_DIR/resolved.conf" <<'CONF' &&
# Only what psi-tun and the tests configure per link: no global or fallback servers, no
# multicast protocols, no cache (every query goes out, so a capture sees it).
[Resolve]
DNS=
FallbackDNS=
Domains=
LLMNR=no
MulticastDNS=no
DNSSEC=no
DNSOverTLS=no
Cache=no
DNSStubListener=yes
CONF
        cat >"$RESOLVED_DIR/dbus.conf" <<CONF &&
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- The lab's system bus: the stock system bus policy, no activation, resolve1's policy. -->
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <include>$RESOLVED_PKG/usr/share/dbus-1/system.d/org.freedesktop.resolve1.conf</include>
</busconfig>
CONF
        chmod 644 "$RESOLVED_DIR/resolv.conf" "$RESOLVED_DIR/resolved.conf" "$RESOLVED_DIR/dbus.conf"
}

# A persistent mount namespace, bound on a file: unshare(1) wants that file on a private mount.
resolved__make_namespace() {
    mount --bind "$RESOLVED_DIR/ns" "$RESOLVED_DIR/ns" &&
        mount --make-private "$RESOLVED_DIR/ns" &&
        touch "$RESOLVED_NS" &&
        unshare --mount="$RESOLVED_NS" --propagation private true
}

# Inside the namespace (its mounts are private: nothing propagates to the host).
resolved__mount() {
    local resolv_conf
    # Where the host's /etc/resolv.conf leads (it may be a symlink into /run).
    resolv_conf=$(readlink -m /etc/resolv.conf) || return 1
    # shellcheck disable=SC2016 # expanded by the inner shell
    resolved_client /bin/sh -euc '
        dir=$1 resolv_conf=$2
        mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
        mkdir -p /run/dbus /run/systemd/resolved.conf.d
        cp "$dir/resolved.conf" /run/systemd/resolved.conf.d/psi-lab.conf
        umount -l /sys
        mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
        # resolvectl where psi-tun runs it: an overlay on /usr/bin (the host may have none), else
        # bound onto an existing /usr/bin/resolvectl.
        if ! mount -t overlay -o ro,lowerdir="$dir/bin:/usr/bin" overlay /usr/bin; then
            echo "resolved: no overlay on /usr/bin; binding resolvectl onto /usr/bin/resolvectl" >&2
            mount --bind "$dir/bin/resolvectl" /usr/bin/resolvectl
        fi
        case $resolv_conf in
            /run/*)
                mkdir -p "${resolv_conf%/*}"
                if [ "${resolv_conf%/*}" = /run/systemd/resolve ]; then
                    chown systemd-resolve:systemd-resolve /run/systemd/resolve
                fi
                cp "$dir/resolv.conf" "$resolv_conf" ;;
            *) mount --bind "$dir/resolv.conf" "$resolv_conf" ;;
        esac
    ' sh "$RESOLVED_DIR" "$resolv_conf"
}

resolved__start_daemons() {
    resolved__spawn dbus /usr/bin/dbus-daemon --config-file="$RESOLVED_DIR/dbus.conf" \
        --nofork --nopidfile --nosyslog || return 1
    RESOLVED_DBUS_PID=$RESOLVED_LAST_PID
    export RESOLVED_DBUS_PID
    lab__wait_for 10 resolved_client test -S /run/dbus/system_bus_socket || return 1
    resolved__start_resolved resolved
}

# systemd-resolved as it starts under systemd: as root, it becomes systemd-resolve itself,
# keeping CAP_NET_RAW and CAP_NET_BIND_SERVICE. Debug messages in $LAB_DIR/NAME.err.
resolved__start_resolved() { # NAME
    resolved__spawn "$1" env SYSTEMD_LOG_LEVEL=debug SYSTEMD_LOG_TARGET=console \
        "$RESOLVED_PKG/lib/systemd/systemd-resolved" || return 1
    RESOLVED_PID=$RESOLVED_LAST_PID
    export RESOLVED_PID
    if ! lab__wait_for 15 resolved__answers; then
        echo "resolved: systemd-resolved does not answer on the bus:" >&2
        resolved_ctl status >&2
        return 1
    fi
}

# systemd-resolved stopped and started again (as an upgrade of the package does); its
# messages from then on in $LAB_DIR/resolved-restarted.err.
resolved_restart() {
    local namespace
    namespace=$(resolved__namespace_id) || return 1
    resolved__stop "$RESOLVED_PID" "$namespace"
    resolved__start_resolved resolved-restarted
}

resolved__answers() {
    resolved_ctl status >/dev/null 2>&1 && resolved_client test -e /run/systemd/resolve/io.systemd.Resolve
}

resolved_down() {
    [ -n "${RESOLVED_DIR:-}" ] || return 0
    local namespace pid
    if namespace=$(resolved__namespace_id); then
        for pid in ${RESOLVED_PID:-} ${RESOLVED_DBUS_PID:-}; do
            resolved__stop "$pid" "$namespace"
        done
        # Anything else still inside (psi's processes after a failed test, say).
        for pid in $(resolved__pids_in "$namespace"); do
            resolved__stop "$pid" "$namespace"
        done
        umount "$RESOLVED_NS" 2>/dev/null
    fi
    if mountpoint -q "$RESOLVED_DIR/ns" 2>/dev/null; then umount "$RESOLVED_DIR/ns"; fi
    rm -rf "$RESOLVED_DIR"
    unset RESOLVED_DIR RESOLVED_NS RESOLVED_PID RESOLVED_DBUS_PID
    return 0
}

# "mnt:[inode]" of the namespace, as /proc/PID/ns/mnt reads; fails when there is none.
resolved__namespace_id() {
    mountpoint -q "$RESOLVED_NS" 2>/dev/null || return 1
    nsenter --mount="$RESOLVED_NS" readlink /proc/self/ns/mnt
}

resolved__pids_in() { # NAMESPACE_ID
    local link
    for link in /proc/[0-9]*/ns/mnt; do
        [ "$(readlink "$link" 2>/dev/null)" = "$1" ] || continue
        link=${link#/proc/}
        echo "${link%%/*}"
    done
}

# TERM (KILL after 3 seconds) to PID only while it runs inside the namespace.
resolved__stop() { # PID NAMESPACE_ID
    local pid=$1
    [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$2" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! lab__wait_for 3 lab__gone "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        lab__wait_for 2 lab__gone "$pid" || true
    fi
    if lab__gone "$pid"; then wait "$pid" 2>/dev/null || true; fi
}

# --- running things there ---------------------------------------------------------------

# The environment's bus addresses are dropped: the namespace's default socket is the bus.
resolved_client() {
    nsenter --mount="$RESOLVED_NS" --net="/run/netns/$LAB_CLIENT" -- \
        env -u DBUS_SYSTEM_BUS_ADDRESS -u NOTIFY_SOCKET "$@"
}

resolved_as() { # UID CMD...
    local uid=$1
    shift
    resolved_client setpriv --reuid="$uid" --regid="$uid" --clear-groups \
        --inh-caps=-all --bounding-set=-all -- "$@"
}

resolved_ctl() { resolved_client /usr/bin/resolvectl "$@"; }

resolved_psi() { resolved_client "$RESOLVED_REPO/build/psi" --config "$LAB_DIR/psi.conf" "$@"; }

resolved_psi_tun() { resolved_client "$RESOLVED_REPO/build/psi-tun" --config "$LAB_DIR/psi.conf" "$@"; }

# Like lab__spawn, in the namespace: nsenter execs (it forks only to enter a PID namespace), so
# the PID is the program's own.
resolved__spawn() { # NAME CMD...
    local name=$1
    shift
    nsenter --mount="$RESOLVED_NS" --net="/run/netns/$LAB_CLIENT" -- \
        env -u DBUS_SYSTEM_BUS_ADDRESS -u NOTIFY_SOCKET "$@" \
        </dev/null >"$LAB_DIR/$name.out" 2>"$LAB_DIR/$name.err" 3>&- &
    RESOLVED_LAST_PID=$!
    echo "$RESOLVED_LAST_PID" >>"$LAB_DIR/pids"
}

# The uplink's own resolver on the router, on both of its client-side addresses, with an
# answer for inet.psi.test that is not the tunnel's.
resolved_uplink_dns_start() {
    lab__spawn "$LAB_ROUTER" uplink-dns /usr/bin/python3 "$RESOLVED_REPO/tests/tools/dns_server.py" \
        --bind "$LAB_ROUTER_IP4" --bind "$LAB_ROUTER_IP6" --port 53 \
        --record "inet.psi.test=$RESOLVED_UPLINK_ANSWER" &&
        lab__wait_for 5 grep -q listening "$LAB_DIR/uplink-dns.out"
}

# Queries the uplink's resolver has seen so far.
resolved_uplink_queries() { grep -c '^query ' "$LAB_DIR/uplink-dns.out" || true; }
