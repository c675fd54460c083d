#!/usr/bin/env bats
# Psiphon's packet tunnel end to end in the lab: psi-connect --tun carries PsiphonTUN's packets
# over one tun@psiphon.ca channel to the real psiphond (RunPacketTunnel, tests/lab/peer.bash),
# which runs them through a TUN of its own; the lab's test server (tests/tools/psiphond.py) only
# where a test reads what it logs of each packet, or needs a server without the packet tunnel. A normal user (uid 2000) in the client namespace, with the
# kill switch and psi-tun up but no psi-tun run, reaches the inet host through it.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    load lab/tun
    tun_lab_up
}

teardown_file() {
    load lab/fw
    load lab/tun
    tun_lab_down
}

setup() {
    load lab/fw
    load lab/tun
    load lab/connect
    load lab/peer
}

teardown() {
    [ -n "${ENGINE_PID:-}" ] && lab__stop "$ENGINE_PID" TERM
    [ -n "${CONNECT_PID:-}" ] && lab__stop "$CONNECT_PID" TERM
    [ -n "${PSIPHOND_PID:-}" ] && lab__stop "$PSIPHOND_PID" TERM
    [ -n "${PEER_PID:-}" ] && lab__stop "$PEER_PID" TERM
    ENGINE_PID= CONNECT_PID= PSIPHOND_PID= PEER_PID=
}

PSI_DIAGNOSE="$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build/psi-diagnose"
engine_verdict() { jq -r '.checks[] | select(.check == "packet engine") | .passed' <<<"$output"; }
as_user() { lab_as "$DESKTOP_UID" "$@"; }
probe() { probe_as "$DESKTOP_UID" "$@" 2>/dev/null; }

# The real psiphond with its packet tunnel, and psi-connect attached to PsiphonTUN.
packet_path_start() {
    peer_start psiphond --dns "$LAB_INET_IP4" --packet-tunnel
    connect_start connect "$LAB_DIR/psiphond.entry" --socks 1090 --protocols OSSH --tun PsiphonTUN
    connect_wait_tunnels connect 1 15
}

# The same with the lab's test server, which logs each packet-tunnel client it sees.
test_server_packet_path_start() {
    psiphond_start psiphond --dns-resolver "$LAB_INET_IP4:53" --packet-tunnel
    connect_start connect "$LAB_DIR/psiphond.entry" --socks 1090 --protocols OSSH --tun PsiphonTUN
    connect_wait_tunnels connect 1
}

# The real server's own record of the last tunnel (logged when it ends).
last_server_tunnel() {
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab__wait_for 5 test -n "$(peer_event psiphond server_tunnel)"
    peer_event psiphond server_tunnel | tail -n 1
}

@test "packet mode: a normal user reaches the inet host by IPv4, IPv6 and name, as packets over one packet-tunnel channel" {
    packet_path_start
    grep '"noticeType":"PacketTunnel"' "$LAB_DIR/connect.out" | grep -q '"state":"up"'
    run --separate-stderr lab_client "$PSI_DIAGNOSE" --config "$LAB_DIR/psi.conf" --no-probes --json
    [ "$(engine_verdict)" = true ]  # psi-connect --tun, holding PsiphonTUN
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 10 "http://[$LAB_INET_IP6]:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_success
    assert_output "hello from inet"
    # The name was asked of 10.200.3.2, sent to the server's resolver address and answered from it.
    grep -q "^query udp inet.psi.test" "$LAB_DIR/dns.out"
    # The server carried it all over one packet-tunnel channel.
    local record
    record=$(last_server_tunnel)
    echo "$record" >"$LAB_DIR/record.json"
    run jq -r '[.total_packet_tunnel_channel_count, .bytes_down_tcp > 0, .bytes_down_udp > 0] | @tsv' <<<"$record"
    assert_output "$(printf '1\ttrue\ttrue')"
}

@test "packet mode: UDP both ways, IPv4 and IPv6; ICMP is not carried (Psiphon's filter drops it)" {
    packet_path_start
    [ "$(probe udp "$LAB_INET_IP4" 7200 --timeout 3)" = reply ]
    [ "$(probe udp "$LAB_INET_IP6" 7200 --timeout 3)" = reply ]
    run as_user ping -c 1 -W 2 "$LAB_INET_IP4"
    assert_failure
}

