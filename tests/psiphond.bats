#!/usr/bin/env bats
# psi-connect against the real Psiphon server: psiphond built from psiphon-tunnel-core (make peer),
# its configuration generated for each test by `psiphond generate` (tests/lab/peer.bash), in the
# lab's inet namespace. What a user checks: a page through SOCKS5 and the HTTP proxy, UDP and DNS
# through udpgw, what the server refuses; and what the server saw, from its own log.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/lab
    lab_up
    mkdir -p "$LAB_DIR/www"
    chmod o+x "$LAB_DIR"
    echo "hello from inet" >"$LAB_DIR/www/index.html"
    chmod -R o+rX "$LAB_DIR/www"
    lab__spawn "$LAB_INET" http /usr/bin/python3 -m http.server --bind :: --directory "$LAB_DIR/www" 8080
    lab_listen_udp 7200
    lab__spawn "$LAB_INET" dns /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/dns_server.py" --bind "$LAB_INET_IP4" \
        --port 53 --record "inet.psi.test=$LAB_INET_IP4"
    lab__wait_for 5 grep -q listening "$LAB_DIR/dns.out"
}

teardown_file() {
    load lab/lab
    lab_down
}

setup() {
    load '/usr/lib/bats/bats-support/load'
    load '/usr/lib/bats/bats-assert/load'
    load lab/lab
    load lab/connect
    load lab/peer
}

teardown() {
    [ -n "${CONNECT_PID:-}" ] && lab__stop "$CONNECT_PID" TERM
    [ -n "${PEER_PID:-}" ] && lab__stop "$PEER_PID" TERM
    CONNECT_PID= PEER_PID=
}

through_socks() { # PORT URL [curl options]
    local port=$1 url=$2
    shift 2
    lab_client curl -sS -m 10 --socks5-hostname "127.0.0.1:$port" "$@" "$url"
}

# psi-connect NAME ends by itself with status 1 within 20 s, never having had a tunnel.
connect_fails() { # NAME
    local pid=$CONNECT_PID
    lab__wait_for 20 lab__gone "$pid"
    run wait "$pid"
    assert_equal "$status" 1
    CONNECT_PID=
    run grep -c '"noticeType":"Tunnels","timestamp":"[^"]*"' "$LAB_DIR/$1.out"
    ! grep -q '"count":1' "$LAB_DIR/$1.out"
}

@test "real psiphond, OSSH: a page through SOCKS5 by IPv4 and IPv6; the server logs a completed handshake" {
    peer_start psiphond
    connect_start ossh "$LAB_DIR/psiphond.entry" --socks 1083 --protocols OSSH
    connect_wait_tunnels ossh 1 15
    run through_socks 1083 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run through_socks 1083 "http://[$LAB_INET_IP6]:8080/"
    assert_output "hello from inet"
    grep -q '"data":{"protocol":"OSSH"},"noticeType":"ActiveTunnel"' "$LAB_DIR/ossh.out"
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab__wait_for 5 test -n "$(peer_event psiphond server_tunnel)"
    run jq -r '[.relay_protocol, .handshake_completed, .sponsor_id, .propagation_channel_id,
                (.bytes_down_tcp > 0)] | @tsv' <<<"$(peer_event psiphond server_tunnel | tail -n 1)"
    assert_output "$(printf 'OSSH\ttrue\tFFFFFFFFFFFFFFFF\tFFFFFFFFFFFFFFFF\ttrue')"
}

@test "real psiphond, SSH: the HTTP proxy's CONNECT and absolute-URI requests reach the inet host" {
    peer_start psiphond
    connect_start ssh "$LAB_DIR/psiphond.entry" --socks 1084 --http 8084 --protocols SSH
    connect_wait_tunnels ssh 1 15
    grep -q '"data":{"protocol":"SSH"},"noticeType":"ActiveTunnel"' "$LAB_DIR/ssh.out"
    run lab_client curl -sS -m 10 -x http://127.0.0.1:8084 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run lab_client curl -sS -m 10 -p -x http://127.0.0.1:8084 "http://[$LAB_INET_IP6]:8080/"
    assert_success
    assert_output "hello from inet"
    # The real server rejects every port forward it cannot open as "administratively prohibited"
    # (it tells a client nothing more): the proxy answers 403.
    run lab_client curl -sS -m 10 -o /dev/null -w '%{http_code}' -x http://127.0.0.1:8084 "http://$LAB_INET_IP4:8099/"
    assert_output 403
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab__wait_for 5 test -n "$(peer_event psiphond server_tunnel)"
    [ "$(peer_event psiphond server_tunnel | tail -n 1 | jq -r .relay_protocol)" = SSH ]
}

