#!/usr/bin/env bats
# docs/kill-switch.md §6 across the whole stack run by psi: with a UDP flood from a normal user (uid
# 2000) going on, psi reloaded and restarted over and over, the tunnel killed, the TUN deleted
# and the uplink taken down and up, a third party flushing the ruleset, and containers behind the
# client. Every packet that
# leaves the client on the router's capture, other than the tunnel itself (TCP to the Psiphon
# server's OSSH port), is a leak; there must be none. Each has a control that must see packets.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    load lab/connect
    load lab/psi
    psi_lab_up >/dev/null
    export PSIPHOND_PID
    flood_sink_start
}

teardown_file() {
    load lab/fw
    load lab/psi
    psi down --open >/dev/null 2>&1 || true
    lab_down
}

setup() {
    load lab/fw
    load lab/connect
    load lab/psi
}

teardown() {
    [ -n "${FLOOD_PID:-}" ] && lab__stop "$FLOOD_PID" TERM
    FLOOD_PID=
    box_down
    psi down >/dev/null 2>&1 || true
    if lab_client ip link show wlan0 >/dev/null 2>&1; then lab_restore_uplink; fi
}

as_user() { lab_as "$DESKTOP_UID" "$@"; }
# Packets that left the client, but for the tunnel (TCP with the test server's OSSH port).
leaks() { lab_capture_count "$(lab_leak_filter) and not (tcp and host $LAB_INET_IP4 and port 4443)"; }
tunnel_up_since() { [ "$(psi_state .tunnel.up)" = true ] && [ "$(psi_state .tunnel.generation)" -gt "$1" ]; }
tunnel_up() { [ "$(psi_state .tunnel.up)" = true ]; }

@test "control: with psi down --open, the flood and a page are seen on the wire" {
    psi down --open >/dev/null 2>&1 || true
    lab_capture_start
    flood_start 1
    flood_wait
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    lab_capture_stop
    assert_output "hello from inet"
    [ "$(leaks)" -gt 0 ]
}

@test "psi up against a server without the packet tunnel, under a UDP flood: psi-connect lets the TUN go to psi-tun run, and 0 packets leak meanwhile" {
    # From the blocked policy, as at boot: the control before this test removed the kill switch,
    # and what the flood sends before psi up has run at all is no leak of psi's.
    lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" boot >/dev/null
    lab_capture_start
    flood_start 600
    psi up --timeout 30 >/dev/null
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    lab__stop "$FLOOD_PID" TERM
    FLOOD_PID=
    lab_capture_stop
    assert_equal "$(leaks)" 0
    [ "$(psi_state .mode)" = auto ]
    [ "$(psi_state .tunnel.packetTunnel)" = false ]
    grep -q "the server has no packet tunnel" "$LAB_DIR/run/psi.log"
}

@test "psi up --mode packet against a server without the packet tunnel: no tunnel within the timeout, the reason said, and 0 packets leak" {
    lab_capture_start
    flood_start 600
    run psi up --mode packet --timeout 8
    assert_failure 1
    assert_output --partial "the server refused the packet tunnel (--mode packet)"
    run as_user curl -sS -m 3 "http://$LAB_INET_IP4:8080/"
    assert_failure
    lab__stop "$FLOOD_PID" TERM
    FLOOD_PID=
    lab_capture_stop
    assert_equal "$(leaks)" 0
    [ "$(psi_state .tunnel.up)" = false ]
    ! pgrep -f "psi-tun --config $LAB_DIR/psi.conf run"
}