@test "packet mode: 1,000 connections at once all complete" {
    packet_path_start
    run as_user /usr/bin/python3 "$TOOLS/many_connections.py" connect "$LAB_INET_IP4" 7100 --count 1000 --timeout 60
    assert_success
    assert_output "ok=1000 failed=0"
}

# A reset the kernel sends for a socket gone leaves from the uplink's address, and the routing
# rule sends it into the TUN. The server takes the client's address from its first packet.
send_from_uplink() { # ADDRESS FAMILY
    lab_client /usr/bin/python3 -c 'import socket, sys
s = socket.socket(int(sys.argv[3]), socket.SOCK_DGRAM)
s.bind((sys.argv[1], 40999))
s.sendto(b"from the uplink", (sys.argv[2], 7200))' "$1" "$2" "$3"
}

@test "packet mode: a packet from the uplink's address into the TUN is not sent; the server never learns that address" {
    test_server_packet_path_start
    send_from_uplink "$LAB_CLIENT_IP4" "$LAB_INET_IP4" 2
    send_from_uplink "$LAB_CLIENT_IP6" "$LAB_INET_IP6" 10
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    run as_user curl -sS -m 10 "http://[$LAB_INET_IP6]:8080/"
    assert_output "hello from inet"
    grep -q "^packet-tunnel-client .*ipv4=10.200.3.1$" "$LAB_DIR/psiphond.err"
    grep -q "^packet-tunnel-client .*ipv6=fd42:42:42::1$" "$LAB_DIR/psiphond.err"
    ! grep -q "$LAB_CLIENT_IP4\|$LAB_CLIENT_IP6" <(grep "^packet-tunnel" "$LAB_DIR/psiphond.err")
}

@test "packet mode: psi-connect killed, nothing leaves the machine; back when it is back" {
    packet_path_start
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_success
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab_capture_start
    run as_user curl -sS -m 3 "http://$LAB_INET_IP4:8080/"
    assert_failure
    [ "$(probe udp "$LAB_INET_IP4" 7200 --timeout 1)" != reply ]
    lab_client getent hosts inet.psi.test && false
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    connect_start connect "$LAB_DIR/psiphond.entry" --socks 1090 --protocols OSSH --tun PsiphonTUN
    connect_wait_tunnels connect 1
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "a server without the packet tunnel refuses it: psi-connect says so, lets the TUN go, and psi-tun run carries the traffic" {
    peer_start psiphond --dns "$LAB_INET_IP4"
    connect_start connect "$LAB_DIR/psiphond.entry" --socks 1090 --protocols OSSH --tun PsiphonTUN
    connect_wait_tunnels connect 1 15
    grep '"noticeType":"PacketTunnel"' "$LAB_DIR/connect.out" | grep -q '"state":"refused"'
    grep -q "the server refused the packet tunnel" "$LAB_DIR/connect.err"
    # psi-diagnose does not count a psi-connect --tun that let the TUN go as the packet engine.
    run --separate-stderr lab_client "$PSI_DIAGNOSE" --config "$LAB_DIR/psi.conf" --no-probes --json
    [ "$(engine_verdict)" = false ]
    lab__spawn "$LAB_CLIENT" engine "$PSI_TUN" --config "$LAB_DIR/psi.conf" run --socks 127.0.0.1:1090
    ENGINE_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q "carried into" "$LAB_DIR/engine.out"
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    run --separate-stderr lab_client "$PSI_DIAGNOSE" --config "$LAB_DIR/psi.conf" --no-probes --json
    [ "$(engine_verdict)" = true ]
}

@test "psi-connect --tun with a TUN that is not the tunnel user's: one clear line, exit 1" {
    psiphond_start psiphond --dns-resolver "$LAB_INET_IP4:53" --packet-tunnel
    run lab_client "$PSI_CONNECT" --config "$(connect_config)" --entries "$LAB_DIR/psiphond.entry" --tun NoSuchTUN
    assert_failure 1
    assert_output --partial "psi-connect: error: "
    [ "${#lines[@]}" -eq 1 ]
}
