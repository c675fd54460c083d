#!/usr/bin/env bats
# Control suite for the test lab: proves that traffic flows, the probe
# reports what happened, and the capture sees what left the client.  Every
# leak test relies on this, so each check here must be able to fail.

bats_require_minimum_version 1.5.0

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'lab/lab'

TCP_PORT=8080
UDP_PORT=7000

setup() {
    lab_up
}

teardown() {
    lab_down
}

probe_as_2000() {
    run --separate-stderr lab_as 2000 "$LAB_PROBE" "$@"
}

assert_captured() { # BPF filter: at least one leaving packet matches
    local count
    count=$(lab_capture_count "$(lab_leak_filter) and ($1)")
    assert [ "$count" -gt 0 ]
}

@test "lab_up builds client, router and inet with the documented addresses" {
    run lab_client ip -br addr show dev eth0
    assert_output --partial "$LAB_CLIENT_IP4/24"
    assert_output --partial "$LAB_CLIENT_IP6/64"
    run lab_router ip -br addr show dev rc
    assert_output --partial "$LAB_ROUTER_IP4/24"
    run lab_inet ip -br addr show dev eth0
    assert_output --partial "$LAB_INET_IP6/64"
    run lab_client cat /etc/resolv.conf
    assert_output "nameserver $LAB_ROUTER_IP4"
}

@test "lab_as runs without privileges as the given uid" {
    run lab_as 2000 id -u
    assert_output 2000
    run lab_as 2000 id -G
    assert_output 2000
    run lab_as 2000 grep -cE '^Cap(Inh|Prm|Eff|Bnd|Amb):\s+0+$' /proc/self/status
    assert_output 5
    run lab_as_user nobody id -un
    assert_output nobody
}

@test "tcp over IPv4 to inet connects and is captured" {
    lab_listen_tcp "$TCP_PORT"
    lab_capture_start
    probe_as_2000 tcp "$LAB_INET_IP4" "$TCP_PORT"
    lab_capture_stop
    assert_success
    assert_output connected
    assert_captured "tcp dst port $TCP_PORT and dst host $LAB_INET_IP4"
}

@test "tcp over IPv6 to inet connects and is captured" {
    lab_listen_tcp "$TCP_PORT"
    lab_capture_start
    probe_as_2000 tcp "$LAB_INET_IP6" "$TCP_PORT"
    lab_capture_stop
    assert_success
    assert_output connected
    assert_captured "tcp dst port $TCP_PORT and dst host $LAB_INET_IP6"
}

@test "tcp to a closed port is refused" {
    probe_as_2000 tcp "$LAB_INET_IP4" "$TCP_PORT"
    assert_output refused
}

@test "udp to inet gets its reply over IPv4 and IPv6" {
    lab_listen_udp "$UDP_PORT"
    lab_capture_start
    probe_as_2000 udp "$LAB_INET_IP4" "$UDP_PORT"
    assert_output reply
    probe_as_2000 udp "$LAB_INET_IP6" "$UDP_PORT"
    assert_output reply
    lab_capture_stop
    assert_captured "udp dst port $UDP_PORT and dst host $LAB_INET_IP4"
    assert_captured "udp dst port $UDP_PORT and dst host $LAB_INET_IP6"
}

@test "dns query to the router is seen on the capture" {
    lab_capture_start
    probe_as_2000 dns "$LAB_ROUTER_IP4"
    lab_capture_stop
    # Nothing serves DNS on the router: the ICMP error proves the path.
    assert_output refused
    assert_captured "udp dst port 53 and dst host $LAB_ROUTER_IP4"
}

@test "udp send dropped by the client's own firewall reports eperm" {
    lab_client nft -f - <<EOF
table inet lab_test {
    chain output {
        type filter hook output priority 0; policy accept;
        ip daddr $LAB_INET_IP4 drop
        ip6 daddr $LAB_INET_IP6 drop
    }
}
EOF
    lab_listen_udp "$UDP_PORT"
    probe_as_2000 udp "$LAB_INET_IP4" "$UDP_PORT"
    assert_output eperm
    probe_as_2000 udp "$LAB_INET_IP6" "$UDP_PORT"
    assert_output eperm
}

