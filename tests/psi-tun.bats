#!/usr/bin/env bats
# psi-tun up and down in the lab's client namespace: the TUN, the routes that send everyone
# but the tunnel user into it, DNS, and down putting back exactly what was there.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    lab_up
    lab_listen_tcp 7000
    mkdir -p "$LAB_DIR/run"
    printf '{\n  "RunDirectory": "%s"\n}\n' "$LAB_DIR/run" >"$LAB_DIR/psi.conf"
    chmod 600 "$LAB_DIR/psi.conf"
}

teardown_file() {
    load lab/fw
    lab_down
}

setup() {
    load lab/fw
    PSI_TUN="$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build/psi-tun"
}

teardown() {
    tunnel_stop
    psi_tun down >/dev/null || true
    psi_fw down >/dev/null || true
}

psi_tun() { lab_client "$PSI_TUN" --config "$LAB_DIR/psi.conf" "$@"; }

# Everything psi-tun may change in the namespace, as text.
network_state() {
    lab_client ip -4 rule
    lab_client ip -6 rule
    lab_client ip -4 route show table all
    lab_client ip -6 route show table all
    lab_client ip -o link show
    lab_client cat /etc/resolv.conf
    lab_client sysctl net.ipv4.conf.all.arp_ignore
}

# ARP replies that the LAN's router gets when it asks who has ADDRESS.
arp_replies() { # ADDRESS
    lab_router arping -c 3 -w 4 -I rc "$1" | sed -n 's/^Received \([0-9]*\) response.*/\1/p'
}

@test "up: a persistent TUN owned by the tunnel user, with its addresses, MTU, queue and rp_filter" {
    run psi_tun up
    assert_success
    assert_output --partial "PsiphonTUN up"
    run lab_client ip -d link show PsiphonTUN
    assert_output --partial "persist on user psiphon-user group psiphon-group"
    assert_output --partial "mtu 1500"
    assert_output --partial "qlen 5000"
    run lab_client ip -o addr show dev PsiphonTUN
    assert_output --partial "inet 10.200.3.1/24"
    assert_output --partial "inet6 fd42:42:42::1/64"
    [ "$(lab_client cat /proc/sys/net/ipv4/conf/PsiphonTUN/rp_filter)" = 2 ]
    # The tunnel user attaches with no capability at all.
    tunnel_start
}

@test "up: the LAN gets no ARP answer for the TUN's address; down puts arp_ignore back" {
    lab_client sysctl -qw net.ipv4.conf.all.arp_ignore=0
    psi_tun up
    assert_equal "$(arp_replies 10.200.3.1)" 0
    assert_equal "$(lab_client sysctl -n net.ipv4.conf.all.arp_ignore)" 1
    # The uplink's own address is still answered.
    assert_equal "$(arp_replies "$LAB_CLIENT_IP4")" 3
    # Control: with arp_ignore 0, as before, the uplink answers for the TUN's address.
    lab_client sysctl -qw net.ipv4.conf.all.arp_ignore=0
    assert_equal "$(arp_replies 10.200.3.1)" 3
    psi_tun up
    psi_tun down
    assert_equal "$(lab_client sysctl -n net.ipv4.conf.all.arp_ignore)" 0
    # A stricter value is left as it is, and is still there after down.
    lab_client sysctl -qw net.ipv4.conf.all.arp_ignore=2
    psi_tun up
    assert_equal "$(lab_client sysctl -n net.ipv4.conf.all.arp_ignore)" 2
    psi_tun down
    assert_equal "$(lab_client sysctl -n net.ipv4.conf.all.arp_ignore)" 2
    lab_client sysctl -qw net.ipv4.conf.all.arp_ignore=0
}

@test "up: everyone but the tunnel user is routed into the TUN, IPv4 and IPv6, with an unreachable fallback" {
    psi_tun up
    local uid
    uid=$(id -u psiphon-user)
    run lab_client ip -4 rule
    assert_line --regexp "^20563:.*not from all uidrange $uid-$uid lookup 20563"
    run lab_client ip -6 rule
    assert_line --regexp "^20563:.*not from all uidrange $uid-$uid lookup 20563"
    run lab_client ip -6 route show table 20563
    assert_line --partial "default dev PsiphonTUN"
    assert_line --partial "unreachable default"
    run lab_client ip route get "$LAB_INET_IP4" uid "$DESKTOP_UID"
    assert_output --partial "dev PsiphonTUN"
    run lab_client ip route get "$LAB_INET_IP4" uid "$uid"
    assert_output --partial "dev eth0"
    run lab_client ip -6 route get "$LAB_INET_IP6" uid 0
    assert_output --partial "dev PsiphonTUN"

    # Real packets: uid 2000's connection enters the TUN; the tunnel user's leaves by eth0.
    tunnel_start
    probe_as "$DESKTOP_UID" tcp "$LAB_INET_IP4" 7000 --timeout 1 >/dev/null
    grep -q "^tcp $LAB_INET_IP4 7000$" "$LAB_DIR/tunnel.out"
    [ "$(probe_as "$TUNNEL_USER" tcp "$LAB_INET_IP4" 7000)" = connected ]
    # With the TUN gone, the fallback makes the route unreachable instead of leaking to main.
    tunnel_stop
    lab_client ip link set PsiphonTUN down
    run lab_client ip route get "$LAB_INET_IP4" uid "$DESKTOP_UID"
    assert_failure
    lab_client ip link set PsiphonTUN up
}

