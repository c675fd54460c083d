#!/usr/bin/env bats
# psi-connect end to end in the lab: started by root in the client namespace, it becomes the
# tunnel user and serves SOCKS5 on loopback; tunnels go to a real OpenSSH sshd in the inet
# namespace (plain SSH, --no-handshake) and, for what the real psiphond will not do on request
# (tests/psiphond.bats has the rest), to the lab's Psiphon test server: a client region, a
# refused handshake or psiphon-connected, a closed KEX, garbage after the preamble, a rekey every
# megabyte. A curl through the proxy must fetch the inet host's page.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/lab
    load lab/sshd
    lab_up
    mkdir -p "$LAB_DIR/www"
    chmod o+x "$LAB_DIR"
    echo "hello from inet" >"$LAB_DIR/www/index.html"
    chmod -R o+rX "$LAB_DIR/www"
    lab__spawn "$LAB_INET" http /usr/bin/python3 -m http.server --bind :: --directory "$LAB_DIR/www" 8080
    lab__wait_for 5 lab__http_listening
    lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 2222
    export LAB_SSHD_ADDR LAB_SSHD_PORT
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
    load lab/sshd
    load lab/connect
}

teardown() {
    [ -n "${CONNECT_PID:-}" ] && lab__stop "$CONNECT_PID" TERM
    [ -n "${PSIPHOND_PID:-}" ] && lab__stop "$PSIPHOND_PID" TERM
    CONNECT_PID= PSIPHOND_PID=
}

lab__http_listening() { [ "$(ip netns exec "$LAB_INET" ss -Hnlt "sport = :8080" | wc -l)" -ge 1 ]; }

through_socks() { # PORT URL [curl options]
    local port=$1 url=$2
    shift 2
    lab_client curl -sS -m 10 --socks5-hostname "127.0.0.1:$port" "$@" "$url"
}

sshd_entries() {
    connect_sshd_entry >"$LAB_DIR/sshd.entries"
    chmod 644 "$LAB_DIR/sshd.entries"
    echo "$LAB_DIR/sshd.entries"
}

@test "through a real OpenSSH sshd: curl via the SOCKS5 proxy fetches the inet host by IPv4 and IPv6" {
    connect_start sshd "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1081
    connect_wait_tunnels sshd 1
    run through_socks 1081 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run through_socks 1081 "http://[$LAB_INET_IP6]:8080/"
    assert_success
    assert_output "hello from inet"
    grep -q '"noticeType":"ListeningSocksProxyPort"' "$LAB_DIR/sshd.out"
    grep -q '"data":{"port":1081}' "$LAB_DIR/sshd.out"
    grep -q '"data":{"protocol":"SSH"},"noticeType":"ActiveTunnel"' "$LAB_DIR/sshd.out"
}

@test "psi-connect started by root runs as the tunnel user with no capability and no_new_privs" {
    connect_start sshd "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1081
    connect_wait_tunnels sshd 1
    local status_file=/proc/$CONNECT_PID/status
    [ "$(awk '/^Uid:/ {print $2 $3 $4 $5}' "$status_file")" = "$(id -u psiphon-user)$(id -u psiphon-user)$(id -u psiphon-user)$(id -u psiphon-user)" ]
    grep -Eq '^CapEff:\s+0+$' "$status_file"
    grep -Eq '^CapPrm:\s+0+$' "$status_file"
    grep -Eq '^CapBnd:\s+0+$' "$status_file"
    grep -Eq '^NoNewPrivs:\s+1$' "$status_file"
}

@test "a host key that is not the entry's is refused: no tunnel, one clear line, exit 1 when time is up" {
    ssh-keygen -q -t ed25519 -N '' -C other -f "$LAB_DIR/other_key"
    connect_sshd_entry "$LAB_DIR/other_key.pub" >"$LAB_DIR/wrong.entries"
    chmod 644 "$LAB_DIR/wrong.entries"
    connect_start wrong "$LAB_DIR/wrong.entries" --no-handshake --identity "$(connect_user_key)" --socks 1082 \
        --establish-timeout 2
    local pid=$CONNECT_PID
    lab__wait_for 10 lab__gone "$pid"
    run wait "$pid"
    assert_equal "$status" 1
    run grep -c "host key does not match the entry's sshHostKey" "$LAB_DIR/wrong.err"
    assert_success
    run grep '"noticeType":"Tunnels"' "$LAB_DIR/wrong.out"
    refute_output --partial '"count":1'
    grep -q '"noticeType":"Exiting"' "$LAB_DIR/wrong.out"
    CONNECT_PID=
}