@test "psi reload 100 times under a UDP flood: 0 packets leaked, and the tunnel works after" {
    psi up --timeout 30 >/dev/null
    lab_capture_start
    flood_start 600
    local i generation
    for i in $(seq 100); do
        generation=$(psi_state .tunnel.generation)
        psi reload --timeout 30 >/dev/null
        tunnel_up_since "$generation"
    done
    lab__stop "$FLOOD_PID" TERM
    FLOOD_PID=
    lab_capture_stop
    assert_equal "$(leaks)" 0
    grep -q "sent" "$LAB_DIR/flood.out" || grep -q "[0-9]" "$LAB_DIR/flood.out"
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "psi restart 100 times under a UDP flood: 0 packets leaked, and the tunnel works after" {
    psi up --timeout 30 >/dev/null
    lab_capture_start
    flood_start 900
    local i
    for i in $(seq 100); do
        psi restart --timeout 30 >/dev/null
    done
    lab__stop "$FLOOD_PID" TERM
    FLOOD_PID=
    lab_capture_stop
    assert_equal "$(leaks)" 0
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "the tunnel killed, the TUN deleted, the uplink down and up, under a flood: 0 leaked, and psi recovers" {
    psi up --timeout 30 >/dev/null
    lab_capture_start
    flood_start 600
    local generation
    generation=$(psi_state .tunnel.generation)
    kill -KILL "$(psi_state .connectPid)"
    lab__wait_for 30 tunnel_up_since "$generation"
    lab_client ip link delete PsiphonTUN
    sleep 1
    lab__wait_for 30 lab_client ip link show PsiphonTUN
    uplink_bounce 0.5
    generation=$(psi_state .tunnel.generation)
    lab__wait_for 60 tunnel_up
    lab__stop "$FLOOD_PID" TERM
    FLOOD_PID=
    lab_capture_stop
    assert_equal "$(leaks)" 0
    local attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/" >/dev/null 2>&1 && break
        sleep 2
    done
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    [ "$(psi_state .engineRestarts)" -ge 1 ]
}

@test "a third party's nft flush ruleset: psi puts the kill switch back at once; psi status says intact" {
    psi up --timeout 30 >/dev/null
    lab_client nft flush ruleset
    lab__wait_for 5 lab_client nft list table inet psiphon_filter >/dev/null 2>&1
    run psi status
    assert_success
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
    grep -q "restored" "$LAB_DIR/run/psi.log"
}

# A "container" namespace behind the client: a veth, forwarding on, docker-style masquerade.
box_up() {
    BOX="$LAB_PREFIX-box"
    ip netns add "$BOX"
    ip link add vbox0 netns "$LAB_CLIENT" type veth peer name eth0 netns "$BOX"
    lab_client ip addr add 172.30.0.1/24 dev vbox0
    lab_client ip link set vbox0 up
    ip netns exec "$BOX" ip addr add 172.30.0.2/24 dev eth0
    ip netns exec "$BOX" ip link set eth0 up
    ip netns exec "$BOX" ip link set lo up
    ip netns exec "$BOX" ip route add default via 172.30.0.1
    lab_client sysctl -qw net.ipv4.ip_forward=1
    lab_client nft 'add table ip boxnat; add chain ip boxnat post { type nat hook postrouting priority srcnat; };
                    add rule ip boxnat post oifname "eth0" masquerade'
}

box_down() {
    [ -n "${BOX:-}" ] || return 0
    ip netns delete "$BOX" 2>/dev/null || true
    lab_client nft delete table ip boxnat 2>/dev/null || true
    lab_client sysctl -qw net.ipv4.ip_forward=0
    BOX=
}

# The container sends: a page, a UDP burst, DNS to the router and to inet.
box_sends() {
    ip netns exec "$BOX" curl -sS -m 3 "http://$LAB_INET_IP4:8080/" || true
    ip netns exec "$BOX" /usr/bin/python3 "$LAB_PROBE" flood "$LAB_INET_IP4" "$FLOOD_PORT" --seconds 1 >/dev/null 2>&1 || true
    ip netns exec "$BOX" /usr/bin/python3 "$LAB_PROBE" dns "$LAB_ROUTER_IP4" --timeout 1 >/dev/null 2>&1 || true
    ip netns exec "$BOX" /usr/bin/python3 "$LAB_PROBE" dns "$LAB_INET_IP4" --tcp --timeout 1 >/dev/null 2>&1 || true
}

@test "containers behind the client (forwarding, masquerade): nothing they send leaves, tunnel up or down; seen without the kill switch" {
    box_up
    psi down --open >/dev/null 2>&1 || true
    lab_capture_start
    run box_sends
    lab_capture_stop
    assert_output --partial "hello from inet"  # the control: the container reaches inet
    [ "$(leaks)" -gt 0 ]

    psi up --timeout 30 >/dev/null
    lab_capture_start
    run box_sends
    lab_capture_stop
    refute_output --partial "hello from inet"
    assert_equal "$(leaks)" 0

    psi down >/dev/null
    lab_capture_start
    run box_sends
    lab_capture_stop
    refute_output --partial "hello from inet"
    assert_equal "$(leaks)" 0
    box_down
}

@test "the uplink replaced by another interface on a new subnet, under a flood: 0 leaked on either link; the tunnel user gets out over the new one" {
    psi up --timeout 30 >/dev/null
    lab_add_new_uplink
    lab_capture_start
    lab__spawn "$LAB_ROUTER" capture-new tcpdump --immediate-mode -U -n -i rw -w "$LAB_DIR/capture-new.pcap"
    local capture_new=$LAB_LAST_PID
    lab__wait_for 5 grep -q "listening on" "$LAB_DIR/capture-new.err"
    flood_start 600
    # The old uplink goes away; the new one comes up with its own address and default route.
    lab_switch_uplink
    sleep 2
    # The kill switch is not bound to interface names: the tunnel user gets out over wlan0.
    run --separate-stderr lab_as_user psiphon-user /usr/bin/python3 "$LAB_PROBE" tcp "$LAB_INET_IP4" 4443 --timeout 3
    assert_output connected
    run as_user curl -sS -m 3 --interface wlan0 "http://$LAB_INET_IP4:8080/"
    assert_failure
    sleep 2
    lab__stop "$FLOOD_PID" TERM
    FLOOD_PID=
    lab_capture_stop
    lab__stop "$capture_new" INT
    assert_equal "$(leaks)" 0
    local leaked_new
    leaked_new=$(tcpdump -r "$LAB_DIR/capture-new.pcap" -n "src host $LAB_NEW_UPLINK_IP4 and not arp and not (tcp and host $LAB_INET_IP4 and port 4443)" 2>/dev/null | grep -c '^[0-9]' || true)
    assert_equal "$leaked_new" 0
    lab_client nft list table inet psiphon_filter >/dev/null
    # The control: the new link carries what the tunnel user sends.
    [ "$(tcpdump -r "$LAB_DIR/capture-new.pcap" -n "src host $LAB_NEW_UPLINK_IP4 and tcp port 4443" 2>/dev/null | grep -c '^[0-9]')" -gt 0 ]
}

@test "the uplink replaced: psi-connect probes its tunnel at once and a normal user's page loads over the new link within 20 s (keepalives alone: 60-150 s)" {
    psi up --timeout 30 >/dev/null
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    lab_add_new_uplink
    lab_switch_uplink
    SECONDS=0
    local loaded=
    while [ "$SECONDS" -lt 20 ]; do
        if [ "$(as_user curl -sS -m 2 "http://$LAB_INET_IP4:8080/" 2>/dev/null)" = "hello from inet" ]; then
            loaded=$SECONDS
            break
        fi
        sleep 0.5
    done
    echo "# page loaded again after ${loaded:-more than 20} s" >&3
    [ -n "$loaded" ]
    # The tunnel found its old connection dead and made a new one, from the new address.
    grep -q "the server stopped answering" "$LAB_DIR/run/psi.log"
    lab_inet ss -tn state established "( sport = :4443 )" | grep -q "$LAB_NEW_UPLINK_IP4"
}