@test "real psiphond, udpgw: UDP echo by IPv4 and IPv6, and DNS to any address answered by the server's resolver" {
    peer_start psiphond --dns "$LAB_INET_IP4"
    connect_start udp "$LAB_DIR/psiphond.entry" --socks 1088
    connect_wait_tunnels udp 1 15
    local client=$BATS_TEST_DIRNAME/tools/socks5_udp_client.py
    run lab_client /usr/bin/python3 "$client" --proxy 127.0.0.1:1088 --to "$LAB_INET_IP4:7200" --message ping4
    assert_success
    assert_output "ping4"
    run lab_client /usr/bin/python3 "$client" --proxy 127.0.0.1:1088 --to "[$LAB_INET_IP6]:7200" --message ping6 \
        --show-source
    assert_success
    assert_output "$LAB_INET_IP6 7200 ping6"
    run lab_client /usr/bin/python3 "$client" --proxy 127.0.0.1:1088 --to "192.0.2.53:53" --dns-query inet.psi.test
    assert_success
    assert_output "$LAB_INET_IP4"
    grep -q '^query udp inet.psi.test A$' "$LAB_DIR/dns.out"
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab__wait_for 5 test -n "$(peer_event psiphond server_tunnel)"
    [ "$(peer_event psiphond server_tunnel | tail -n 1 | jq -r '.bytes_up_udp > 0')" = true ]
}

@test "real psiphond: an entry with another server's host key is refused before any credentials are sent" {
    peer_start psiphond
    ssh-keygen -q -t rsa -b 2048 -N '' -f "$LAB_DIR/other_host_key"
    peer_entry_edit psiphond ".sshHostKey = \"$(cut -d' ' -f2 "$LAB_DIR/other_host_key.pub")\"" "$LAB_DIR/other-key.entries"
    connect_start otherkey "$LAB_DIR/other-key.entries" --socks 1085 --establish-timeout 3 --dial-timeout 3
    connect_fails otherkey
    grep -q "host key" "$LAB_DIR/otherkey.err"
    # The server never saw a completed handshake.
    [ -z "$(peer_event psiphond server_tunnel | jq -c 'select(.handshake_completed)')" ]
}

@test "real psiphond: a wrong password in the entry is refused by the server" {
    peer_start psiphond
    peer_entry_edit psiphond '.sshPassword = "0000"' "$LAB_DIR/bad-password.entries"
    connect_start badpw "$LAB_DIR/bad-password.entries" --socks 1086 --establish-timeout 3 --dial-timeout 3
    connect_fails badpw
    grep -q "the server refused the credentials" "$LAB_DIR/badpw.err"
}

@test "real psiphond: of a dead entry and a good one, the good one wins over OSSH and the dead one is named" {
    peer_start psiphond
    connect_entry '{"ipAddress":"192.0.2.1","sshObfuscatedPort":443,"sshObfuscatedKey":"k","capabilities":["OSSH"]}' \
        >"$LAB_DIR/several.entries"
    cat "$LAB_DIR/psiphond.entry" >>"$LAB_DIR/several.entries"
    chmod 644 "$LAB_DIR/several.entries"
    connect_start several "$LAB_DIR/several.entries" --socks 1087 --parallel 1 --dial-timeout 2
    connect_wait_tunnels several 1 15
    grep -q '"data":{"protocol":"OSSH"},"noticeType":"ActiveTunnel"' "$LAB_DIR/several.out"
    run through_socks 1087 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    grep -q "^psi-connect: warning: OSSH 192.0.2.1:443: " "$LAB_DIR/several.err"
}
