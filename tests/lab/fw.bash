# shellcheck shell=bash
# Helpers for the kill switch suites: psi-fw in the lab's client namespace, the tunnel
# stand-in, and the users of docs/kill-switch.md §6 (psiphon-user and desktop user uid 2000).

# shellcheck source=tests/lab/lab.bash
source "$(dirname "${BASH_SOURCE[0]}")/lab.bash"
if [ -n "${BATS_TEST_DIRNAME:-}" ]; then
    load '/usr/lib/bats/bats-support/load'
    load '/usr/lib/bats/bats-assert/load'
fi

PSI_FW="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/psi-fw"
TUN_SINK="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/tun_sink.py"
LINK_MESSAGES="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/link_messages.py"
DESKTOP_UID=2000
FLOOD_PORT=9998
TUNNEL_USER=psiphon-user

# The lab with a config of its own (mode 600, as psi-fw demands) and a persistent TUN
# owned by the tunnel user, as psi-tun up will leave it.
fw_lab_up() {
    lab_up
    printf '{\n  "TunnelUser": "%s"\n}\n' "$TUNNEL_USER" >"$LAB_DIR/psi.conf"
    chmod 600 "$LAB_DIR/psi.conf"
    fw_add_tun
}

fw_add_tun() {
    lab_client ip tuntap add dev PsiphonTUN mode tun user "$TUNNEL_USER" group psiphon-group
    lab_client ip addr add 10.200.3.1/24 dev PsiphonTUN
    lab_client ip addr add fd42:42:42::1/64 dev PsiphonTUN nodad
    lab_client ip link set PsiphonTUN up
}

