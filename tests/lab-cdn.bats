#!/usr/bin/env bats
# Control suite for the lab's CDN edge (tests/lab/cdn.bash), which the fronted transports stand
# on: nginx in the cdn namespace passes what the client sends to the origin its Host names, as
# the origin sees it (tests/tools/http_echo.py in inet answers with what it received). Every
# check here must be able to fail.

bats_require_minimum_version 1.5.0

FRONT=front.psi.test

setup_file() {
    load lab/lab
    load lab/cdn
    lab_up
    cdn_lab__origins
    cdn_up "$FRONT" "$LAB_INET_IP4:8080" --http
    cdn_route hidden.psi.test "$LAB_INET_IP4:8081"
    cdn_route secret.psi.test "$LAB_INET_IP4:8443" --backend-tls
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
}

# The origins in inet: plain HTTP on 8080 (the front's) and 8081 (hidden.psi.test's), HTTPS with
# a certificate nobody trusts on 8443 (secret.psi.test's).
cdn_lab__origins() {
    local echo=$BATS_TEST_DIRNAME/tools/http_echo.py
    "$BATS_TEST_DIRNAME/tools/make_cert.sh" "$LAB_DIR/origin-tls" "$LAB_INET_IP4" >/dev/null 2>&1
    lab__spawn "$LAB_INET" origin-front /usr/bin/python3 "$echo" --bind "$LAB_INET_IP4" --port 8080
    lab__spawn "$LAB_INET" origin-hidden /usr/bin/python3 "$echo" --bind "$LAB_INET_IP4" --port 8081
    lab__spawn "$LAB_INET" origin-secret /usr/bin/python3 "$echo" --bind "$LAB_INET_IP4" --port 8443 \
        --cert "$LAB_DIR/origin-tls/server.pem" --key "$LAB_DIR/origin-tls/server.key"
    lab__wait_for 5 grep -q listening "$LAB_DIR/origin-front.out" "$LAB_DIR/origin-hidden.out" \
        "$LAB_DIR/origin-secret.out"
}

# curl in the client to https://FRONT/PATH through the CDN's IPv4 address, the lab CA trusted.
front_curl() { # PATH [curl options]
    local path=$1
    shift
    lab_client curl -sS -m 10 --cacert "$LAB_DIR/cdn-ca.pem" --resolve "$FRONT:443:$LAB_CDN_IP4" "$@" \
        "https://$FRONT$path"
}

@test "the front's request reaches its origin with the Host kept and the client's address in X-Forwarded-For" {
    run front_curl /some/path?x=1
    assert_success
    run jq -r '[.method, .path, .host, .x_forwarded_for, .tls] | @tsv' <<<"$output"
    assert_output "$(printf 'GET\t/some/path?x=1\t%s\t%s\tfalse' "$FRONT" "$LAB_CLIENT_IP4")"
    lab__wait_for 5 cdn_served "$FRONT" 200
    run jq -r '[.client, .sni, .uri, .origin] | @tsv' <<<"$(cdn_requests "$FRONT" | tail -n 1)"
    assert_output "$(printf '%s\t%s\t/some/path?x=1\thttp://%s:8080' "$LAB_CLIENT_IP4" "$FRONT" "$LAB_INET_IP4")"
}

@test "domain fronting: the front's SNI and certificate, the hidden host's Host, and the hidden host's origin answers" {
    run front_curl / -H "Host: hidden.psi.test"
    assert_success
    assert_equal "$(jq -r .host <<<"$output")" hidden.psi.test
    grep -q '"host": "hidden.psi.test"' "$LAB_DIR/origin-hidden.out"
    run ! grep -q hidden.psi.test "$LAB_DIR/origin-front.out"
    lab__wait_for 5 cdn_served hidden.psi.test 200
    assert_equal "$(cdn_requests hidden.psi.test | tail -n 1 | jq -r .sni)" "$FRONT"
}

@test "a client that sends no SNI gets the certificate and its request routed by Host" {
    run bash -c "printf 'GET /no-sni HTTP/1.1\r\nHost: hidden.psi.test\r\nConnection: close\r\n\r\n' |
        ip netns exec '$LAB_CLIENT' openssl s_client -quiet -noservername -verify_return_error \
            -CAfile '$LAB_DIR/cdn-ca.pem' -connect '$LAB_CDN_IP4:443' 2>/dev/null"
    assert_success
    assert_line --partial "HTTP/1.1 200"
    assert_line --partial '"host": "hidden.psi.test"'
    lab__wait_for 5 cdn_served hidden.psi.test 200
    run jq -r '[.uri, .sni] | @tsv' <<<"$(cdn_requests hidden.psi.test | tail -n 1)"
    assert_output "$(printf '/no-sni\t')"
}

@test "an IPv6 client reaches the CDN, and its IPv6 address is in X-Forwarded-For" {
    run lab_client curl -sS -m 10 --cacert "$LAB_DIR/cdn-ca.pem" --resolve "$FRONT:443:[$LAB_CDN_IP6]" "https://$FRONT/"
    assert_success
    assert_equal "$(jq -r .x_forwarded_for <<<"$output")" "$LAB_CLIENT_IP6"
}

@test "an X-Forwarded-For the client sent is kept, the client's address added after it" {
    run front_curl / -H "X-Forwarded-For: 192.0.2.7"
    assert_success
    assert_equal "$(jq -r .x_forwarded_for <<<"$output")" "192.0.2.7, $LAB_CLIENT_IP4"
}

