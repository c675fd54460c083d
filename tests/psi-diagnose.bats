#!/usr/bin/env bats
# psi-diagnose in the lab's client namespace: with nothing up it names every missing part;
# with the kill switch, the TUN, a SOCKS proxy and the packet engine up, every check passes
# (but psi-connect, which is not there); each part broken by hand is named, with its fix.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    lab_up
    mkdir -p "$LAB_DIR/run"
    printf '{\n  "RunDirectory": "%s",\n  "TunDnsResolver": "%s"\n}\n' "$LAB_DIR/run" "$LAB_INET_IP4" >"$LAB_DIR/psi.conf"
    chmod 600 "$LAB_DIR/psi.conf"
    lab_listen_tcp 8080
    lab__spawn "$LAB_INET" dns /usr/bin/python3 "$TOOLS/dns_server.py" --bind "$LAB_INET_IP4" --port 53 \
        --record "inet.psi.test=$LAB_INET_IP4"
    lab__wait_for 5 grep -q listening "$LAB_DIR/dns.out"
}

teardown_file() {
    load lab/fw
    lab_down
}

setup() {
    load lab/fw
}

teardown() {
    local pid
    for pid in ${STARTED:-}; do lab__stop "$pid" TERM; done
    STARTED=
    psi_tun down >/dev/null 2>&1 || true
    psi_fw down >/dev/null 2>&1 || true
}

PSI_TUN="$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build/psi-tun"
PSI_DIAGNOSE="$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build/psi-diagnose"
TOOLS="$(cd "$BATS_TEST_DIRNAME/tools" && pwd)"

psi_tun() { lab_client "$PSI_TUN" --config "$LAB_DIR/psi.conf" "$@"; }
diagnose() {
    lab_client "$PSI_DIAGNOSE" --config "$LAB_DIR/psi.conf" --probe-ipv4 "$LAB_INET_IP4" \
        --probe-ipv6 "$LAB_INET_IP6" --probe-port 8080 "$@"
}

# The verdict of one check in diagnose --json output: true or false.
verdict() { jq -r --arg check "$1" '.checks[] | select(.check == $check) | .passed' <<<"$output"; }
detail() { jq -r --arg check "$1" '.checks[] | select(.check == $check) | .detail' <<<"$output"; }

# Everything psi up will start, but psi-connect: the lab's SOCKS5 proxy stands in for it, run
# as the tunnel user the way psi runs the tunnel (no capability, no_new_privs).
stack_up() {
    psi_fw up >/dev/null
    psi_tun up >/dev/null
    lab__spawn "$LAB_CLIENT" socks setpriv --reuid="$TUNNEL_USER" --regid=psiphon-group --clear-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs \
        /usr/bin/python3 "$TOOLS/socks5_server.py" --bind 127.0.0.1 --port 1080
    STARTED="$STARTED $LAB_LAST_PID"
    lab__wait_for 5 grep -q listening "$LAB_DIR/socks.out"
    lab__spawn "$LAB_CLIENT" engine "$PSI_TUN" --config "$LAB_DIR/psi.conf" run
    STARTED="$STARTED $LAB_LAST_PID"
    lab__wait_for 5 grep -q "carried into" "$LAB_DIR/engine.out"
}

@test "nothing up: every missing part is named, with its fix, and the exit status is 3" {
    run --separate-stderr diagnose --json
    assert_failure 3
    [ "$(jq -r .secure <<<"$output")" = false ]
    [ "$(verdict "kill switch")" = false ]
    [ "$(detail "kill switch")" = "not loaded: traffic is not blocked" ]
    [ "$(verdict TUN)" = false ]
    [ "$(verdict routing)" = false ]
    [ "$(verdict "packet engine")" = false ]
    [ "$(verdict "leak probes")" = false ]
    [[ $(detail "leak probes") == *"tcp-ipv4 on eth0: answered: traffic leaves outside the tunnel"* ]]
    [ "$(verdict "through the tunnel")" = false ]
    [ "$(jq -r '.checks[] | select(.check == "kill switch") | .fix' <<<"$output")" = "psi-fw up" ]
    run diagnose
    assert_failure 3
    assert_output --regexp 'FAIL +kill switch +not loaded'
    assert_output --regexp 'fix: psi-fw up'
}

