#!/usr/bin/env bats
# The kill switch against real packets, docs/kill-switch.md §6. A leak is a packet captured on the
# router that left the client and did not come from psiphon-user. Every test has a control
# run without the kill switch that must see the packet, so a broken harness cannot pass.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    fw_lab_up
    lab_listen_tcp 8080
    lab_listen_tcp 7000
    lab_listen_udp 9999
    lab_listen_udp 7000
    flood_sink_start
}

teardown_file() {
    load lab/fw
    lab_down
}

setup() {
    load lab/fw
    psi_fw down >/dev/null
}

teardown() {
    lab_capture_stop
    tunnel_stop
    tunnel_routes_remove
    lab_client sysctl -qw net.ipv4.ip_unprivileged_port_start=1024
    psi_fw down >/dev/null || true
}

fw_policy_is() { [ "$(psi_fw status --json 2>/dev/null | jq -r .policy)" = "$1" ]; }

@test "1: default drop, v4 and v6, every protocol, for other users and root; control sees them" {
    lab_capture_start
    assert_all_answered "$DESKTOP_UID"
    assert_all_answered root
    lab_capture_stop
    [ "$(leaked_packets)" -gt 0 ]

    run psi_fw up
    assert_success
    assert_output --partial "kill switch up"
    lab_capture_start
    assert_all_rejected "$DESKTOP_UID"
    assert_all_rejected root
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
}

