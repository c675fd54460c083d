# shellcheck shell=bash
# Test network for psi, built from network namespaces and veth pairs:
#
#   [client] eth0 <-> rc [router] ri <-> eth0 [inet]
#
#   client eth0  192.168.77.10/24   fd77::10/64
#   router rc    192.168.77.1/24    fd77::1/64
#   router ri    198.51.100.1/24    2001:db8:100::1/64
#   inet   eth0  198.51.100.10/24   2001:db8:100::10/64
#
# Source this file, call lab_up, and lab_down when done (lab_down is
# idempotent and also cleans up after a lab_up that failed half way).
# Namespace names are unique per lab (psi<pid>r<random>-client, ...), so
# parallel runs never clash; a fixture that adds a namespace names it
# $LAB_PREFIX-<something>, and lab_down removes it with the others.  Needs root.

export LAB_CLIENT_IP4=192.168.77.10 LAB_CLIENT_IP6=fd77::10
export LAB_ROUTER_IP4=192.168.77.1 LAB_ROUTER_IP6=fd77::1
export LAB_ROUTER_INET_IP4=198.51.100.1 LAB_ROUTER_INET_IP6=2001:db8:100::1
export LAB_INET_IP4=198.51.100.10 LAB_INET_IP6=2001:db8:100::10

LAB_PROBE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/probe.py"
export LAB_PROBE

# --- building and tearing down ---------------------------------------------

lab_up() {
    if [ -n "${LAB_DIR:-}" ] && [ -d "$LAB_DIR" ]; then
        echo "lab_up: lab $LAB_PREFIX is already up" >&2
        return 1
    fi
    lab__pick_names
    LAB_DIR=$(mktemp -d /tmp/psi-lab.XXXXXX) || return 1
    export LAB_DIR
    if ! lab__build; then
        echo "lab_up: building lab $LAB_PREFIX failed, tearing it down" >&2
        lab_down
        return 1
    fi
}

lab_down() {
    [ -n "${LAB_PREFIX:-}" ] || return 0
    local ns
    lab__kill_all
    for ns in $(lab__namespaces); do
        ip netns delete "$ns" 2>/dev/null || true
    done
    for ns in /etc/netns/"$LAB_PREFIX"-*; do
        rm -rf "$ns"
    done
    case "${LAB_DIR:-}" in
        /tmp/psi-lab.*) rm -rf "$LAB_DIR" ;;
    esac
    unset LAB_DIR
    return 0
}

lab__pick_names() {
    while :; do
        LAB_PREFIX="psi$$r$RANDOM"
        [ -e "/run/netns/$LAB_PREFIX-client" ] || break
    done
    LAB_CLIENT=$LAB_PREFIX-client
    LAB_ROUTER=$LAB_PREFIX-router
    LAB_INET=$LAB_PREFIX-inet
    export LAB_PREFIX LAB_CLIENT LAB_ROUTER LAB_INET
}

# Every namespace of this lab: the three of lab_up and any a fixture added
# (the "-" keeps psi1r2- from matching psi1r23-).
lab__namespaces() {
    local path
    for path in /run/netns/"$LAB_PREFIX"-*; do
        [ -e "$path" ] && echo "${path##*/}"
    done
    return 0
}

lab__build() {
    lab__add_namespaces &&
        lab__add_links &&
        lab__add_addresses &&
        lab__add_routes &&
        lab__wait_for 10 lab__ipv6_settled &&
        lab__wait_for 10 lab__inet_reachable
}

lab__add_namespaces() {
    local ns
    for ns in "$LAB_CLIENT" "$LAB_ROUTER" "$LAB_INET"; do
        lab__add_namespace "$ns" || return 1
    done
    ip netns exec "$LAB_ROUTER" sysctl -qw net.ipv4.ip_forward=1 \
        net.ipv6.conf.all.forwarding=1
}

