#!/usr/bin/env bats
# Control suite for the lab's censor (tests/lab/censor.bash), which the transports' tests stand
# on: each of its policies blocks what it says from the client, lets the rest through, and its
# counter proves the censor acted. The origins are in inet (socat's "hello" on 8080 and 8081,
# UDP echo on 7000 and 7001, tests/tools/http_echo.py on 80, 443 and 8443, a resolver on 53),
# the CDN (tests/lab/cdn.bash) passes to inet's port 80.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/lab
    load lab/cdn
    lab_up
    local echo=$BATS_TEST_DIRNAME/tools/http_echo.py port
    lab_listen_tcp 8080
    lab_listen_tcp 8081
    lab_listen_udp 7000
    lab_listen_udp 7001
    for port in 80 443 8443; do
        lab__spawn "$LAB_INET" "origin-$port" /usr/bin/python3 "$echo" --bind "$LAB_INET_IP4" --port "$port"
    done
    lab__spawn "$LAB_INET" origin6-8443 /usr/bin/python3 "$echo" --bind "$LAB_INET_IP6" --port 8443
    lab__spawn "$LAB_INET" dns /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/dns_server.py" --bind "$LAB_INET_IP4" \
        --port 53 --record "inet.psi.test=$LAB_INET_IP4"
    lab__wait_for 5 grep -q listening "$LAB_DIR/dns.out" "$LAB_DIR/origin-80.out" "$LAB_DIR/origin-443.out" \
        "$LAB_DIR/origin-8443.out" "$LAB_DIR/origin6-8443.out"
    cdn_up front.psi.test "$LAB_INET_IP4:80"
}

teardown_file() {
    load lab/lab
    local prefix=$LAB_PREFIX
    lab_down
    if ip netns list | grep -F "$prefix-"; then
        echo "lab_down left these namespaces" >&2
        return 1
    fi
}

setup() {
    load '/usr/lib/bats/bats-support/load'
    load '/usr/lib/bats/bats-assert/load'
    load lab/lab
    load lab/cdn
    load lab/censor
}

teardown() {
    censor_clear
}

probe() { # tcp|udp|dns ADDR [PORT]: the probe's one word, from the client
    lab_client "$LAB_PROBE" "$@" --timeout 1 2>/dev/null
}

assert_counted() { # COUNTER: the censor's rules behind it hit at least one packet
    local packets
    packets=$(censor_counter "$1")
    assert [ "$packets" -gt 0 ]
}

@test "censor_drop_port: TCP and UDP to the dropped port time out, other ports answer, by IPv4 and IPv6" {
    censor_drop_port tcp 8080
    assert_equal "$(probe tcp "$LAB_INET_IP4" 8080)" timeout
    assert_equal "$(probe tcp "$LAB_INET_IP6" 8080)" timeout
    assert_equal "$(probe tcp "$LAB_INET_IP4" 8081)" connected
    assert_equal "$(probe udp "$LAB_INET_IP4" 7000)" reply
    assert_counted drop_tcp_8080
    local tcp_dropped
    tcp_dropped=$(censor_counter drop_tcp_8080)
    # A second policy adds to the first, whose counter keeps counting.
    censor_drop_port udp 7000
    assert_equal "$(probe udp "$LAB_INET_IP4" 7000)" timeout
    assert_equal "$(probe udp "$LAB_INET_IP6" 7000)" timeout
    assert_equal "$(probe udp "$LAB_INET_IP4" 7001)" reply
    assert_equal "$(probe tcp "$LAB_INET_IP4" 8080)" timeout
    assert_counted drop_udp_7000
    assert [ "$(censor_counter drop_tcp_8080)" -gt "$tcp_dropped" ]
}