@test "a refused destination gets SOCKS reply 5 at once, and the tunnel keeps serving" {
    connect_start sshd "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1081
    connect_wait_tunnels sshd 1
    local start=$SECONDS
    run through_socks 1081 "http://$LAB_INET_IP4:8099/"
    assert_failure 97
    assert_output --partial "(5)"
    [ $((SECONDS - start)) -le 2 ]
    run through_socks 1081 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "hostile SOCKS5 requests are closed and leave the proxy serving" {
    connect_start sshd "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1081
    connect_wait_tunnels sshd 1
    # No acceptable method; a bad version; an unknown address type; a zero-length name; garbage.
    run lab_client /usr/bin/python3 - <<'PY'
import socket
def exchange(data):
    s = socket.create_connection(("127.0.0.1", 1081), timeout=5)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        return "hang"
    except ConnectionResetError:
        return got.hex() + "reset"  # closed with unread input: the kernel resets
    return got.hex()
print(exchange(b"\x05\x01\x02"))
print(exchange(b"\x04\x01\x00\x50\x01\x02\x03\x04\x00"))
print(exchange(b"\x05\x01\x00\x05\x01\x00\x09\x01\x02"))
print(exchange(b"\x05\x01\x00\x05\x01\x00\x03\x00\x00\x50"))
print(exchange(b"\x05\x01\x00" + b"\xff" * 600))
PY
    assert_success
    assert_line --index 0 "05ff"
    assert_line --index 1 "05ff"
    assert_line --index 2 "050005080001000000000000"
    assert_line --index 3 "050005010001000000000000"
    assert_line --index 4 --regexp "^0500(050[0-9]0001000000000000)?(reset)?$"
    refute_output --partial hang
    run through_socks 1081 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "sshd killed: Tunnels count 0, new connections fail at once, and it reconnects when sshd is back" {
    lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 2223
    local sshd_pid=$LAB_LAST_PID
    connect_start sshd "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1081
    connect_wait_tunnels sshd 1
    # The listener and its per-connection process, as a server crash would end them.
    local children pid
    children=$(ps --ppid "$sshd_pid" -o pid=)
    lab__stop "$sshd_pid" TERM
    for pid in $children; do kill -TERM "$pid" 2>/dev/null || true; done
    connect_wait_tunnels sshd 0 10
    local start=$SECONDS
    run through_socks 1081 "http://$LAB_INET_IP4:8080/"
    assert_failure
    [ $((SECONDS - start)) -le 2 ]
    lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 2223
    connect_wait_tunnels sshd 1 40
    run through_socks 1081 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "a server that stops answering is given up after the keepalive timeout, and another tunnel comes up" {
    lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 2224
    local sshd_pid=$LAB_LAST_PID children pid
    connect_start sshd "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1081 --keepalive 1
    connect_wait_tunnels sshd 1
    children=$(ps --ppid "$sshd_pid" -o pid=)
    [ -n "$children" ]
    for pid in $children; do kill -STOP "$pid"; done
    lab__wait_for 10 grep -q '"data":{"count":0},"noticeType":"Tunnels"' "$LAB_DIR/sshd.out"
    grep -q "the server stopped answering (no keepalive reply in time)" "$LAB_DIR/sshd.err"
    for pid in $children; do kill -CONT "$pid" 2>/dev/null || true; done
    # The listener still answers: a new tunnel comes up and serves.
    connect_wait_tunnels sshd 1 20
    run through_socks 1081 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

# --- against the lab's Psiphon test server (OSSH and SSH, with the handshake) ---

@test "over OSSH to the Psiphon test server: the handshake's homepage and region, then curl through SOCKS5" {
    psiphond_start psiphond --homepage "https://home.psi.test/" --region DE
    connect_start ossh "$LAB_DIR/psiphond.entry" --socks 1083 --protocols OSSH
    connect_wait_tunnels ossh 1
    run through_socks 1083 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run through_socks 1083 "http://[$LAB_INET_IP6]:8080/"
    assert_output "hello from inet"
    grep -q '"data":{"protocol":"OSSH"},"noticeType":"ActiveTunnel"' "$LAB_DIR/ossh.out"
    grep -q '"data":{"url":"https://home.psi.test/"},"noticeType":"Homepage"' "$LAB_DIR/ossh.out"
    grep -q '"data":{"region":"DE"},"noticeType":"ClientRegion"' "$LAB_DIR/ossh.out"
    # The server saw the obfuscated preamble, the JSON password and every handshake parameter.
    grep -q '^ossh-ok ' "$LAB_DIR/psiphond.err"
    grep -q '^handshake-ok .*relay_protocol=OSSH' "$LAB_DIR/psiphond.err"
    grep -q "^forward-open .*target=$LAB_INET_IP4:8080" "$LAB_DIR/psiphond.err"
}

connected_requests() { grep -c "^request-$1 .*kind=psiphon-connected" "$LAB_DIR/psiphond.err"; }

@test "psiphon-connected: sent once the tunnel is up, again 5 s after a refusal, and with the last timestamp on the next tunnel" {
    psiphond_start psiphond --refuse-connected 1
    connect_start ossh "$LAB_DIR/psiphond.entry" --socks 1083 --protocols OSSH
    connect_wait_tunnels ossh 1
    lab__wait_for 5 grep -q "^request-fail .*kind=psiphon-connected last_connected=None reason=--refuse-connected" \
        "$LAB_DIR/psiphond.err"
    [ "$(connected_requests ok)" -eq 0 ]
    sleep 3
    [ "$(connected_requests ok)" -eq 0 ]  # not before the 5 s are up
    lab__wait_for 5 grep -q "^request-ok .*kind=psiphon-connected last_connected=None$" "$LAB_DIR/psiphond.err"
    sleep 6
    [ "$(connected_requests ok)" -eq 1 ]  # once per tunnel, not every 5 s
    # The server drops the connection: the next tunnel sends the timestamp the last reply gave.
    local notices_before_drop
    notices_before_drop=$(connect_tunnels_notices ossh)
    lab_inet ss -K state established "( sport = :4443 )" >/dev/null
    connect_wait_new_tunnels ossh 0 "$notices_before_drop"
    connect_wait_tunnels ossh 1 20
    lab__wait_for 5 grep -q "^request-ok .*kind=psiphon-connected last_connected=[0-9-]*T[0-9]*:00:00Z$" \
        "$LAB_DIR/psiphond.err"
    [ "$(connected_requests ok)" -eq 2 ]
    run through_socks 1083 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "a refused handshake, a closed KEX and garbage after the preamble: one clear line each, never a tunnel" {
    local case
    for case in refuse-handshake close-mid-kex garbage-ossh; do
        psiphond_start "server-$case" "--$case"
        connect_start "client-$case" "$LAB_DIR/server-$case.entry" --socks 1085 --protocols OSSH --establish-timeout 2 \
            --dial-timeout 3
        local pid=$CONNECT_PID
        lab__wait_for 15 lab__gone "$pid"
        run wait "$pid"
        assert_equal "$status" 1
        CONNECT_PID=
        run grep -c '"count":1' "$LAB_DIR/client-$case.out"
        assert_output 0
        lab__stop "$PSIPHOND_PID" TERM
        PSIPHOND_PID=
    done
    grep -q "the server refused the handshake" "$LAB_DIR/client-refuse-handshake.err"
    grep -Eq "OSSH $LAB_INET_IP4:4443: SSH: " "$LAB_DIR/client-close-mid-kex.err"
    grep -Eq "OSSH $LAB_INET_IP4:4443: SSH: .*(not an OSSH server|closed|Socket)" "$LAB_DIR/client-garbage-ossh.err"
}

@test "UDP ASSOCIATE to a generic SSH server (no udpgw) is answered 'command not supported'" {
    connect_start sshd "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1081
    connect_wait_tunnels sshd 1
    run lab_client /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/socks5_udp_client.py" --proxy 127.0.0.1:1081 \
        --to "$LAB_INET_IP4:7200"
    assert_failure 2
    assert_output --partial "socks reply 7"
}

@test "key exchanges in the middle of a stream (the server rekeys every 1 MB): uploads and downloads over OSSH complete" {
    psiphond_start psiphond --rekey-bytes 1000000
    lab__spawn "$LAB_INET" rr-server "$BATS_TEST_DIRNAME/../build/bench/rr" server "$LAB_INET_IP4:7100"
    connect_start rekey "$LAB_DIR/psiphond.entry" --socks 1091 --protocols OSSH
    connect_wait_tunnels rekey 1
    local direction bytes
    for direction in up down up down up down; do
        run lab_client timeout 30 "$BATS_TEST_DIRNAME/../build/bench/rr" "$direction" "$LAB_INET_IP4:7100" --seconds 2 \
            --socks 127.0.0.1:1091
        if [ "$status" -ne 0 ]; then  # where each side stands, for the stalled direction
            echo "# $direction: exit $status" >&3
            kill -USR1 "$PSIPHOND_PID" && sleep 1 && sed 's/^/# /' "$LAB_DIR/psiphond.err" | grep -v '^# rekey' >&3
        fi
        assert_success  # a stalled stream is killed by timeout (124)
        bytes=$(awk '{ print $2 }' <<<"$output")
        [ "$bytes" -gt 40000000 ]  # ten key exchanges at least
    done
    [ "$(grep -c '^rekey ' "$LAB_DIR/psiphond.err")" -ge 60 ]
}

@test "1,000 SOCKS5 connections at once, three times over: all complete and psi-connect is still there" {
    lab__spawn "$LAB_INET" lines /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/many_connections.py" serve \
        --bind "$LAB_INET_IP4" --port 7300
    lab__wait_for 5 grep -q listening "$LAB_DIR/lines.out"
    connect_start many "$(sshd_entries)" --no-handshake --identity "$(connect_user_key)" --socks 1092
    connect_wait_tunnels many 1
    local round
    for round in 1 2 3; do
        run lab_as_user psiphon-user /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/many_connections.py" connect \
            "$LAB_INET_IP4" 7300 --count 1000 --timeout 60 --socks 127.0.0.1:1092
        assert_success
        assert_output "ok=1000 failed=0"
    done
    ! lab__gone "$CONNECT_PID"
}