@test "1: a rejected connection fails at once, not after a timeout" {
    psi_fw up
    run --separate-stderr probe_as "$DESKTOP_UID" tcp "$LAB_INET_IP4" 8080 --timeout 5
    assert_output --regexp '^(refused|unreachable|prohibited)$'
    local elapsed=${stderr##*elapsed_ms=}
    [ "$elapsed" -lt 500 ] || fail "connect took ${elapsed} ms"
}

@test "2: binding to the uplink or its address bypasses nothing; only the tunnel user reaches the relay" {
    tunnel_start
    tunnel_routes
    lab_capture_start
    [ "$(probe_as "$DESKTOP_UID" tcp "$LAB_INET_IP4" 8080 --bind-dev eth0)" = connected ]
    lab_capture_stop
    [ "$(leaked_packets)" -gt 0 ] || fail "control: a bound socket must leave through eth0 without the kill switch"

    psi_fw up
    lab_capture_start
    assert_all_rejected "$DESKTOP_UID" --bind-dev eth0
    assert_all_rejected root --bind-dev eth0
    run lab_as "$DESKTOP_UID" socat -T2 - "TCP4:$LAB_INET_IP4:8080,bind=$LAB_CLIENT_IP4,connect-timeout=2" </dev/null
    assert_failure
    run lab_client ping -c1 -W1 -I eth0 "$LAB_INET_IP4"
    assert_failure
    [ "$(probe_as "$TUNNEL_USER" tcp "$LAB_INET_IP4" 7000)" = connected ]
    [ "$(probe_as "$TUNNEL_USER" tcp "$LAB_INET_IP6" 7000)" = connected ]
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
    [ "$(lab_capture_count "src host $LAB_CLIENT_IP4 and tcp dst port 7000")" -gt 0 ]
}

@test "4: DNS goes only to the in-tunnel resolver; 53, 853, mDNS and LLMNR elsewhere are rejected" {
    tunnel_start
    lab_capture_start "port 53 or port 853 or port 5353 or port 5355"
    [ "$(probe_as "$DESKTOP_UID" dns "$LAB_ROUTER_IP4" --timeout 1)" != eperm ]
    lab_capture_stop
    [ "$(lab_capture_count)" -gt 0 ] || fail "control: DNS to the LAN resolver must be seen without the kill switch"

    psi_fw up
    lab_capture_start "port 53 or port 853 or port 5353 or port 5355"
    local who target word
    for who in "$DESKTOP_UID" root; do
        for target in "$LAB_ROUTER_IP4" "$LAB_ROUTER_IP6" "$LAB_INET_IP4" "$LAB_INET_IP6"; do
            word=$(probe_as "$who" dns "$target" --timeout 1)
            [[ $word =~ ^(eperm|prohibited)$ ]] || fail "$who udp dns to $target: $word"
            word=$(probe_as "$who" dns "$target" --tcp --timeout 1)
            [[ $word =~ ^(refused|prohibited|unreachable)$ ]] || fail "$who tcp dns to $target: $word"
            word=$(probe_as "$who" tcp "$target" 853 --timeout 1)
            [[ $word =~ ^(refused|prohibited|unreachable)$ ]] || fail "$who DoT to $target: $word"
        done
        [[ $(probe_as "$who" udp 224.0.0.251 5353 --timeout 1) =~ ^(eperm|prohibited)$ ]] || fail "$who mDNS"
        [[ $(probe_as "$who" udp ff02::fb%eth0 5353 --timeout 1) =~ ^(eperm|prohibited)$ ]] || fail "$who mDNS v6"
        [[ $(probe_as "$who" udp 224.0.0.252 5355 --timeout 1) =~ ^(eperm|prohibited)$ ]] || fail "$who LLMNR"
        # Even into the TUN, DNS goes only to the in-tunnel resolver.
        [[ $(probe_as "$who" dns 10.200.3.77 --timeout 1) =~ ^(eperm|prohibited)$ ]] || fail "$who DNS in the TUN to another address"
        probe_as "$who" dns 10.200.3.2 --timeout 1 >/dev/null
        probe_as "$who" dns fd42:42:42::2 --timeout 1 >/dev/null
    done
    run lab_client dig +time=1 +tries=1 @"$LAB_ROUTER_IP4" example.com
    assert_failure
    lab_capture_stop
    assert_equal "$(lab_capture_count)" 0
    assert_equal "$(grep -c '^udp 10.200.3.2 53$' "$LAB_DIR/tunnel.out")" 2
    assert_equal "$(grep -c '^udp fd42:42:42::2 53$' "$LAB_DIR/tunnel.out")" 2
    run grep -c ' 10.200.3.77 ' "$LAB_DIR/tunnel.out"
    assert_output 0
}

@test "4: with the LAN allowed, a NetBIOS name query to a LAN address never arrives; other UDP to it does" {
    local port
    for port in 137 9999; do
        lab__spawn "$LAB_ROUTER" "router-udp-$port" socat -u "UDP4-RECV:$port,bind=$LAB_ROUTER_IP4" STDOUT
    done
    lab__wait_for 5 router_listening 137 && lab__wait_for 5 router_listening 9999
    # Control: without the kill switch the query arrives.
    lab_as "$DESKTOP_UID" socat -u - "UDP4-DATAGRAM:$LAB_ROUTER_IP4:137" <<<"netbios-name-query"
    lab__wait_for 5 grep -q netbios-name-query "$LAB_DIR/router-udp-137.out"

    psi_fw up --allow-lan
    run lab_as "$DESKTOP_UID" socat -u - "UDP4-DATAGRAM:$LAB_ROUTER_IP4:137" <<<"netbios-name-query"
    local query_status=$status
    lab_as "$DESKTOP_UID" socat -u - "UDP4-DATAGRAM:$LAB_ROUTER_IP4:9999" <<<"lan-datagram"
    lab__wait_for 5 grep -q lan-datagram "$LAB_DIR/router-udp-9999.out"
    assert_equal "$(grep -c netbios-name-query "$LAB_DIR/router-udp-137.out")" 1
    [ "$query_status" -ne 0 ] || fail "the NetBIOS name query was sent"
    [[ $(probe_as "$DESKTOP_UID" udp "$LAB_ROUTER_IP4" 137 --timeout 1) =~ ^(eperm|prohibited)$ ]]
}

@test "5: IPv6 from other users is rejected locally while the tunnel user's IPv6 works (NDP allowed)" {
    lab_client ip -6 neigh flush all
    lab_capture_start "ip6"
    [ "$(probe_as "$DESKTOP_UID" tcp "$LAB_INET_IP6" 8080)" = connected ]
    lab_capture_stop
    [ "$(lab_capture_count "ip6 and src host $LAB_CLIENT_IP6 and tcp port 8080")" -gt 0 ]

    psi_fw up
    lab_client ip -6 neigh flush all
    lab_capture_start "ip6"
    [[ $(probe_as "$DESKTOP_UID" tcp "$LAB_INET_IP6" 8080) =~ ^(refused|prohibited)$ ]]
    [ "$(probe_as "$TUNNEL_USER" tcp "$LAB_INET_IP6" 7000)" = connected ]
    lab_capture_stop
    assert_equal "$(lab_capture_count "ip6 and src host $LAB_CLIENT_IP6 and tcp port 8080")" 0
    [ "$(lab_capture_count "icmp6 and ip6[40] == 135")" -gt 0 ] || fail "no neighbour solicitation left"
    [ "$(lab_capture_count "ip6 and src host $LAB_CLIENT_IP6 and tcp dst port 7000")" -gt 0 ]
}

@test "7: tunnel killed, TUN deleted, uplink down and up: nothing leaks and the table stays" {
    tunnel_start
    tunnel_routes
    psi_fw up
    lab_capture_start
    flood_start 4
    sleep 0.5
    kill -KILL "$TUNNEL_PID"
    sleep 0.5
    lab_client ip link del PsiphonTUN
    sleep 0.5
    uplink_bounce
    flood_wait
    run psi_fw status
    assert_success
    [ "$(probe_as "$TUNNEL_USER" tcp "$LAB_INET_IP4" 7000)" = connected ]
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
    grep -q 'sent=' "$LAB_DIR/flood.out"
    lab_client nft list table inet psiphon_filter >/dev/null
    fw_add_tun

    assert_flood_seen_without_kill_switch
}

@test "8: replacing the table 50 times under a UDP flood leaks nothing; delete-then-load does" {
    lab_capture_start
    psi_fw up
    flood_start 60
    local i
    for i in $(seq 25); do
        psi_fw boot >/dev/null
        psi_fw up >/dev/null
    done
    kill -TERM "$FLOOD_PID"
    flood_wait
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0

    lab_capture_start
    flood_start 60
    for i in $(seq 25); do
        psi_fw down >/dev/null
        psi_fw up >/dev/null
    done
    kill -TERM "$FLOOD_PID"
    flood_wait
    lab_capture_stop
    [ "$(leaked_packets)" -gt 0 ] || fail "control: delete-then-load should leak"
}

# The third-party tables of test 10 as JSON, without their counters' values.
other_tables() {
    local table
    lab_client nft -j list tables
    for table in "ip filter" "ip nat" "inet firewalld" "inet user"; do
        # shellcheck disable=SC2086
        lab_client nft -j list table $table | sed 's/"packets": [0-9]*, "bytes": [0-9]*//g'
    done
}

@test "10: other tables stay byte-identical and their accepts do not bypass the kill switch" {
    lab_client nft -f - <<'EOF'
table ip filter {
    chain OUTPUT { type filter hook output priority 0; policy accept; counter accept; }
    chain FORWARD { type filter hook forward priority 0; policy accept; }
}
table ip nat {
    chain POSTROUTING { type nat hook postrouting priority 100; policy accept; masquerade; }
}
table inet firewalld {
    chain filter_OUTPUT { type filter hook output priority 10; policy accept; accept; }
}
table inet user {
    chain input { type filter hook input priority 0; policy drop; iif "lo" accept; ct state established,related accept; icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept; }
}
EOF
    local before
    before=$(other_tables)
    lab_capture_start
    assert_all_answered "$DESKTOP_UID"
    lab_capture_stop
    [ "$(leaked_packets)" -gt 0 ]

    psi_fw up
    lab_capture_start
    assert_all_rejected "$DESKTOP_UID"
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
    psi_fw boot
    psi_fw down
    assert_equal "$(other_tables)" "$before"

    # A third party flushes the whole ruleset: status reports it, up restores it.
    psi_fw up
    lab_client nft flush ruleset
    run psi_fw status
    assert_failure 3
    assert_output --partial "not loaded"
    run psi_fw up
    assert_success
    run psi_fw status
    assert_success
}

@test "13: DHCP and NDP pass exactly; their look-alikes do not" {
    psi_fw boot
    lab_capture_start
    lab_client socat -u - UDP4-DATAGRAM:255.255.255.255:67,bind=0.0.0.0:68,broadcast,so-bindtodevice=eth0 <<<"dhcp-discover"
    lab_client socat -u - "UDP6-DATAGRAM:[ff02::1:2]:547,bind=[::]:546,so-bindtodevice=eth0" <<<"dhcpv6-solicit"
    lab_client ip -6 neigh flush all
    run lab_client ndisc6 -1 -r 1 -w 1000 "$LAB_ROUTER_IP6" eth0
    assert_success
    # Look-alikes: wrong ports, wrong destination, echo requests.
    run lab_client socat -u - UDP4-DATAGRAM:"$LAB_ROUTER_IP4":9999,bind=0.0.0.0:68 <<<"not-dhcp"
    run lab_client socat -u - UDP4-DATAGRAM:"$LAB_ROUTER_IP4":67,bind=0.0.0.0:69 <<<"not-dhcp"
    run lab_client socat -u - "UDP6-DATAGRAM:[$LAB_ROUTER_IP6]:547,bind=[::]:546" <<<"not-dhcpv6"
    [[ $(probe_as "$DESKTOP_UID" udp "$LAB_ROUTER_IP4" 67 --timeout 1) =~ ^(eperm|prohibited)$ ]]
    run lab_client ping -6 -c1 -W1 "$LAB_ROUTER_IP6"
    assert_failure
    assert_output --partial "Administratively prohibited"
    lab_capture_stop
    [ "$(lab_capture_count "udp src port 68 and dst port 67 and dst host 255.255.255.255")" -eq 1 ]
    [ "$(lab_capture_count "udp src port 546 and dst port 547 and dst host ff02::1:2")" -eq 1 ]
    [ "$(lab_capture_count "icmp6 and ip6[40] == 135")" -gt 0 ]
    assert_equal "$(lab_capture_count "udp dst port 9999 or udp src port 69 or (udp port 547 and dst host $LAB_ROUTER_IP6)")" 0
    assert_equal "$(lab_capture_count "icmp6 and ip6[40] == 128")" 0

    # Control: without the kill switch the look-alikes leave.
    psi_fw down
    lab_capture_start
    lab_client socat -u - UDP4-DATAGRAM:"$LAB_ROUTER_IP4":9999,bind=0.0.0.0:68 <<<"not-dhcp"
    lab_client ping -6 -c1 -W1 "$LAB_ROUTER_IP6" >/dev/null
    lab_capture_stop
    [ "$(lab_capture_count "udp dst port 9999")" -eq 1 ]
    [ "$(lab_capture_count "icmp6 and ip6[40] == 128")" -eq 1 ]
}

@test "13: DHCP from port 68 reaches only the link: 100 datagrams to an Internet host arrive without the kill switch, 0 with it" {
    # As for a daemon with CAP_NET_BIND_SERVICE: uid 2000 may bind port 68.
    lab_client sysctl -qw net.ipv4.ip_unprivileged_port_start=0
    dhcp_receivers_start
    assert_equal "$(dhcp_send "$LAB_INET_IP4" 100)" "sent=100 failed=0"
    lab__wait_for 5 at_least 100 dhcp_received inet-dhcp
    assert_equal "$(dhcp_received inet-dhcp)" 100

    psi_fw boot
    dhcp_send "$LAB_INET_IP4" 100
    # Control: to the server on the link and to everyone on it, they still leave.
    assert_equal "$(dhcp_send "$LAB_ROUTER_IP4" 100)" "sent=100 failed=0"
    assert_equal "$(dhcp_send 255.255.255.255 1)" "sent=1 failed=0"
    lab__wait_for 5 at_least 101 dhcp_received router-dhcp
    sleep 0.5
    assert_equal "$(dhcp_received router-dhcp)" 101
    assert_equal "$(dhcp_received inet-dhcp)" 100
}

@test "13: NDP goes only to link-local and link multicast: root's solicitations to a global address never arrive" {
    local router_link_local
    router_link_local=$(lab_router ip -6 -o addr show dev rc scope link | awk '{ sub("/.*", "", $4); print $4 }')
    ndp_counter_start "$LAB_INET" inet-ndp 2
    lab_client /usr/bin/python3 "$LINK_MESSAGES" solicit "$LAB_INET_IP6" --count 10
    assert_equal "$(ndp_received inet-ndp)" 20

    psi_fw boot
    ndp_counter_start "$LAB_INET" inet-ndp 2
    ndp_counter_start "$LAB_ROUTER" router-ndp 2
    local to_global to_link_local
    to_global=$(lab_client /usr/bin/python3 "$LINK_MESSAGES" solicit "$LAB_INET_IP6" --count 10)
    # Control: to the router's link-local address they leave and arrive.
    to_link_local=$(lab_client /usr/bin/python3 "$LINK_MESSAGES" solicit "$router_link_local%eth0" --count 10)
    assert_equal "$(ndp_received inet-ndp)" 0
    assert_equal "$to_global" "sent=0 failed=20"
    assert_equal "$(ndp_received router-ndp)" 20
    assert_equal "$to_link_local" "sent=20 failed=0"
    # The kernel's own neighbour discovery still works.
    lab_client ip -6 neigh flush all
    run lab_client ndisc6 -1 -r 1 -w 1000 "$LAB_ROUTER_IP6" eth0
    assert_success
}

@test "14: errors never open the switch: bad config, unknown user, psi-fw killed mid-apply" {
    psi_fw up
    lab_capture_start
    flood_start 30

    echo '{"AllowLan": "yes"}' >"$LAB_DIR/bad.conf"
    chmod 600 "$LAB_DIR/bad.conf"
    run lab_client "$PSI_FW" --config "$LAB_DIR/bad.conf" up
    assert_failure 2
    assert_output --partial "line 1: AllowLan must be true or false"

    echo '{"TunnelUser": "no-such-user-psi"}' >"$LAB_DIR/nouser.conf"
    chmod 600 "$LAB_DIR/nouser.conf"
    run lab_client "$PSI_FW" --config "$LAB_DIR/nouser.conf" up
    assert_failure 1
    assert_output --partial "user no-such-user-psi does not exist"

    echo '{}' >"$LAB_DIR/open.conf"
    chmod 666 "$LAB_DIR/open.conf"
    run lab_client "$PSI_FW" --config "$LAB_DIR/open.conf" up
    assert_failure 2
    assert_output --partial "writable only by root"

    local i
    for i in $(seq 20); do
        lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" boot >/dev/null &
        local pid=$!
        sleep "0.0$((i % 5))"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        lab_client nft list table inet psiphon_filter >/dev/null || fail "table absent after killing psi-fw"
    done
    kill -TERM "$FLOOD_PID"
    flood_wait
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
    run psi_fw status
    assert_success

    assert_flood_seen_without_kill_switch
}

@test "15: the tunnel user cannot remove the kill switch or change what root runs" {
    psi_fw up
    run lab_as_user "$TUNNEL_USER" nft delete table inet psiphon_filter
    assert_failure
    assert_output --partial "Operation not permitted"
    run lab_as_user "$TUNNEL_USER" "$PSI_FW" --config "$LAB_DIR/psi.conf" down
    assert_failure
    run psi_fw status
    assert_success

    # An installed tree: binaries 755 and config 600, all root's.
    local root
    root=$(mktemp -d)
    chmod 755 "$root"
    make -s -C "$BATS_TEST_DIRNAME/.." install DESTDIR="$root" PREFIX=/usr >/dev/null
    run lab_as_user "$TUNNEL_USER" sh -c "echo x >> '$root/usr/sbin/psi-fw'"
    assert_failure
    run lab_as_user "$TUNNEL_USER" cat "$root/etc/psiphon/psi.conf"
    assert_failure
    run lab_as_user "$TUNNEL_USER" touch "$root/usr/sbin/new"
    assert_failure
    run stat -c '%a %U' "$root/usr/sbin/psi-fw" "$root/etc/psiphon/psi.conf"
    assert_output $'755 root\n600 root'
    # The installed config names the shipped server list where this PREFIX puts it.
    [ "$(jq -r .EmbeddedServerList "$root/etc/psiphon/psi.conf")" = /usr/share/psi/server_list ]
    # Control: root can write there, so the failures above are the permissions at work.
    touch "$root/usr/sbin/new"
    rm -rf "$root"

    # The tunnel user attaches to its own TUN with no capability at all.
    tunnel_start
    run grep -q attached "$LAB_DIR/tunnel.out"
    assert_success
    run grep CapEff "/proc/$TUNNEL_PID/status"
    assert_output --regexp 'CapEff:[[:space:]]+0+$'
}

@test "19: loopback, local proxies and the machine's own addresses keep working; nothing reaches the wire" {
    psi_fw up
    lab__spawn "$LAB_CLIENT" local-proxy socat TCP4-LISTEN:1081,bind=127.0.0.1,reuseaddr,fork SYSTEM:"echo proxy"
    lab__spawn "$LAB_CLIENT" local-lan socat TCP4-LISTEN:8181,bind="$LAB_CLIENT_IP4",reuseaddr,fork SYSTEM:"echo lan"
    lab__wait_for 5 sh -c "ip netns exec $LAB_CLIENT ss -Hnlt 'sport = :8181' | grep -q ."
    lab__wait_for 5 sh -c "ip netns exec $LAB_CLIENT ss -Hnlt 'sport = :1081' | grep -q ."
    lab_capture_start
    for who in "$DESKTOP_UID" "$TUNNEL_USER" root; do
        [ "$(probe_as "$who" tcp 127.0.0.1 1081)" = connected ] || fail "$who to the local proxy"
        [ "$(probe_as "$who" tcp "$LAB_CLIENT_IP4" 8181)" = connected ] || fail "$who to its own LAN address"
    done
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
}

@test "verify proves the kill switch with probes; without it, verify fails and says why" {
    run psi_fw verify --probe-ipv4 "$LAB_INET_IP4" --probe-ipv6 "$LAB_INET_IP6" --probe-port 8080
    assert_failure 3
    assert_output --partial "not loaded"
    assert_output --regexp 'FAIL +tcp-ipv4 +any route +answered'
    assert_output --regexp 'FAIL +tcp-ipv4 +bound to eth0 +answered'
    # Refused by the far end, not by a kill switch: the probe's packet was seen leaving.
    assert_output --regexp 'FAIL +dns-ipv4 +any route +a packet got past the kill switch'
    run lab_client nft list table inet psiphon_verify
    assert_failure

    psi_fw up
    lab_capture_start
    run psi_fw verify --probe-ipv4 "$LAB_INET_IP4" --probe-ipv6 "$LAB_INET_IP6" --probe-port 8080
    lab_capture_stop
    assert_success
    assert_output --partial "verified: nothing leaves outside the tunnel"
    assert_output --regexp 'ok +dns-ipv6 +bound to eth0 +rejected by the kill switch'
    assert_output --regexp 'ok +udp-ipv4 +bound to eth0 +rejected by the kill switch'
    refute_output --partial FAIL
    assert_equal "$(leaked_packets)" 0

    run psi_fw verify --json --probe-ipv4 "$LAB_INET_IP4" --probe-ipv6 "$LAB_INET_IP6" --probe-port 8080
    assert_success
    [ "$(jq -r '.secure' <<<"$output")" = true ]
    [ "$(jq '[.probes[] | select(.passed)] | length' <<<"$output")" -eq 12 ]
}

@test "status names each difference and exits 3; up restores the expected table" {
    psi_fw up
    lab_client nft insert rule inet psiphon_filter output meta skuid "$DESKTOP_UID" accept
    lab_client nft 'add chain inet psiphon_filter forward { policy accept; }'
    run psi_fw status
    assert_failure 3
    assert_output --partial 'chain forward: type filter hook forward priority 0 policy accept, expected'
    assert_output --partial 'chain output: unexpected rule "handle'
    run psi_fw status --json
    assert_failure 3
    [ "$(jq '.differences | length' <<<"$output")" -eq 2 ]
    [ "$(jq '.intact' <<<"$output")" = false ]
    run psi_fw up
    assert_output --partial "kill switch up"
    run psi_fw up
    assert_output --partial "already up"
    run psi_fw status --json
    assert_success
    [ "$(jq -r '.policy' <<<"$output")" = tunnel ]
}

@test "without the right to check its table, boot still loads the blocked policy, then says so" {
    run lab_client setpriv --bounding-set=-sys_admin "$PSI_FW" --config "$LAB_DIR/psi.conf" boot
    assert_failure 1
    assert_output --partial "the kill switch is loaded but could not be checked"
    lab_capture_start
    assert_all_rejected "$DESKTOP_UID"
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
    run psi_fw status
    assert_output --partial "blocked (boot policy), intact"
}

@test "boot blocks before the uplink has an address; the unit is ordered before network-pre" {
    lab_client ip link set eth0 down
    psi_fw boot
    uplink_bounce 0
    lab_capture_start
    assert_all_rejected root
    assert_all_rejected "$DESKTOP_UID"
    [[ $(probe_as "$TUNNEL_USER" tcp "$LAB_INET_IP4" 7000 --timeout 1) =~ ^(refused|unreachable|prohibited)$ ]]
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    run psi_fw status
    assert_output --partial "blocked (boot policy), intact"

    local unit="$BATS_TEST_DIRNAME/../share/systemd/psi-fw-boot.service"
    grep -qx 'DefaultDependencies=no' "$unit"
    grep -qx 'Before=network-pre.target' "$unit"
    grep -qx 'Wants=network-pre.target' "$unit"
    grep -q 'psi-fw --config .* boot$' "$unit"
}

@test "watch restores the kill switch at once when it is flushed, deleted or changed; the user stays inside" {
    local pid restored
    lab__spawn "$LAB_CLIENT" watch "$PSI_FW" --config "$LAB_DIR/psi.conf" watch
    pid=$LAB_LAST_PID
    lab__wait_for 5 psi_fw status
    lab_client nft flush ruleset
    lab__wait_for 2 psi_fw status
    lab_client nft delete table inet psiphon_filter
    lab__wait_for 2 psi_fw status
    lab_client nft insert rule inet psiphon_filter output meta skuid "$DESKTOP_UID" accept
    lab__wait_for 2 psi_fw status
    lab_client nft add table inet other
    lab_client nft add chain inet other output '{ type filter hook output priority 0; policy accept; }'
    psi_fw status
    lab_capture_start
    assert_all_rejected "$DESKTOP_UID"
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
    restored=$(grep -c "restored" "$LAB_DIR/watch.err")
    [ "$restored" -eq 3 ] || { cat "$LAB_DIR/watch.err"; false; }
    grep -q "the kill switch was removed by someone else; restored (tunnel)" "$LAB_DIR/watch.err"
    grep -q "the kill switch was changed by someone else (.*); restored" "$LAB_DIR/watch.err"
    # Stopped, it leaves the kill switch as it is; another tool's table was never touched.
    lab__stop "$pid" TERM
    psi_fw status
    lab_client nft list table inet other >/dev/null
    lab_client nft delete table inet other
}

@test "watch keeps the blocked policy while the tunnel user does not exist, instead of what someone left" {
    local pid
    printf '{\n  "TunnelUser": "psi-no-such-user"\n}\n' >"$LAB_DIR/gone.conf"
    chmod 600 "$LAB_DIR/gone.conf"
    lab_client nft add table inet psiphon_filter
    lab__spawn "$LAB_CLIENT" watch-gone "$PSI_FW" --config "$LAB_DIR/gone.conf" watch
    pid=$LAB_LAST_PID
    lab__wait_for 5 fw_policy_is blocked
    lab_client nft flush ruleset
    lab__wait_for 2 fw_policy_is blocked
    lab__ours "$pid"
    grep -q "psi-no-such-user.*keeping the blocked policy instead" "$LAB_DIR/watch-gone.err"
    lab__stop "$pid" TERM
    lab_capture_start
    assert_all_rejected "$DESKTOP_UID"
    lab_capture_stop
    assert_equal "$(leaked_packets)" 0
}

@test "help, version, and one-line errors for bad usage" {
    run "$PSI_FW" --version
    assert_success
    assert_output --regexp '^psi-fw [0-9]+\.[0-9]+\.[0-9]+$'
    run "$PSI_FW" --help
    assert_success
    assert_output --partial "verify"
    run "$PSI_FW" frobnicate
    assert_failure 2
    run "$PSI_FW" --config /nonexistent/psi.conf status
    assert_failure 2
    assert_output "psi-fw: error: cannot read config /nonexistent/psi.conf: No such file or directory"
}