lab__add_namespace() { # NS
    local ns=$1
    ip netns add "$ns" || return 1
    # Own resolv.conf, so "ip netns exec" never hands out the host's.
    mkdir -p "/etc/netns/$ns" &&
        echo "nameserver $LAB_ROUTER_IP4" >"/etc/netns/$ns/resolv.conf" &&
        ip -n "$ns" link set lo up || return 1
    # Link-local addresses would otherwise sit in DAD for ~2s and
    # send DAD probes into early captures.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
        net.ipv6.conf.default.accept_dad=0
}

# veths are created inside the namespaces, so their names never touch the host.
lab__add_links() {
    ip -n "$LAB_CLIENT" link add eth0 type veth peer name rc netns "$LAB_ROUTER" &&
        ip -n "$LAB_INET" link add eth0 type veth peer name ri netns "$LAB_ROUTER" &&
        ip -n "$LAB_CLIENT" link set eth0 up &&
        ip -n "$LAB_ROUTER" link set rc up &&
        ip -n "$LAB_ROUTER" link set ri up &&
        ip -n "$LAB_INET" link set eth0 up
}

lab__add_addresses() {
    lab__add_address "$LAB_CLIENT" eth0 "$LAB_CLIENT_IP4/24" "$LAB_CLIENT_IP6/64" &&
        lab__add_address "$LAB_ROUTER" rc "$LAB_ROUTER_IP4/24" "$LAB_ROUTER_IP6/64" &&
        lab__add_address "$LAB_ROUTER" ri "$LAB_ROUTER_INET_IP4/24" "$LAB_ROUTER_INET_IP6/64" &&
        lab__add_address "$LAB_INET" eth0 "$LAB_INET_IP4/24" "$LAB_INET_IP6/64"
}

lab__add_address() { # NS DEV IP4/LEN IP6/LEN
    ip -n "$1" addr add "$3" dev "$2" &&
        ip -n "$1" addr add "$4" dev "$2" nodad
}

lab__add_routes() {
    ip -n "$LAB_CLIENT" route add default via "$LAB_ROUTER_IP4" &&
        ip -n "$LAB_CLIENT" -6 route add default via "$LAB_ROUTER_IP6" &&
        ip -n "$LAB_INET" route add default via "$LAB_ROUTER_INET_IP4" &&
        ip -n "$LAB_INET" -6 route add default via "$LAB_ROUTER_INET_IP6"
}

lab__ipv6_settled() {
    local ns
    for ns in "$LAB_CLIENT" "$LAB_ROUTER" "$LAB_INET"; do
        [ -z "$(ip -n "$ns" -6 addr show tentative)" ] || return 1
    done
}

lab__inet_reachable() {
    lab_client ping -q -c1 -W1 "$LAB_INET_IP4" >/dev/null 2>&1 &&
        lab_client ping -q -c1 -W1 "$LAB_INET_IP6" >/dev/null 2>&1
}

# The client's uplink replaced, as when a laptop moves from cable to Wi-Fi: a new link, wlan0
# on 10.99.0.0/24 through the router's rw (lab_add_new_uplink, so that rw can be captured from
# the start), then eth0 goes down and wlan0 carries the default route (lab_switch_uplink).
LAB_NEW_UPLINK_IP4=10.99.0.10
lab_add_new_uplink() {
    ip -n "$LAB_CLIENT" link add wlan0 type veth peer name rw netns "$LAB_ROUTER" &&
        lab_router ip addr add 10.99.0.1/24 dev rw &&
        lab_router ip link set rw up
}

lab_switch_uplink() {
    lab_client ip link set eth0 down &&
        lab_client ip addr add "$LAB_NEW_UPLINK_IP4/24" dev wlan0 &&
        lab_client ip link set wlan0 up &&
        lab_client ip route replace default via 10.99.0.1 dev wlan0
}