@test "censor_reset_after_first_bytes: the handshake passes, the first request resets the connection on both sides" {
    censor_reset_after_first_bytes 8443
    assert_equal "$(probe tcp "$LAB_INET_IP4" 8443)" connected
    assert_equal "$(censor_counter reset_8443)" 0
    run lab_client curl -sS -m 5 "http://$LAB_INET_IP4:8443/"
    assert_failure 56
    assert_output --partial "reset by peer"
    run lab_client curl -sS -m 5 "http://[$LAB_INET_IP6]:8443/"
    assert_failure 56
    assert_equal "$(censor_counter reset_8443)" 2
    assert_counted reset_8443_after
    # The origins saw a reset where they waited for the request, and never the request.
    lab__wait_for 5 grep -q ConnectionResetError "$LAB_DIR/origin-8443.err"
    lab__wait_for 5 grep -q ConnectionResetError "$LAB_DIR/origin6-8443.err"
    assert_equal "$(wc -l <"$LAB_DIR/origin-8443.out")" 1  # "listening"
    # Another port is untouched.
    run lab_client curl -sS -m 5 "http://$LAB_INET_IP4:443/"
    assert_success
    assert_equal "$(jq -r .method <<<"$output")" GET
}

@test "censor_only_tcp443: TCP to 443 passes; TCP to 80, UDP, DNS to inet and to the router do not" {
    assert_equal "$(probe dns "$LAB_INET_IP4")" reply
    assert_equal "$(probe dns "$LAB_ROUTER_IP4")" refused  # nothing serves DNS there: ICMP says so
    censor_only_tcp443
    run lab_client curl -sS -m 5 "http://$LAB_INET_IP4:443/"
    assert_success
    assert_equal "$(jq -r .method <<<"$output")" GET
    run lab_client curl -sS -m 2 "http://$LAB_INET_IP4:80/"
    assert_failure 28
    assert_equal "$(probe dns "$LAB_INET_IP4")" timeout
    assert_equal "$(probe dns "$LAB_ROUTER_IP4")" timeout
    assert_equal "$(probe udp "$LAB_INET_IP4" 7000)" timeout
    assert_equal "$(probe tcp "$LAB_INET_IP6" 8080)" timeout
    assert_counted only_tcp443
}

@test "censor_only_to the CDN: the CDN answers by IPv4 and IPv6 and reaches inet for the client, inet itself does not answer" {
    censor_only_to "$LAB_CDN_IP4" "$LAB_CDN_IP6"
    local address
    for address in "$LAB_CDN_IP4" "[$LAB_CDN_IP6]"; do
        run lab_client curl -sS -m 5 --cacert "$LAB_DIR/cdn-ca.pem" --resolve "front.psi.test:443:$address" \
            https://front.psi.test/
        assert_success
        assert_equal "$(jq -r .host <<<"$output")" front.psi.test
    done
    run lab_client curl -sS -m 2 "http://$LAB_INET_IP4:80/"
    assert_failure 28
    assert_equal "$(probe tcp "$LAB_INET_IP6" 8080)" timeout
    assert_equal "$(probe udp "$LAB_INET_IP4" 7000)" timeout
    assert_equal "$(probe dns "$LAB_ROUTER_IP4")" timeout
    assert_counted only_to
}

@test "censor_clear: the table is gone and everything passes again" {
    censor_drop_port tcp 8080
    censor_only_tcp443
    assert_equal "$(probe tcp "$LAB_INET_IP4" 8080)" timeout
    censor_clear
    run lab_router nft list tables
    refute_output --partial psi_censor
    assert_equal "$(probe tcp "$LAB_INET_IP4" 8080)" connected
    assert_equal "$(probe dns "$LAB_INET_IP4")" reply
    run censor_counter drop_tcp_8080
    assert_failure
}

@test "the censor's table is the router namespace's own, and a bad policy is refused before any rule" {
    censor_drop_port tcp 8080
    run lab_router nft list tables
    assert_output "table inet psi_censor"
    run nft list tables
    refute_output --partial psi_censor
    run lab_client nft list tables
    refute_output --partial psi_censor
    run censor_drop_port sctp 9
    assert_failure 2
    run censor_drop_port tcp 70000
    assert_failure 2
    run censor_reset_after_first_bytes 'x; flush ruleset'
    assert_failure 2
    run censor_only_to
    assert_failure 2
    run censor_only_to "$LAB_CDN_IP4 } accept"
    assert_failure 2
    assert_equal "$(cat "$LAB_DIR/censor.policy")" "drop tcp 8080"
}
