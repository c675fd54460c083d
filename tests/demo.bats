#!/usr/bin/env bats
# make demo (tests/demo.sh) runs the whole of psi in a lab of its own: every step must pass,
# psi-diagnose must pass every check, and nothing of the lab may be left behind.

bats_require_minimum_version 1.5.0

setup() {
    load '/usr/lib/bats/bats-support/load'
    load '/usr/lib/bats/bats-assert/load'
}

@test "make demo: psi up, a page through the tunnel, psi-diagnose all green, the kill switch refuses, psi down; nothing left" {
    local namespaces_before labs_before
    namespaces_before=$(ip netns list | wc -l)
    labs_before=$(find /tmp -maxdepth 1 -name 'psi-lab.*' | wc -l)
    run "$BATS_TEST_DIRNAME/demo.sh"
    assert_success
    assert_line "tunnel up via OSSH (packet tunnel), server region CA; SOCKS5 127.0.0.1:1081, HTTP 127.0.0.1:8081"
    assert_line "hello from inet"
    assert_line "all 13 checks passed: the tunnel is up and nothing leaves outside it"
    assert_line "refused, as it must be"
    assert_line "nothing leaves with the tunnel down"
    refute_output --partial LEAK
    [ "$(ip netns list | wc -l)" -eq "$namespaces_before" ]
    [ "$(find /tmp -maxdepth 1 -name 'psi-lab.*' | wc -l)" -eq "$labs_before" ]
}