# The lab's own uplink back, for the tests after this one.
lab_restore_uplink() {
    lab_client ip link del wlan0 &&
        lab_client ip link set eth0 up &&
        lab_client ip addr replace "$LAB_CLIENT_IP6/64" dev eth0 nodad &&
        lab_client ip route replace default via "$LAB_ROUTER_IP4" dev eth0 &&
        lab_client ip -6 route replace default via "$LAB_ROUTER_IP6" dev eth0
}

# IPv6 back on in the client after a test disabled it (which removed its addresses).
lab_enable_client_ipv6() {
    lab_client sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 &&
        lab_client ip addr replace "$LAB_CLIENT_IP6/64" dev eth0 nodad &&
        lab_client ip -6 route replace default via "$LAB_ROUTER_IP6" dev eth0
}

# --- running things in the lab ---------------------------------------------

lab_client() { ip netns exec "$LAB_CLIENT" "$@"; }
lab_router() { ip netns exec "$LAB_ROUTER" "$@"; }
lab_inet() { ip netns exec "$LAB_INET" "$@"; }

# Run CMD in the client namespace as numeric UID (gid = UID), no
# supplementary groups, no capabilities.
lab_as() { # UID CMD...
    local uid=$1
    shift
    lab__unprivileged "$uid" "$uid" "$@"
}

# Same with a user name; the group is the user's primary group.
lab_as_user() { # NAME CMD...
    local user=$1 gid
    shift
    gid=$(id -g "$user") || return 1
    lab__unprivileged "$user" "$gid" "$@"
}

lab__unprivileged() { # USER GROUP CMD...
    local user=$1 group=$2
    shift 2
    lab_client setpriv --reuid="$user" --regid="$group" --clear-groups \
        --inh-caps=-all --bounding-set=-all -- "$@"
}

# --- listeners in inet -------------------------------------------------------

# TCP on PORT at both inet addresses; every connection gets "hello" and is closed.
lab_listen_tcp() { # PORT
    local port=$1
    lab__spawn "$LAB_INET" "tcp4-$port" socat \
        "TCP4-LISTEN:$port,bind=$LAB_INET_IP4,reuseaddr,fork" SYSTEM:"echo hello" &&
        lab__spawn "$LAB_INET" "tcp6-$port" socat \
            "TCP6-LISTEN:$port,bind=[$LAB_INET_IP6],ipv6only=1,reuseaddr,fork" SYSTEM:"echo hello" &&
        lab__wait_for 5 lab__listening -t "$port"
}

# UDP echo on PORT at both inet addresses.
lab_listen_udp() { # PORT
    local port=$1
    lab__spawn "$LAB_INET" "udp4-$port" socat -T 1 \
        "UDP4-RECVFROM:$port,bind=$LAB_INET_IP4,fork" PIPE &&
        lab__spawn "$LAB_INET" "udp6-$port" socat -T 1 \
            "UDP6-RECVFROM:$port,bind=[$LAB_INET_IP6],ipv6only=1,fork" PIPE &&
        lab__wait_for 5 lab__listening -u "$port"
}

lab__listening() { # -t|-u PORT: both addresses bound?
    local sockets
    sockets=$(lab_inet ss -Hnl "$1" "sport = :$2" | wc -l)
    [ "$sockets" -ge 2 ]
}

# --- capture on the router's client-side interface --------------------------

# --immediate-mode matters: without it libpcap (TPACKET_V3) holds packets in
# a ring block for up to a second, and on SIGINT tcpdump exits without writing
# them, so a short capture comes out empty.
lab_capture_start() { # [BPF filter]
    lab_capture_stop
    rm -f "$LAB_DIR/capture.pcap"
    lab__spawn "$LAB_ROUTER" capture tcpdump --immediate-mode -U -n -i rc \
        -w "$LAB_DIR/capture.pcap" "$@" || return 1
    echo "$LAB_LAST_PID" >"$LAB_DIR/capture.pid"
    if ! lab__wait_for 5 grep -q "listening on" "$LAB_DIR/capture.err"; then
        echo "lab_capture_start: tcpdump did not start:" >&2
        cat "$LAB_DIR/capture.err" >&2
        return 1
    fi
}

