#!/usr/bin/env bats
# KILLSWITCH.md §6 across the whole stack run by psi: with a UDP flood from a normal user (uid
# 2000) going on, psi reloaded and restarted over and over, the tunnel killed, the TUN deleted
# and the uplink taken down and up, and a third party flushing the ruleset. Every packet that
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
    psi down >/dev/null 2>&1 || true
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

@test "psi restart 20 times under a UDP flood: 0 packets leaked, and the tunnel works after" {
    psi up --timeout 30 >/dev/null
    lab_capture_start
    flood_start 600
    local i
    for i in $(seq 20); do
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