psi_fw() { lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" "$@"; }

# The tunnel stand-in: psiphon-user attaches to its TUN with no capability and logs
# every packet routed into it.
# /dev/net/tun is opened by root inside the namespace (the device is looked up in the
# namespace of whoever opened it), as a supervisor would where the node is not world-usable.
tunnel_start() {
    lab__spawn "$LAB_CLIENT" tunnel sh -c 'exec 4<>/dev/net/tun; exec setpriv --reuid="$1" \
        --regid=psiphon-group --clear-groups --inh-caps=-all --bounding-set=-all \
        /usr/bin/python3 "$2" PsiphonTUN --fd 4' sh "$TUNNEL_USER" "$TUN_SINK"
    TUNNEL_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q attached "$LAB_DIR/tunnel.out"
}

# Sends everyone's traffic into the TUN, as psi-tun's routing will: a table for all but
# the tunnel user.
tunnel_routes() {
    local uid
    uid=$(id -u "$TUNNEL_USER")
    for family in -4 -6; do
        lab_client ip "$family" route add default dev PsiphonTUN table 5053
        lab_client ip "$family" rule add not uidrange "$uid-$uid" lookup 5053 priority 100
    done
}

tunnel_routes_remove() {
    local family
    for family in -4 -6; do
        while lab_client ip "$family" rule del priority 100 2>/dev/null; do :; done
        lab_client ip "$family" route flush table 5053 2>/dev/null || true
    done
}

tunnel_stop() {
    [ -n "${TUNNEL_PID:-}" ] && lab__stop "$TUNNEL_PID" TERM
    TUNNEL_PID=
}

# Takes the uplink down and up, as a suspend or a cable would; the kernel drops its IPv6
# addresses on the way, so they and the default routes are put back as DHCP/RA would.
uplink_bounce() {
    lab_client ip link set eth0 down
    sleep "${1:-0.3}"
    lab_client ip link set eth0 up
    lab_client ip addr replace "$LAB_CLIENT_IP6/64" dev eth0 nodad
    lab_client ip route replace default via "$LAB_ROUTER_IP4" dev eth0
    lab_client ip -6 route replace default via "$LAB_ROUTER_IP6" dev eth0
}

# Runs a probe as a uid in the client namespace; prints the probe's one word.
probe_as() { # UID|NAME probe-args...
    local who=$1
    shift
    if [[ $who =~ ^[0-9]+$ ]]; then
        lab_as "$who" /usr/bin/python3 "$LAB_PROBE" "$@"
    elif [ "$who" = root ]; then
        lab_client /usr/bin/python3 "$LAB_PROBE" "$@"
    else
        lab_as_user "$who" /usr/bin/python3 "$LAB_PROBE" "$@"
    fi
}

# Where floods go: one socket that swallows everything (an echo server forking per
# datagram would still be busy with the last flood when the next test probes it).
flood_sink_start() {
    lab__spawn "$LAB_INET" flood-sink socat -u "UDP4-RECV:$FLOOD_PORT,bind=$LAB_INET_IP4" /dev/null
    lab__wait_for 5 lab__listening_once -u "$FLOOD_PORT"
}

lab__listening_once() { [ "$(lab_inet ss -Hnl "$1" "sport = :$2" | wc -l)" -ge 1 ]; }

# A UDP flood from uid 2000 in the background; its report lands in flood.out.
flood_start() { # SECONDS [target port]
    lab__spawn "$LAB_CLIENT" flood setpriv --reuid="$DESKTOP_UID" --regid="$DESKTOP_UID" \
        --clear-groups --inh-caps=-all --bounding-set=-all \
        /usr/bin/python3 "$LAB_PROBE" flood "$LAB_INET_IP4" "${2:-$FLOOD_PORT}" --seconds "$1"
    FLOOD_PID=$LAB_LAST_PID
}

flood_wait() {
    lab__wait_for 60 lab__gone "$FLOOD_PID"
    wait "$FLOOD_PID" 2>/dev/null || true
}

# Control run: with the kill switch removed, a short flood from uid 2000 is seen on the wire.
assert_flood_seen_without_kill_switch() {
    psi_fw down
    lab_capture_start
    flood_start 1
    flood_wait
    lab_capture_stop
    [ "$(leaked_packets)" -gt 0 ] || fail "control: the flood was not seen without the kill switch"
}

# Captured packets that left the client and were not sent by the tunnel user's probes
# (which the tests direct at port 7000 only).
leaked_packets() {
    lab_capture_count "$(lab_leak_filter) and not port 7000"
}

# Probes every family and protocol to inet and the LAN as WHO: each must be stopped
# locally at once (no "timeout", no answer).
assert_all_rejected() { # WHO [--bind-dev IF]
    local who=$1 target word ping_device=()
    shift
    [ $# -eq 2 ] && ping_device=(-I "$2")
    for target in "$LAB_INET_IP4" "$LAB_INET_IP6" "$LAB_ROUTER_IP4" "$LAB_ROUTER_IP6"; do
        word=$(probe_as "$who" tcp "$target" 8080 --timeout 2 "$@")
        [[ $word =~ ^(refused|prohibited|unreachable)$ ]] || fail "$who tcp to $target: $word"
        word=$(probe_as "$who" udp "$target" 9999 --timeout 2 "$@")
        [[ $word =~ ^(eperm|prohibited|unreachable)$ ]] || fail "$who udp to $target: $word"
        word=$(probe_as "$who" dns "$target" --timeout 2 "$@")
        [[ $word =~ ^(eperm|prohibited|unreachable)$ ]] || fail "$who dns to $target: $word"
    done
    if [ "$who" = root ]; then
        run lab_client ping -c1 -W1 "${ping_device[@]}" "$LAB_INET_IP4"
        assert_failure
        run lab_client ping -6 -c1 -W1 "${ping_device[@]}" "$LAB_INET_IP6"
        assert_failure
    fi
}

# The same probes without a kill switch reach the wire: the control run.
assert_all_answered() { # WHO
    local word
    word=$(probe_as "$1" tcp "$LAB_INET_IP4" 8080 --timeout 2)
    [ "$word" = connected ] || fail "control: $1 tcp v4: $word"
    word=$(probe_as "$1" tcp "$LAB_INET_IP6" 8080 --timeout 2)
    [ "$word" = connected ] || fail "control: $1 tcp v6: $word"
    word=$(probe_as "$1" udp "$LAB_INET_IP4" 9999 --timeout 2)
    [ "$word" = reply ] || fail "control: $1 udp v4: $word"
}

# --- DHCP and NDP look-alikes, counted where they arrive ------------------------------------

# Datagrams from port 68 that reach port 67 in inet (at its address) and in the router (at
# any address: its own, and broadcasts on the link), one line each in NAME.out.
dhcp_receivers_start() {
    lab__spawn "$LAB_INET" inet-dhcp socat -u "UDP4-RECV:67,bind=$LAB_INET_IP4" STDOUT &&
        lab__spawn "$LAB_ROUTER" router-dhcp socat -u UDP4-RECV:67 STDOUT &&
        lab__wait_for 5 lab__listening_once -u 67
}

dhcp_received() { grep -ac "psi-link-message dhcp" "$LAB_DIR/$1.out" || true; } # inet-dhcp|router-dhcp

# For lab__wait_for: the number that CMD prints is at least N.
at_least() { [ "$("${@:2}")" -ge "$1" ]; } # N CMD...

router_listening() { [ "$(lab_router ss -Hnlu "sport = :$1" | wc -l)" -ge 1 ]; } # UDP PORT

# COUNT datagrams from port 68 to ADDR port 67 as uid 2000; prints the sender's report.
dhcp_send() { # ADDR COUNT
    lab_as "$DESKTOP_UID" /usr/bin/python3 "$LINK_MESSAGES" dhcp "$1" --count "$2"
}

# Counts NDP look-alikes that arrive in NS for SECONDS (into NAME.out).
ndp_counter_start() { # NS NAME SECONDS
    lab__spawn "$1" "$2" /usr/bin/python3 "$LINK_MESSAGES" count-ndp --seconds "$3" &&
        lab__wait_for 5 grep -q listening "$LAB_DIR/$2.out"
}

ndp_received() { # NAME: once its counter has finished
    lab__wait_for 10 lab__counted "$1" && tail -n 1 "$LAB_DIR/$1.out"
}

lab__counted() { [ "$(wc -l <"$LAB_DIR/$1.out")" -ge 2 ]; }