lab_capture_stop() {
    [ -f "$LAB_DIR/capture.pid" ] || return 0
    lab__stop "$(cat "$LAB_DIR/capture.pid")" INT
    rm -f "$LAB_DIR/capture.pid"
}

# Number of captured packets matching the filter.  Fails (rather than
# printing 0) on a bad filter or while the capture is still running.
lab_capture_count() { # [BPF filter]
    local file=$LAB_DIR/capture.pcap out
    if [ -f "$LAB_DIR/capture.pid" ]; then
        echo "lab_capture_count: capture still running, call lab_capture_stop" >&2
        return 1
    fi
    if [ ! -s "$file" ]; then
        echo 0
        return 0
    fi
    out=$(tcpdump -r "$file" -n "$@" 2>"$LAB_DIR/count.err") || {
        cat "$LAB_DIR/count.err" >&2
        return 1
    }
    # One line per packet, each starting with its timestamp.
    grep -c '^[0-9]' <<<"$out" || true
}

# Packets that left the client, except ARP, NDP (icmp6 133-137), DHCP and
# DHCPv6.  ip6[40] is the ICMPv6 type when no extension header precedes it.
lab_leak_filter() {
    printf '%s' "(src host $LAB_CLIENT_IP4 or src host $LAB_CLIENT_IP6)" \
        " and not arp" \
        " and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137)" \
        " and not (udp port 67 or udp port 68)" \
        " and not (udp port 546 or udp port 547)"
    echo
}

# --- background processes -----------------------------------------------------

# Start CMD in namespace NS in the background.  Output goes to
# $LAB_DIR/NAME.out and .err; the PID is recorded for lab_down and left in
# LAB_LAST_PID.  fd 3 is closed because bats waits for it to close.
lab__spawn() { # NS NAME CMD...
    local ns=$1 name=$2
    shift 2
    ip netns exec "$ns" "$@" </dev/null >"$LAB_DIR/$name.out" 2>"$LAB_DIR/$name.err" 3>&- &
    LAB_LAST_PID=$!
    echo "$LAB_LAST_PID" >>"$LAB_DIR/pids"
}

# Stop every process the lab started: the recorded ones, then anything else
# still inside the lab namespaces (e.g. socat's forked children).
lab__kill_all() {
    local pid ns pids=()
    if [ -n "${LAB_DIR:-}" ] && [ -f "$LAB_DIR/pids" ]; then
        mapfile -t pids <"$LAB_DIR/pids"
    fi
    for ns in $(lab__namespaces); do
        mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null)
    done
    for pid in "${pids[@]}"; do
        lab__stop "$pid" TERM
    done
}

# Send SIG to PID if it still runs inside one of our namespaces (so a PID
# reused by an unrelated process is never touched), wait for it to end,
# SIGKILL after 3 seconds.
lab__stop() { # PID SIG
    local pid=$1 sig=$2
    if lab__ours "$pid"; then
        kill "-$sig" "$pid" 2>/dev/null || true
        if ! lab__wait_for 3 lab__gone "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            lab__wait_for 2 lab__gone "$pid" || true
        fi
    fi
    # Reap it if it is our child; never wait on one that still runs.
    if lab__gone "$pid"; then
        wait "$pid" 2>/dev/null || true
    fi
}

lab__ours() { # PID
    local ns
    ns=$(ip netns identify "$1" 2>/dev/null) || return 1
    [[ $ns == "$LAB_PREFIX"-* ]]
}

# Gone or a zombie: a zombie child of this shell still answers kill -0.
lab__gone() { # PID
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [ "${stat%% *}" = Z ]
}

# --- helpers --------------------------------------------------------------------

lab__wait_for() { # SECONDS CMD...: retry CMD every 0.1s until it succeeds
    local tries=$(($1 * 10))
    shift
    while ! "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.1
    done
}