@test "flood paces datagrams and counts failed sends" {
    lab_listen_udp "$UDP_PORT"
    probe_as_2000 flood "$LAB_INET_IP4" "$UDP_PORT" --seconds 1 --pps 50
    assert_output --regexp '^sent=(4[5-9]|5[0-5]) failed=0$'
    lab_client nft add table inet lab_test
    lab_client nft add chain inet lab_test output \
        '{ type filter hook output priority 0; policy drop; }'
    probe_as_2000 flood "$LAB_INET_IP4" "$UDP_PORT" --seconds 0.5
    assert_output --regexp '^sent=0 failed=[1-9][0-9]*$'
}

@test "leak filter skips ARP and NDP but counts everything else" {
    lab_client ip neigh flush all
    lab_capture_start
    lab_client ping -q -c1 -W1 "$LAB_ROUTER_IP4"
    lab_client ping -q -c1 -W1 "$LAB_ROUTER_IP6"
    lab_capture_stop
    run lab_capture_count arp
    assert [ "$output" -gt 0 ]
    run lab_capture_count 'icmp6 and ip6[40] == 135'
    assert [ "$output" -gt 0 ]
    run lab_capture_count "$(lab_leak_filter)"
    assert_output 2
}

@test "an idle client sends nothing the leak filter counts" {
    lab_capture_start
    sleep 1
    lab_capture_stop
    run lab_capture_count "$(lab_leak_filter)"
    assert_output 0
}

@test "lab_capture_count fails on a bad filter instead of counting 0" {
    lab_capture_start
    lab_client ping -q -c1 -W1 "$LAB_ROUTER_IP4"
    lab_capture_stop
    run lab_capture_count 'no such filter'
    assert_failure
}

@test "lab_down removes namespaces, processes and files, and can run twice" {
    local prefix=$LAB_PREFIX dir=$LAB_DIR pids
    lab_listen_tcp "$TCP_PORT"
    lab_capture_start
    pids=$(cat "$dir/pids")
    lab_down
    run ip netns list
    refute_output --partial "$prefix-"
    run ls /etc/netns
    refute_output --partial "$prefix-"
    assert [ ! -e "$dir" ]
    for pid in $pids; do
        assert [ ! -e "/proc/$pid" ]
    done
    run lab_down
    assert_success
}

@test "lab_down cleans up after a half-built lab" {
    lab_down
    lab__pick_names
    LAB_DIR=$(mktemp -d /tmp/psi-lab.XXXXXX)
    lab__add_namespaces
    lab_down
    run ip netns list
    refute_output --partial "$LAB_PREFIX-"
    run ls /etc/netns
    refute_output --partial "$LAB_PREFIX-"
}

@test "lab_down ends a fixture's processes and removes its namespace (the CDN's), also one cdn_up left half built" {
    load 'lab/cdn'
    local prefix=$LAB_PREFIX master
    cdn_up front.psi.test "$LAB_INET_IP4:8080"
    master=$(cat "$LAB_DIR/cdn/nginx.pid")
    lab_down
    run ip netns list
    refute_output --partial "$prefix-"
    run ls /etc/netns
    refute_output --partial "$prefix-"
    assert [ ! -e "/proc/$master" ]
    lab_up
    # cdn_up takes down what it built when a step fails; lab_down what a step left.
    cdn__start() { return 1; }
    run cdn_up front.psi.test "$LAB_INET_IP4:8080"
    assert_failure
    assert [ ! -e "/run/netns/$LAB_PREFIX-cdn" ]
    cdn__add_namespace
    lab_down
    run ip netns list
    refute_output --partial "$LAB_PREFIX-"
}
