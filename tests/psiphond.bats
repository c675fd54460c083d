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
    run lab_client curl -sS -m 10 -o /dev/null -w '%{http_code}' -x http://127.0.0.1:8084 "ftp://$LAB_INET_IP4/"
    assert_output 501
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

@test "real psiphond: the sponsor's homepage from psinet, and the servers discovery hands out are written for psi-servers" {
    local discovered_line
    discovered_line=$(connect_entry '{"ipAddress":"192.175.48.7","sshPort":22,"capabilities":["SSH"],"region":"US"}')
    peer_start psiphond --homepage "https://home.psi.test/" --discover "$discovered_line"
    mkdir -p "$LAB_DIR/state" && chown psiphon-user "$LAB_DIR/state"
    connect_start discovery "$LAB_DIR/psiphond.entry" --socks 1089 --protocols OSSH --discovered "$LAB_DIR/state/discovered"
    connect_wait_tunnels discovery 1 15
    grep -q '"data":{"url":"https://home.psi.test/"},"noticeType":"Homepage"' "$LAB_DIR/discovery.out"
    lab__wait_for 5 test -s "$LAB_DIR/state/discovered"
    run cat "$LAB_DIR/state/discovered"
    assert_output "$discovered_line"
    [ "$(stat -c %a "$LAB_DIR/state/discovered")" = 600 ]
}

# The handshake parameters of a tunnel, as psiphond logs them: the keys of its server_tunnel
# record, which it writes when the tunnel ends.
server_tunnel_keys() { # RECORD
    jq -r 'keys[]' <<<"$1" | sort
}

@test "real psiphond: psi's handshake gives the server every field ConsoleClient's does, with the same kinds of values" {
    peer_start psiphond
    peer_console_client_start console "$LAB_DIR/psiphond.entry" 1093
    peer_console_client_wait console
    lab__stop "$PEER_CLIENT_PID" TERM
    lab__wait_for 5 test -n "$(peer_event psiphond server_tunnel)"
    local console_record psi_record
    console_record=$(peer_event psiphond server_tunnel | tail -n 1)
    # psi the way psi up runs it: the entry from psi-servers' store, through pick.
    mkdir -p "$LAB_DIR/store"
    chown psiphon-user:psiphon-group "$LAB_DIR/store"
    chmod 750 "$LAB_DIR/store"
    printf '{"PropagationChannelId": "FFFFFFFFFFFFFFFF", "SponsorId": "FFFFFFFFFFFFFFFF", "DataRootDirectory": "%s"}\n' \
        "$LAB_DIR/store" >"$LAB_DIR/store.conf"
    chmod 600 "$LAB_DIR/store.conf"
    lab_client "$BATS_TEST_DIRNAME/../build/psi-servers" --config "$LAB_DIR/store.conf" import "$LAB_DIR/psiphond.entry" >/dev/null
    lab_client "$BATS_TEST_DIRNAME/../build/psi-servers" --config "$LAB_DIR/store.conf" pick >"$LAB_DIR/picked.entries"
    chmod 644 "$LAB_DIR/picked.entries"
    connect_start ossh "$LAB_DIR/picked.entries" --socks 1083 --protocols OSSH
    connect_wait_tunnels ossh 1 15
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab__wait_for 5 test "$(peer_event psiphond server_tunnel | wc -l)" -ge 2
    psi_record=$(peer_event psiphond server_tunnel | tail -n 1)
    # Every key the server logged for ConsoleClient, it logged for psi, but the two psi-connect(8)
    # names: psi scales no timeouts (network_latency_multiplier) and asks for no tactics (the
    # server's new_tactics_tag). None only for psi.
    run comm -3 <(server_tunnel_keys "$console_record") <(server_tunnel_keys "$psi_record")
    assert_output "$(printf 'network_latency_multiplier\nnew_tactics_tag')"
    # The values are psi's own, of the kinds ConsoleClient's are.
    run jq -r '[.relay_protocol, .handshake_completed, (.ssh_client_version | test("^SSH-2\\.0-OpenSSH_[78]\\.[0-9]$")),
                .dial_port_number, (.dial_duration >= 0), .candidate_number, .established_tunnels_count,
                (.padding >= 0 and .padding <= 1024), (.upstream_ossh_padding >= 0), .network_type] | @tsv' <<<"$psi_record"
    assert_output "$(printf 'OSSH\ttrue\ttrue\t4443\ttrue\t0\t0\ttrue\ttrue\tUNKNOWN')"
    [ "$(jq -r .server_entry_source <<<"$psi_record")" = EMBEDDED ]
    [[ $(jq -r .server_entry_timestamp <<<"$psi_record") =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00:00Z$ ]]
}

@test "real psiphond, plain SSH: the client's version string in clear is OpenSSH-like, never libssh's" {
    peer_start psiphond
    lab_capture_start "src host $LAB_CLIENT_IP4 and tcp port 4022"
    connect_start ssh "$LAB_DIR/psiphond.entry" --socks 1084 --protocols SSH
    connect_wait_tunnels ssh 1 15
    lab_capture_stop
    # The identification string psi-connect sent, from the payloads of its packets.
    run bash -c "tcpdump -r '$LAB_DIR/capture.pcap' -n -A 2>/dev/null | grep -ao 'SSH-2\.0-[!-~]*'"
    assert_output --regexp '^SSH-2\.0-OpenSSH_[78]\.[0-9]$'  # one, and not SSH-2.0-libssh_0.11.5
}

@test "real psiphond accepts any well-formed sponsor id (the default sponsor's homepage); a malformed one psi-connect never sends" {
    peer_start psiphond --homepage "https://home.psi.test/"
    printf '{"PropagationChannelId": "0123456789ABCDEF", "SponsorId": "0000000000000001"}\n' >"$LAB_DIR/other-sponsor.conf"
    chmod 600 "$LAB_DIR/other-sponsor.conf"
    lab__spawn "$LAB_CLIENT" sponsor "$PSI_CONNECT" --config "$LAB_DIR/other-sponsor.conf" \
        --entries "$LAB_DIR/psiphond.entry" --socks 1091 --http 0
    CONNECT_PID=$LAB_LAST_PID
    connect_wait_tunnels sponsor 1 15
    grep -q '"data":{"url":"https://home.psi.test/"},"noticeType":"Homepage"' "$LAB_DIR/sponsor.out"
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab__wait_for 5 test -n "$(peer_event psiphond server_tunnel)"
    run jq -r '[.sponsor_id, .propagation_channel_id] | @tsv' <<<"$(peer_event psiphond server_tunnel | tail -n 1)"
    assert_output "$(printf '0000000000000001\t0123456789ABCDEF')"
    # psiphond refuses a sponsor id that is not 16 hex digits: psi-connect refuses to start with one.
    printf '{"PropagationChannelId": "FFFFFFFFFFFFFFFF", "SponsorId": "FFFF"}\n' >"$LAB_DIR/bad-sponsor.conf"
    chmod 600 "$LAB_DIR/bad-sponsor.conf"
    run lab_client "$PSI_CONNECT" --config "$LAB_DIR/bad-sponsor.conf" --entries "$LAB_DIR/psiphond.entry" --socks 1092
    assert_failure 2
    assert_output --partial "SponsorId must be 16 hex digits"
    [ "$(peer_event psiphond server_tunnel | wc -l)" -eq 1 ]
}
