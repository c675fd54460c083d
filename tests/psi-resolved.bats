#!/usr/bin/env bats
# psi under systemd-resolved: a real systemd-resolved on a private D-Bus system bus in the lab's
# client (lab/resolved.bash), with /etc/resolv.conf naming its stub, so that psi-tun takes its
# systemd-resolved path (link DNS, "~." and the default route on PsiphonTUN; revert on down).
# A normal user (uid 2000) resolves through the stub like any program. The uplink eth0 may have
# DNS of its own: the router's resolver, which answers inet.psi.test with another address than
# the tunnel's, so every answer says where it came from. Every DNS packet that leaves the client
# on the router's capture is a leak; there must be none. Each has a control that sees packets.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    load lab/connect
    load lab/psi
    load lab/resolved
    psi_lab_up >/dev/null
    export PSIPHOND_PID
    resolved_up
    resolved_uplink_dns_start
}

teardown_file() {
    load lab/fw
    load lab/psi
    load lab/resolved
    resolved_psi down --open >/dev/null 2>&1 || true
    resolved_down
    lab_down
}

setup() {
    load lab/fw
    load lab/connect
    load lab/psi
    load lab/resolved
}

teardown() {
    lab_capture_stop
    resolved_psi down --open >/dev/null 2>&1 || true
    resolved_psi_tun down >/dev/null 2>&1 || true
    lab_client ip link delete PsiphonTUN 2>/dev/null || true
    resolved_ctl revert eth0 >/dev/null 2>&1 || true
}

as_user() { resolved_as "$DESKTOP_UID" "$@"; }

# A name looked up as a program does (getaddrinfo, /etc/resolv.conf: the stub); a failure is
# given up after 2 s rather than glibc's 2 x 5 s.
user_lookup() { as_user env RES_OPTIONS="timeout:2 attempts:1" getent ahosts "$1"; }

# DNS packets (UDP or TCP port 53) that left the client; all packets that left but the tunnel.
dns_leaks() { lab_capture_count "$(lab_leak_filter) and (udp port 53 or tcp port 53)"; }
leaks() { lab_capture_count "$(lab_leak_filter) and not (tcp and host $LAB_INET_IP4 and port 4443)"; }

# Queries the in-tunnel resolver (in inet) has answered so far.
tunnel_resolver_queries() { grep -c '^query .* inet\.psi\.test ' "$LAB_DIR/dns.out" || true; }

# DNS the kill switch rejected (its dns-elsewhere rules' counters).
dns_rejected() {
    lab_client nft list chain inet psiphon_filter output |
        sed -n 's/.*counter packets \([0-9]*\) .*comment "dns-elsewhere-.*/\1/p' | paste -sd+ | bc
}

# A link's own settings as resolvectl shows them.
link_settings() { # LINK
    local setting
    for setting in dns domain default-route llmnr mdns dnssec dnsovertls; do
        resolved_ctl "$setting" "$1" || return 1
    done
}

