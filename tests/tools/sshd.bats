#!/usr/bin/env bats
# Proves tests/lab/sshd.bash: a real OpenSSH sshd in the lab's inet namespace
# and "ssh -N -D" in the client namespace as the tunnel user make a SOCKS
# proxy that reaches inet through the router, and that ssh refuses a server
# whose host key is not the one in known_hosts.

bats_require_minimum_version 1.5.0

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load ../lab/lab
load ../lab/sshd

TOOLS="$BATS_TEST_DIRNAME"
PY=/usr/bin/python3
TUNNEL_USER=psiphon-user
HTTP_PORT=8080

setup_file() {
    lab_up
    lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 22
    mkdir "$LAB_DIR/www"
    echo "hello from inet" >"$LAB_DIR/www/hello.txt"
    lab__spawn "$LAB_INET" http "$PY" -m http.server --bind "$LAB_INET_IP4" \
        --directory "$LAB_DIR/www" "$HTTP_PORT"
    lab__wait_for 5 http_listening "$HTTP_PORT"
}

teardown_file() {
    lab_down
}

http_listening() { [ -n "$(lab_inet ss -Hltn "sport = :$1")" ]; }

socks_curl() { # PORT PATH
    lab_client curl -sS --max-time 10 --socks5 "127.0.0.1:$1" \
        "http://$LAB_INET_IP4:$HTTP_PORT$2"
}

@test "sshd: ssh -D as the tunnel user fetches a file from inet through the router" {
    run socks_curl 1080 /hello.txt
    assert_failure                         # nothing listens yet
    lab_ssh_socks_start "$LAB_CLIENT" "$TUNNEL_USER" 1080
    assert_equal "$(ps -o uid= -p "$LAB_LAST_PID" | tr -d ' ')" "$(id -u "$TUNNEL_USER")"
    assert_equal "$(ps -o comm= -p "$LAB_LAST_PID")" ssh
    run socks_curl 1080 /hello.txt
    assert_success
    assert_output "hello from inet"
    run grep -c "Accepted publickey for root from $LAB_CLIENT_IP4" "$LAB_DIR/sshd-22.err"
    assert_output 1
}

@test "sshd: ssh -D answers no UDP ASSOCIATE (it closes the connection)" {
    lab_ssh_socks_start "$LAB_CLIENT" "$TUNNEL_USER" 1082
    run lab_client "$PY" "$TOOLS/socks5_udp_client.py" --proxy 127.0.0.1:1082 \
        --to "$LAB_INET_IP4:53" --timeout 3
    assert_equal "$status" 1
    assert_output --partial "proxy closed the connection"
}

@test "sshd: a host key other than the one in known_hosts makes ssh fail" {
    cp "$LAB_DIR/sshd/known_hosts" "$BATS_TEST_TMPDIR/known_hosts.good"
    ssh-keygen -q -t ed25519 -N '' -f "$BATS_TEST_TMPDIR/other"
    echo "$LAB_INET_IP4 $(cut -d' ' -f1-2 "$BATS_TEST_TMPDIR/other.pub")" \
        >"$LAB_DIR/sshd/known_hosts"
    run lab_ssh_socks_start "$LAB_CLIENT" "$TUNNEL_USER" 1081
    cp "$BATS_TEST_TMPDIR/known_hosts.good" "$LAB_DIR/sshd/known_hosts"
    assert_failure
    assert_output --partial "Host key verification failed"
    run lab_client ss -Hltn "sport = :1081"
    assert_output ""
    # The right key again: the same user and port work.
    lab_ssh_socks_start "$LAB_CLIENT" "$TUNNEL_USER" 1081
    run socks_curl 1081 /hello.txt
    assert_output "hello from inet"
}
