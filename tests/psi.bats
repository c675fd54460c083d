#!/usr/bin/env bats
# psi, the wrapper, end to end in the lab: psi up in the client namespace brings up the kill
# switch, the TUN, psi-connect (fed by psi-servers pick) and psi-tun run against the lab's
# Psiphon test server in inet; a normal user (uid 2000) then reaches the inet host, and every
# way down keeps the kill switch unless asked.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    load lab/connect
    load lab/psi
    psi_lab_up --region DE >/dev/null
    export PSIPHOND_PID
    cp "$LAB_DIR/psi.conf" "$LAB_DIR/empty.conf"
    sed -i "s#$LAB_DIR/data#$LAB_DIR/empty-data#; s#$LAB_DIR/run#$LAB_DIR/empty-run#" "$LAB_DIR/empty.conf"
    cp "$LAB_DIR/psi.conf" "$LAB_DIR/user.conf"
    chmod 644 "$LAB_DIR/user.conf"
}

teardown_file() {
    load lab/fw
    load lab/psi
    psi down >/dev/null 2>&1 || true
    lab_client "$BATS_TEST_DIRNAME/../build/psi-fw" --config "$LAB_DIR/psi.conf" down >/dev/null 2>&1 || true
    lab_down
}

setup() {
    load lab/fw
    load lab/connect
    load lab/psi
}

teardown() {
    lab_client "$PSI" --config "$LAB_DIR/psi.conf" down >/dev/null 2>&1 || true
}

as_user() { lab_as "$DESKTOP_UID" "$@"; }
state() { psi_state "$@"; }
tunnel_replaced() { [ "$(state .tunnel.up)" = true ] && [ "$(state .connectPid)" != "$1" ]; }

@test "psi up: kill switch, TUN and tunnel; the homepage and region are printed; a normal user reaches the inet host" {
    run psi up --timeout 30
    assert_success
    assert_line "tunnel up via OSSH, server region DE; SOCKS5 127.0.0.1:1081, HTTP 127.0.0.1:8081"
    assert_line "homepage: https://home.psi.test/"
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_output "hello from inet"
    run psi status
    assert_success
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
    run psi status --json
    assert_success
    [ "$(jq -r '.tunnel.up' <<<"$output")" = true ]
    [ "$(jq -r '.killSwitch.intact' <<<"$output")" = true ]
    # psi up again: nothing changes.
    run psi up
    assert_success
    assert_line --partial "psi is already up"
}

@test "psi-connect dies: psi starts it again and the tunnel comes back; psi reload gives a new tunnel" {
    psi up --timeout 30 >/dev/null
    local first
    first=$(state .connectPid)
    kill -KILL "$first"
    lab__wait_for 30 tunnel_replaced "$first"
    [ "$(state .connectRestarts)" -ge 1 ]
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    local generation
    generation=$(state .tunnel.generation)
    run psi reload --timeout 30
    assert_success
    assert_line --partial "tunnel up via OSSH"
    [ "$(state .tunnel.generation)" -gt "$generation" ]
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "psi down keeps the kill switch: nothing leaves; psi down --open removes it" {
    psi up --timeout 30 >/dev/null
    run psi down
    assert_success
    assert_output --partial "the kill switch stays up"
    run lab_client ip link show PsiphonTUN
    assert_failure
    run lab_client "$BATS_TEST_DIRNAME/../build/psi-fw" --config "$LAB_DIR/psi.conf" status
    assert_success
    lab_capture_start
    run as_user curl -sS -m 3 "http://$LAB_INET_IP4:8080/"
    assert_failure
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    run psi down --open
    assert_success
    assert_output --partial "kill switch removed"
    run lab_client nft list table inet psiphon_filter
    assert_failure
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"  # the control: open means open
}

@test "no server in the store: psi up fails clearly within its timeout, the kill switch stays up, nothing leaves" {
    mkdir -p "$LAB_DIR/empty-data" "$LAB_DIR/empty-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/empty-data"
    lab_capture_start
    run lab_client "$PSI" --config "$LAB_DIR/empty.conf" up --timeout 5
    assert_failure 1
    assert_output --partial "no tunnel within 5 s (no servers in the store)"
    run as_user curl -sS -m 3 "http://$LAB_INET_IP4:8080/"
    assert_failure
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    run lab_client "$PSI" --config "$LAB_DIR/empty.conf" status
    assert_failure 1
    assert_line --partial "tunnel: down, connecting (no servers in the store)"
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
    lab_client "$PSI" --config "$LAB_DIR/empty.conf" down >/dev/null
}

@test "only a server whose host key is not its entry's: psi up fails within its timeout, the kill switch stays, nothing leaves" {
    mkdir -p "$LAB_DIR/bad-data" "$LAB_DIR/bad-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/bad-data"
    sed "s#$LAB_DIR/data#$LAB_DIR/bad-data#; s#$LAB_DIR/run#$LAB_DIR/bad-run#" "$LAB_DIR/psi.conf" >"$LAB_DIR/bad.conf"
    chmod 600 "$LAB_DIR/bad.conf"
    # The test server's entry with another RSA host key: its modulus' last bytes changed.
    /usr/bin/python3 - "$LAB_DIR/psiphond.entry" >"$LAB_DIR/bad.entry" <<'PY'
import base64, json, sys
text = bytes.fromhex(open(sys.argv[1]).read().strip()).decode()
prefix, doc = text[:8], json.loads(text[8:])
blob = doc["sshHostKey"]
doc["sshHostKey"] = base64.b64encode(base64.b64decode(blob)[:-8] + b"\x00" * 8).decode()
print((prefix + json.dumps(doc, separators=(",", ":"))).encode().hex())
PY
    lab_client "$PSI_SERVERS" --config "$LAB_DIR/bad.conf" import "$LAB_DIR/bad.entry" >/dev/null
    lab_capture_start
    run lab_client "$PSI" --config "$LAB_DIR/bad.conf" up --timeout 8
    assert_failure 1
    assert_output --partial "no tunnel within 8 s"
    run as_user curl -sS -m 3 "http://$LAB_INET_IP4:8080/"
    assert_failure
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter) and not (tcp and host $LAB_INET_IP4 and (port 4443 or port 4022))")" 0
    grep -q "host key does not match the entry's sshHostKey" "$LAB_DIR/bad-run/psi.log"
    lab_client "$PSI" --config "$LAB_DIR/bad.conf" down >/dev/null
}

@test "psi status without psi: not running, and exit 3 when the kill switch is missing" {
    lab_client "$BATS_TEST_DIRNAME/../build/psi-fw" --config "$LAB_DIR/psi.conf" down >/dev/null 2>&1 || true
    run psi status
    assert_failure 3
    assert_line "psi: not running (psi up)"
    assert_line "kill switch: not loaded, traffic is not blocked (run: psi-fw up)"
    run psi status --json
    [ "$(jq -r '.running' <<<"$output")" = false ]
}

@test "psi up, down and status as a normal user: refused with one clear line" {
    local command
    for command in up down status; do
        run --separate-stderr lab_as "$DESKTOP_UID" "$PSI" --config "$LAB_DIR/user.conf" "$command"
        assert_failure
        [ "$(wc -l <<<"$stderr")" -eq 1 ]
        [[ "$stderr" == *"run it as root"* ]]
    done
}