@test "up: DNS goes to the in-tunnel resolver and comes back on down" {
    local before
    before=$(lab_client cat /etc/resolv.conf)
    psi_tun up
    run lab_client cat /etc/resolv.conf
    assert_line "nameserver 10.200.3.2"
    assert_line "nameserver fd42:42:42::2"
    refute_output --partial "$LAB_ROUTER_IP4"
    tunnel_start
    lab_client getent hosts example.test >/dev/null || true
    grep -q "^udp 10.200.3.2 53$" "$LAB_DIR/tunnel.out"
    psi_tun down
    [ "$(lab_client cat /etc/resolv.conf)" = "$before" ]
}

@test "down restores routes, rules, links and DNS exactly; up and down are idempotent" {
    local before
    before=$(network_state)
    psi_tun up
    psi_tun up
    [ "$(network_state)" != "$before" ]
    run psi_tun down
    assert_output --partial "restored"
    [ "$(network_state)" = "$before" ] || diff <(echo "$before") <(network_state)
    run psi_tun down
    assert_success
    [ "$(network_state)" = "$before" ]
}

@test "down after a crash: the TUN deleted by hand, state left behind, still restored" {
    local before
    before=$(network_state)
    psi_tun up
    lab_client ip link del PsiphonTUN
    run psi_tun down
    assert_success
    [ "$(network_state)" = "$before" ]
    [ ! -e "$LAB_DIR/run/tun.json" ]
}

@test "allow-LAN adds the main table's LAN routes first, never for DNS" {
    psi_tun up --allow-lan
    run lab_client ip -4 rule
    assert_line --regexp '^20562:.*not from all dport 53 lookup main suppress_prefixlength 0'
    run lab_client ip route get "$LAB_ROUTER_IP4" uid "$DESKTOP_UID"
    assert_output --partial "dev eth0"
    run lab_client ip route get "$LAB_ROUTER_IP4" uid "$DESKTOP_UID" dport 53 ipproto udp
    assert_output --partial "dev PsiphonTUN"
}

@test "with the kill switch: the TUN path works, nothing else leaves, and the table is untouched" {
    psi_fw up
    psi_tun up
    tunnel_start
    lab_capture_start
    probe_as "$DESKTOP_UID" tcp "$LAB_INET_IP4" 7000 --timeout 1 >/dev/null
    [[ $(probe_as "$DESKTOP_UID" tcp "$LAB_INET_IP4" 7000 --bind-dev eth0) =~ ^(refused|prohibited|unreachable)$ ]]
    [ "$(probe_as "$TUNNEL_USER" tcp "$LAB_INET_IP4" 7000)" = connected ]
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter) and not port 7000")" 0
    [ "$(lab_capture_count "src host $LAB_CLIENT_IP4 and tcp dst port 7000")" -gt 0 ]
    grep -q "^tcp $LAB_INET_IP4 7000$" "$LAB_DIR/tunnel.out"
    run psi_fw status
    assert_success
}

@test "psi-tun: help, version, root only" {
    run "$PSI_TUN" --version
    assert_output --regexp '^psi-tun [0-9]+\.[0-9]+\.[0-9]+$'
    run lab_as "$DESKTOP_UID" "$PSI_TUN" --config "$LAB_DIR/psi.conf" up
    assert_failure
}

@test "down that fails says why, keeps its record, and succeeds when run again" {
    local before
    before=$(network_state)
    psi_tun up
    mv "$LAB_DIR/run/resolv.conf.before-psi-tun" "$LAB_DIR/kept"
    run psi_tun down
    assert_failure
    assert_output --partial "resolv.conf.before-psi-tun"
    [ -e "$LAB_DIR/run/tun.json" ]
    mv "$LAB_DIR/kept" "$LAB_DIR/run/resolv.conf.before-psi-tun"
    run psi_tun down
    assert_success
    [ "$(network_state)" = "$before" ]
}

@test "a record that cannot be read stops down with a clear error instead of guessing" {
    psi_tun up
    echo '{"dns": {}}' >"$LAB_DIR/run/tun.json"
    run psi_tun down
    assert_failure
    assert_output --partial "the dns record has no method"
    echo '{}' >"$LAB_DIR/run/tun.json"
    psi_tun down
    lab_client ip link del PsiphonTUN 2>/dev/null || true
    printf 'nameserver %s\n' "$LAB_ROUTER_IP4" | lab_client tee /etc/resolv.conf >/dev/null
}

@test "up replaces a stale rule at its priority; down never removes another tool's rule" {
    lab_client ip rule add not uidrange 1-1 lookup 20563 pref 20563
    psi_tun up
    run lab_client ip rule show pref 20563
    assert_output --partial "uidrange $(id -u psiphon-user)-$(id -u psiphon-user)"
    refute_output --partial "uidrange 1-1"
    # Another tool's rule at the same priority, before and after psi's.
    lab_client ip rule add from 192.0.2.0/24 lookup main pref 20563
    run psi_tun down
    assert_success
    run lab_client ip rule show pref 20563
    assert_output --partial "from 192.0.2.0/24 lookup main"
    refute_output --partial "lookup 20563"
    lab_client ip rule del pref 20563 from 192.0.2.0/24 lookup main
}