@test "a 64 KiB POST arrives whole, and a response the origin holds for 2 s comes through" {
    head -c 65536 /dev/urandom >"$LAB_DIR/body"
    local started=$SECONDS
    run front_curl "/poll?hold=2" --data-binary "@$LAB_DIR/body" -H "Content-Type: application/octet-stream"
    assert_success
    assert [ $((SECONDS - started)) -ge 2 ]
    run jq -r '[.method, .body_length, .body_sha256] | @tsv' <<<"$output"
    assert_output "$(printf 'POST\t65536\t%s' "$(sha256sum "$LAB_DIR/body" | cut -d' ' -f1)")"
}

@test "the client's connection is kept alive across requests" {
    run front_curl / -o /dev/null -w '%{num_connects}\n' "https://$FRONT/second" -o /dev/null
    assert_success
    assert_output "$(printf '1\n0')"
}

@test "a Host no route names gets 404 from nginx itself and never reaches an origin" {
    run front_curl / -o /dev/null -w '%{http_code}' -H "Host: unknown.psi.test"
    assert_output 404
    run ! grep -q unknown.psi.test "$LAB_DIR/origin-front.out" "$LAB_DIR/origin-hidden.out" "$LAB_DIR/origin-secret.out"
    lab__wait_for 5 cdn_served unknown.psi.test 404
    assert_equal "$(cdn_requests unknown.psi.test | tail -n 1 | jq -r .origin)" ""
}

@test "--backend-tls: the origin is reached over HTTPS though nobody trusts its certificate" {
    run front_curl / -H "Host: secret.psi.test"
    assert_success
    run jq -r '[.host, .tls, .x_forwarded_for] | @tsv' <<<"$output"
    assert_output "$(printf 'secret.psi.test\ttrue\t%s' "$LAB_CLIENT_IP4")"
}

@test "--http: plain HTTP on port 80 is routed by Host the same way" {
    run lab_client curl -sS -m 10 -H "Host: hidden.psi.test" "http://$LAB_CDN_IP4/plain"
    assert_success
    assert_equal "$(jq -r .host <<<"$output")" hidden.psi.test
    lab__wait_for 5 cdn_served hidden.psi.test 200
    assert_equal "$(cdn_requests hidden.psi.test | tail -n 1 | jq -r .port)" 80
}

@test "the certificate names the front and every name below it, and chains to \$LAB_DIR/cdn-ca.pem only" {
    run front_curl / -o /dev/null -w '%{http_code}'
    assert_output 200
    run lab_client curl -sS -m 10 -o /dev/null -w '%{http_code}' --cacert "$LAB_DIR/cdn-ca.pem" \
        --resolve "www.$FRONT:443:$LAB_CDN_IP4" -H "Host: $FRONT" "https://www.$FRONT/"
    assert_output 200
    run lab_client curl -sS -m 10 --resolve "$FRONT:443:$LAB_CDN_IP4" "https://$FRONT/"
    assert_failure 60
    run lab_client curl -sS -m 10 --cacert "$LAB_DIR/cdn-ca.pem" --resolve "other.psi.test:443:$LAB_CDN_IP4" \
        "https://other.psi.test/"
    assert_failure 60
}

@test "cdn_route sends a host elsewhere from then on, takes *.name, and refuses what is not a name or an address" {
    cdn_route hidden.psi.test "$LAB_INET_IP4:8080"
    run front_curl / -H "Host: hidden.psi.test"
    assert_success
    grep -q '"host": "hidden.psi.test"' "$LAB_DIR/origin-front.out"
    cdn_route hidden.psi.test "$LAB_INET_IP4:8081"
    cdn_route "*.wild.psi.test" "$LAB_INET_IP4:8081"
    run front_curl / -H "Host: a.wild.psi.test"
    assert_success
    grep -q '"host": "a.wild.psi.test"' "$LAB_DIR/origin-hidden.out"
    run cdn_route 'x.test; return 200' "$LAB_INET_IP4:8081"
    assert_failure 2
    run cdn_route x.test "$LAB_INET_IP4:8081; return 200"
    assert_failure 2
    run cdn_route x.test example.com:80
    assert_failure 2
}

@test "nginx serves from \$LAB_DIR/cdn with a www-data worker, in the cdn namespace only" {
    local master
    master=$(cat "$LAB_DIR/cdn/nginx.pid")
    assert_equal "$(ip netns identify "$master")" "$LAB_PREFIX-cdn"
    assert_equal "$(ps -o user= -p "$master")" root
    assert_equal "$(ps -o user= --ppid "$master" | sort -u)" www-data
    run ps -o args= -p "$master"
    assert_output --partial "-c $LAB_DIR/cdn/nginx.conf"
    run ip netns pids "$LAB_PREFIX-cdn"
    assert_line "$master"
    # No nginx runs in the host's network namespace.
    local pid
    for pid in $(pgrep -x nginx); do
        assert [ -n "$(ip netns identify "$pid")" ]
    done
}

@test "cdn_down removes the namespace; cdn_up again with the front's origin over --backend-tls" {
    cdn_down
    [ ! -e "/run/netns/$LAB_PREFIX-cdn" ]
    [ ! -e "$LAB_DIR/cdn-ca.pem" ]
    run lab_router ip link show rd
    assert_failure
    cdn_up "$FRONT" "$LAB_INET_IP4:8443" --backend-tls
    run front_curl /
    assert_success
    assert_equal "$(jq -r .tls <<<"$output")" true
    run lab_client curl -sS -m 3 "http://$LAB_CDN_IP4/"
    assert_failure 7
    run cdn_up "$FRONT" "$LAB_INET_IP4:8443"
    assert_failure 1
    assert_output --partial "already up"
    # Back as setup_file left it, for the tests after this one.
    cdn_down
    cdn_up "$FRONT" "$LAB_INET_IP4:8080" --http
    cdn_route hidden.psi.test "$LAB_INET_IP4:8081"
    cdn_route secret.psi.test "$LAB_INET_IP4:8443" --backend-tls
}