@test "the whole stack up: every check passes but psi-connect, which is not there" {
    stack_up
    run --separate-stderr diagnose --json
    assert_failure 3
    [ "$(jq '[.checks[] | select(.passed | not) | .check]' -c <<<"$output")" = '["psi-connect"]' ]
    [[ $(detail "leak probes") == "12 of 12 kept inside"* ]]
    [[ $(detail "through the tunnel") == "a DNS query to 10.200.3.2 as nobody was answered" ]]
    [[ $(detail "tunnel privileges") == *"none with any capability" ]]
    # The probes' own table is gone again.
    run lab_client nft list table inet psiphon_verify
    assert_failure
}

@test "each part broken by hand is named: routing, DNS, the kill switch, config, privileges" {
    stack_up
    local uid
    uid=$(id -u "$TUNNEL_USER")
    lab_client ip -6 rule del pref 20563
    cp "$LAB_DIR/psi.conf" "$LAB_DIR/psi.conf.good"
    chmod 644 "$LAB_DIR/psi.conf"
    printf 'nameserver %s\n' "$LAB_ROUTER_IP4" | lab_client tee -a /etc/resolv.conf >/dev/null
    lab_client nft insert rule inet psiphon_filter output meta skuid "$DESKTOP_UID" accept
    lab__spawn "$LAB_CLIENT" privileged setpriv --reuid="$TUNNEL_USER" --regid=psiphon-group --clear-groups sleep 60
    STARTED="$STARTED $LAB_LAST_PID"
    run --separate-stderr diagnose --json --no-probes
    assert_failure 3
    [ "$(detail routing)" = "IPv6: no rule sends everyone but psiphon-user into table 20563" ]
    [ "$(detail DNS)" = "/etc/resolv.conf names $LAB_ROUTER_IP4, outside the tunnel" ]
    [[ $(detail "kill switch") == "differs from the expected table: "* ]]
    [[ $(detail config) == *"mode 644: it must be root's, mode 600" ]]
    [[ $(detail "tunnel privileges") == *"sleep (pid $LAB_LAST_PID)"* ]]
    [ "$(jq '[.checks[] | select(.check == "leak probes")] | length' <<<"$output")" -eq 0 ]
    chmod 600 "$LAB_DIR/psi.conf"
    # psi-fw up and psi-tun up (down, then up, for DNS) put it right.
    psi_fw up >/dev/null
    lab_client ip -6 rule add not uidrange "$uid-$uid" lookup 20563 pref 20563
    psi_tun down >/dev/null
    psi_tun up >/dev/null
    run --separate-stderr diagnose --json --no-probes
    [ "$(verdict "kill switch")" = true ]
    [ "$(verdict routing)" = true ]
    [ "$(verdict DNS)" = true ]
    [ "$(verdict config)" = true ]
}

@test "the engine stopped: the probe through the tunnel fails, and still nothing leaks; an impostor does not count" {
    stack_up
    lab__stop "${STARTED##* }" TERM
    # Any program can be named psi-tun and started with "run": it is not the engine.
    mkdir -p "$LAB_DIR/fake" && chmod o+x "$LAB_DIR"
    printf '#!/bin/sh\nsleep 60\n' >"$LAB_DIR/fake/psi-tun"
    chmod -R o+rx "$LAB_DIR/fake"
    lab__spawn "$LAB_CLIENT" impostor setpriv --reuid="$TUNNEL_USER" --regid=psiphon-group --clear-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs "$LAB_DIR/fake/psi-tun" run
    STARTED="$STARTED $LAB_LAST_PID"
    lab__wait_for 2 grep -q "^psi-tun$" "/proc/$LAB_LAST_PID/comm"
    run --separate-stderr diagnose --json
    assert_failure 3
    [ "$(verdict "packet engine")" = false ]
    [ "$(verdict "through the tunnel")" = false ]
    [ "$(verdict "leak probes")" = true ]
}

@test "psi-diagnose: help, version, root only" {
    run "$PSI_DIAGNOSE" --version
    assert_output --regexp '^psi-diagnose [0-9]+\.[0-9]+\.[0-9]+$'
    run "$PSI_DIAGNOSE" --help
    assert_success
    assert_output --partial "--no-probes"
    run lab_as "$DESKTOP_UID" "$PSI_DIAGNOSE" --config "$LAB_DIR/psi.conf"
    assert_failure 1
    assert_output "psi-diagnose: error: psi-diagnose reads the kill switch and runs probes as another user: run it as root"
}
