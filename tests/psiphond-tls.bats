#!/usr/bin/env bats
# psi-connect's TLS transports against the real psiphond (make peer): TLS-OSSH with the server's
# passthrough on (a client whose ClientHello random is not the passthrough message is handed to
# a decoy site), what a prober sees of the port, and the ClientHello on the wire.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/lab
    lab_up
    mkdir -p "$LAB_DIR/www" "$LAB_DIR/decoy"
    chmod o+x "$LAB_DIR"
    echo "hello from inet" >"$LAB_DIR/www/index.html"
    echo "decoy site" >"$LAB_DIR/decoy/index.html"
    chmod -R o+rX "$LAB_DIR/www" "$LAB_DIR/decoy"
    lab__spawn "$LAB_INET" http /usr/bin/python3 -m http.server --bind :: --directory "$LAB_DIR/www" 8080
    # The decoy: a real HTTPS site in inet that the server passes probers through to.
    "$BATS_TEST_DIRNAME/tools/make_cert.sh" "$LAB_DIR/decoy-tls" decoy.psi.test >/dev/null 2>&1
    lab__spawn "$LAB_INET" decoy /usr/bin/python3 -c '
import http.server, ssl, sys, functools
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("0.0.0.0", 9443), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()' "$LAB_DIR/decoy" "$LAB_DIR/decoy-tls/server.pem" "$LAB_DIR/decoy-tls/server.key"
    lab__wait_for 5 bash -c "ip netns exec $LAB_INET ss -Hnlt \"sport = :9443\" | grep -q ."
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
    lab_capture_stop
    CONNECT_PID= PEER_PID=
}

through_socks() { # PORT URL
    lab_client curl -sS -m 10 --socks5-hostname "127.0.0.1:$1" "$2"
}

tls_peer_start() { # NAME: psiphond with TLS-OSSH on 443 and passthrough to the decoy
    peer_start "$1" --protocol TLS-OSSH:443 --protocol OSSH:4443 -- \
        ".TunnelProtocolPassthroughAddresses = {\"TLS-OSSH\": \"$LAB_INET_IP4:9443\"}"
}

@test "real psiphond, TLS-OSSH: a page through SOCKS5; the server logs a TLS-OSSH tunnel; TLS 1.3 on port 443" {
    tls_peer_start psiphond
    lab_capture_start "tcp port 443"
    connect_start tls "$LAB_DIR/psiphond.entry" --socks 1083 --protocols TLS-OSSH
    connect_wait_tunnels tls 1 15
    run through_socks 1083 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    grep -q '"data":{"protocol":"TLS-OSSH"},"noticeType":"ActiveTunnel"' "$LAB_DIR/tls.out"
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab_capture_stop
    lab__wait_for 5 test -n "$(peer_event psiphond server_tunnel)"
    run jq -r '[.relay_protocol, .handshake_completed, .dial_port_number] | @tsv' \
        <<<"$(peer_event psiphond server_tunnel | tail -n 1)"
    assert_output "$(printf 'TLS-OSSH\ttrue\t443')"
    # The server saw psi's passthrough message: no irregular tunnel was logged for psi.
    [ -z "$(peer_log psiphond irregular_tunnel; peer_event psiphond irregular_tunnel)" ]
    # On the wire: a TLS handshake record (0x16) opens the connection, and no SSH banner is seen.
    [ "$(lab_capture_count 'tcp dst port 443 and tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x16')" -ge 1 ]
    ! tcpdump -r "$LAB_DIR/capture.pcap" -n -A 2>/dev/null | grep -aq 'SSH-2\.0'
}

@test "real psiphond, TLS-OSSH with passthrough: a prober's TLS client is passed to the decoy site; psi still gets its tunnel" {
    tls_peer_start psiphond
    run lab_client curl -sS -k -m 10 "https://$LAB_INET_IP4/"
    assert_success
    assert_output "decoy site"
    connect_start tls "$LAB_DIR/psiphond.entry" --socks 1084 --protocols TLS-OSSH
    connect_wait_tunnels tls 1 15
    run through_socks 1084 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "real psiphond, TLS-OSSH: an entry with the wrong meekObfuscatedKey is passed to the decoy: a handshake failure, never a tunnel" {
    tls_peer_start psiphond
    peer_entry_edit psiphond '.meekObfuscatedKey = "'"$(printf '%064d' 0)"'"' "$LAB_DIR/wrong-key.entry"
    connect_start wrong "$LAB_DIR/wrong-key.entry" --socks 1085 --protocols TLS-OSSH
    # psi-connect keeps trying, as for any server that fails; each try is a handshake failure.
    lab__wait_for 20 bash -c "[ \$(grep -c '\"failure\":\"handshake\",\"protocol\":\"TLS-OSSH\"' '$LAB_DIR/wrong.out') -ge 2 ]"
    ! grep -q '"count":1' <(grep '"noticeType":"Tunnels"' "$LAB_DIR/wrong.out")
    grep -Eq 'TLS-OSSH 198.51.100.10:443: SSH: (the server closed the connection|connection to the server: TLS: )' "$LAB_DIR/wrong.err"
    # It was the decoy that answered: the server logged the bad passthrough message.
    peer_log psiphond irregular_tunnel | grep -q 'invalid passthrough message' ||
        grep -q 'invalid passthrough message' "$LAB_DIR/psiphond.err" "$LAB_DIR/psiphond.out"
}