uplink_dns() { # [DOMAIN...]
    resolved_ctl dns eth0 "$LAB_ROUTER_IP4" "$LAB_ROUTER_IP6" &&
        resolved_ctl default-route eth0 yes &&
        if [ $# -gt 0 ]; then resolved_ctl domain eth0 "$@"; fi
}

assert_tunnel_link_settings() {
    run resolved_ctl dns PsiphonTUN
    assert_success
    assert_output --regexp '^Link [0-9]+ \(PsiphonTUN\): 10\.200\.3\.2 fd42:42:42::2$'
    run resolved_ctl domain PsiphonTUN
    assert_output --regexp '^Link [0-9]+ \(PsiphonTUN\): ~\.$'
    run resolved_ctl default-route PsiphonTUN
    assert_output --regexp '^Link [0-9]+ \(PsiphonTUN\): yes$'
    run resolved_ctl llmnr PsiphonTUN
    assert_output --regexp '^Link [0-9]+ \(PsiphonTUN\): no$'
    run resolved_ctl mdns PsiphonTUN
    assert_output --regexp '^Link [0-9]+ \(PsiphonTUN\): no$'
}

# The name answered by the in-tunnel resolver (inet's address), not by the uplink's.
assert_resolved_through_tunnel() {
    run user_lookup inet.psi.test
    assert_success
    assert_line --regexp "^$LAB_INET_IP4 +STREAM inet\.psi\.test$"
    refute_output --partial "$RESOLVED_UPLINK_ANSWER"
}

@test "psi-tun up under systemd-resolved: PsiphonTUN gets the in-tunnel DNS, ~. and the default route; down forgets them; eth0's own settings untouched" {
    uplink_dns lan
    local uplink_before
    uplink_before=$(link_settings eth0)
    run resolved_ctl dns PsiphonTUN
    assert_failure  # no such link yet

    run resolved_psi_tun up
    assert_success
    assert_output --partial "DNS via 10.200.3.2 (systemd-resolved)"
    assert_equal "$(jq -r .dns.method "$LAB_DIR/run/tun.json")" systemd-resolved
    assert_tunnel_link_settings
    run resolved_ctl status
    assert_output --partial "resolv.conf mode: foreign"
    assert_equal "$(link_settings eth0)" "$uplink_before"

    run resolved_psi_tun down
    assert_success
    run resolved_ctl dns PsiphonTUN
    assert_failure
    assert_output --partial "No such device"
    run resolved_ctl status
    refute_output --partial PsiphonTUN
    assert_equal "$(link_settings eth0)" "$uplink_before"

    # The control: outside the fixture (no resolved, the lab's own resolv.conf) psi-tun takes
    # the resolv.conf path, so the above was systemd-resolved's.
    run lab_client "$BATS_TEST_DIRNAME/../build/psi-tun" --config "$LAB_DIR/psi.conf" up
    assert_output --partial "(resolv.conf)"
    lab_client "$BATS_TEST_DIRNAME/../build/psi-tun" --config "$LAB_DIR/psi.conf" down
}

@test "a TUN that was there before psi-tun up: down reverts its link settings and leaves the link" {
    lab_client ip tuntap add dev PsiphonTUN mode tun user psiphon-user group psiphon-group
    local before
    before=$(link_settings PsiphonTUN)
    run resolved_ctl dns PsiphonTUN
    assert_output --regexp '^Link [0-9]+ \(PsiphonTUN\):$'
    run resolved_psi_tun up
    assert_success
    assert_output --partial "(systemd-resolved)"
    assert_tunnel_link_settings
    run resolved_psi_tun down
    assert_success
    lab_client ip link show PsiphonTUN >/dev/null
    assert_equal "$(link_settings PsiphonTUN)" "$before"
    run resolved_ctl domain PsiphonTUN
    refute_output --partial "~."
}

@test "psi up: a normal user resolves through the stub and fetches by name, answered in the tunnel; 0 DNS packets leave; the control (psi down --open, the uplink's DNS) sees them" {
    local answered
    answered=$(tunnel_resolver_queries)
    run resolved_psi up --timeout 30
    assert_success
    lab_capture_start
    assert_resolved_through_tunnel
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_output "hello from inet"
    run resolved_ctl query inet.psi.test
    assert_output --regexp "inet\.psi\.test: $LAB_INET_IP4 +-- link: PsiphonTUN"
    lab_capture_stop
    assert_equal "$(dns_leaks)" 0
    assert_equal "$(leaks)" 0
    [ "$(tunnel_resolver_queries)" -gt "$answered" ]

    # The control: without psi, with the uplink's own DNS, the uplink's resolver answers.
    run resolved_psi down --open
    assert_success
    uplink_dns
    answered=$(resolved_uplink_queries)
    lab_capture_start
    run user_lookup inet.psi.test
    lab_capture_stop
    assert_success
    assert_line --regexp "^$RESOLVED_UPLINK_ANSWER +STREAM inet\.psi\.test$"
    [ "$(dns_leaks)" -gt 0 ]
    [ "$(resolved_uplink_queries)" -gt "$answered" ]
}

@test "the uplink has DNS of its own while psi is up: names resolve through the tunnel, 0 DNS packets leave; after psi down none resolves and still 0 leave" {
    local asked
    asked=$(resolved_uplink_queries)
    run resolved_psi up --timeout 30
    assert_success
    uplink_dns
    run resolved_ctl dns eth0
    assert_output --partial "$LAB_ROUTER_IP4"
    lab_capture_start
    assert_resolved_through_tunnel
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_output "hello from inet"
    lab_capture_stop
    assert_equal "$(dns_leaks)" 0
    assert_equal "$(leaks)" 0
    assert_equal "$(resolved_uplink_queries)" "$asked"

    # The tunnel gone, the kill switch stays: resolved now asks eth0's server, which the kill
    # switch rejects; nothing resolves and nothing leaves.
    run resolved_psi down
    assert_success
    lab_client nft list table inet psiphon_filter >/dev/null
    lab_capture_start
    run user_lookup inet.psi.test
    lab_capture_stop
    assert_failure
    refute_output --partial "$LAB_INET_IP4"
    refute_output --partial "$RESOLVED_UPLINK_ANSWER"
    assert_equal "$(dns_leaks)" 0
    assert_equal "$(leaks)" 0
    assert_equal "$(resolved_uplink_queries)" "$asked"
    [ "$(dns_rejected)" -gt 0 ]
}

@test "a search domain on the uplink (as DHCP gives): resolved sends that domain's names to the uplink's server, the kill switch stops them: 0 DNS packets leave" {
    local asked
    asked=$(resolved_uplink_queries)
    run resolved_psi up --timeout 30
    assert_success
    uplink_dns psi.test
    local rejected
    rejected=$(dns_rejected)
    lab_capture_start
    run user_lookup inet.psi.test
    lab_capture_stop
    refute_output --partial "$RESOLVED_UPLINK_ANSWER"
    assert_equal "$(dns_leaks)" 0
    assert_equal "$(leaks)" 0
    assert_equal "$(resolved_uplink_queries)" "$asked"
    [ "$(dns_rejected)" -gt 0 ]
}

@test "the TUN deleted under psi, which makes it anew: 0 DNS packets leave meanwhile and after" {
    run resolved_psi up --timeout 30
    assert_success
    uplink_dns
    local old_index
    old_index=$(lab_client cat /sys/class/net/PsiphonTUN/ifindex)
    lab_capture_start
    resolved_client ip link delete PsiphonTUN
    sleep 1
    lab__wait_for 30 resolved_client ip link show PsiphonTUN >/dev/null 2>&1
    [ "$(resolved_client cat /sys/class/net/PsiphonTUN/ifindex)" != "$old_index" ]
    lab__wait_for 20 as_user curl -sS -m 2 "http://$LAB_INET_IP4:8080/" >/dev/null 2>&1
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    run user_lookup inet.psi.test
    refute_output --partial "$RESOLVED_UPLINK_ANSWER"
    lab_capture_stop
    assert_equal "$(dns_leaks)" 0
    assert_equal "$(leaks)" 0
}

@test "the TUN deleted under psi, which makes it anew: its DNS settings come back and names resolve" {
    run resolved_psi up --timeout 30
    assert_success
    resolved_client ip link delete PsiphonTUN
    sleep 1
    lab__wait_for 30 resolved_client ip link show PsiphonTUN >/dev/null 2>&1
    lab__wait_for 20 as_user curl -sS -m 2 "http://$LAB_INET_IP4:8080/" >/dev/null 2>&1
    assert_tunnel_link_settings
    assert_resolved_through_tunnel
}

@test "systemd-resolved restarted while psi is up: PsiphonTUN keeps its settings and names resolve through the tunnel, 0 DNS packets leave" {
    run resolved_psi up --timeout 30
    assert_success
    uplink_dns
    resolved_restart
    lab_capture_start
    assert_tunnel_link_settings
    assert_resolved_through_tunnel
    lab_capture_stop
    assert_equal "$(dns_leaks)" 0
    assert_equal "$(leaks)" 0
}
