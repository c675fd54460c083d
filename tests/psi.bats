#!/usr/bin/env bats
# psi, the wrapper, end to end in the lab: psi up in the client namespace brings up the kill
# switch, the TUN and psi-connect (fed by psi-servers pick) against the lab's Psiphon test
# server in inet, which offers the packet tunnel (with --mode socks: psi-tun run into the SOCKS
# proxy); a normal user (uid 2000) then reaches the inet host, and every way down keeps the
# kill switch unless asked. psi-leaks.bats runs psi against a server without the packet tunnel.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    load lab/connect
    load lab/psi
    psi_lab_up --region DE --packet-tunnel >/dev/null
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
    local config
    for config in psi empty stall shipped firstrun homepages discovering linked lan; do
        [ -f "$LAB_DIR/$config.conf" ] && lab_client "$PSI" --config "$LAB_DIR/$config.conf" down >/dev/null 2>&1
    done
    rm -rf "/etc/netns/$LAB_CLIENT/ssl"
    [ "$(lab_client sysctl -n net.ipv6.conf.all.disable_ipv6)" = 0 ] || lab_enable_client_ipv6
    if [ -n "${LAB_CGROUP:-}" ]; then rmdir "$LAB_CGROUP" 2>/dev/null; fi
    if [ -n "${DISCOVERING_PID:-}" ]; then lab__stop "$DISCOVERING_PID" TERM; fi
    if [ -n "${HOMEPAGES_PID:-}" ]; then lab__stop "$HOMEPAGES_PID" TERM; fi
    if [ -n "${PORT_GRABBER_PID:-}" ]; then lab__stop "$PORT_GRABBER_PID" TERM; fi
    if [ -f "$LAB_DIR/refusing.entry" ]; then
        lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" remove 198.51.100.20 >/dev/null 2>&1
        lab_inet ip addr del 198.51.100.20/32 dev eth0 2>/dev/null
        rm -f "$LAB_DIR/refusing.entry"
    fi
    true
}

as_user() { lab_as "$DESKTOP_UID" "$@"; }
state() { psi_state "$@"; }
packets_counted() { [ "$(state '.tunnel.packetTunnelStats.packetsDown // 0')" -gt 0 ]; }
tunnel_replaced() { [ "$(state .tunnel.up)" = true ] && [ "$(state .connectPid)" != "$1" ]; }

@test "psi up: kill switch, TUN and tunnel; the homepage and region are printed; a normal user reaches the inet host" {
    run psi up --timeout 30
    assert_success
    assert_line "tunnel up via OSSH (packet tunnel), server region DE; SOCKS5 127.0.0.1:1081, HTTP 127.0.0.1:8081"
    assert_line "homepage: https://home.psi.test/"
    # The packet tunnel carries the TUN: no psi-tun run.
    [ "$(state .mode)" = auto ]
    [ "$(state .tunnel.packetTunnel)" = true ]
    ! pgrep -f "psi-tun --config $LAB_DIR/psi.conf run"
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_output "hello from inet"
    # psi-connect's packet tunnel counters reach psi status within its 5 s.
    lab__wait_for 8 packets_counted
    run psi status
    assert_success
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
    assert_line --regexp '^packet tunnel: [1-9][0-9]* packets up, [1-9][0-9]* down; dropped [0-9]+ up \(filtered\), 0 down \(refused\), 0 down \(TUN full\)$'
    run psi status --json
    assert_success
    [ "$(jq -r '.tunnel.up' <<<"$output")" = true ]
    [ "$(jq -r '.killSwitch.intact' <<<"$output")" = true ]
    # psi up again: nothing changes.
    run psi up
    assert_success
    assert_line --partial "psi is already up"
}

@test "the TUN deleted under psi in packet mode: psi-connect ends, psi makes the TUN anew and the tunnel comes back" {
    psi up --timeout 30 >/dev/null
    local first
    first=$(state .connectPid)
    lab_client ip link delete PsiphonTUN
    lab__wait_for 30 tunnel_replaced "$first"
    lab__wait_for 20 as_user curl -sS -m 2 "http://$LAB_INET_IP4:8080/" >/dev/null 2>&1
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    [ "$(state .tunnel.packetTunnel)" = true ]
    grep -q "the TUN device PsiphonTUN went away" "$LAB_DIR/run/psi.log"
}

@test "psi up --mode socks: psi-tun run carries the TUN into the SOCKS proxy; psi restart keeps the mode" {
    run psi up --mode socks --timeout 30
    assert_success
    assert_line "tunnel up via OSSH, server region DE; SOCKS5 127.0.0.1:1081, HTTP 127.0.0.1:8081"
    [ "$(state .mode)" = socks ]
    pgrep -f "psi-tun --config $LAB_DIR/psi.conf run" >/dev/null
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_output "hello from inet"
    run psi restart --timeout 30
    assert_success
    [ "$(state .mode)" = socks ]
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
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

@test "a local user looping on bind() never gets psi's proxy ports, on 127.0.0.1 or [::1], while psi-connect restarts" {
    run psi up --mode socks --timeout 30
    assert_success
    lab__spawn "$LAB_CLIENT" grabber setpriv --reuid="$DESKTOP_UID" --regid="$DESKTOP_UID" --clear-groups \
        /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/port_grabber.py" --control 127.0.0.1:1099 \
        --port 127.0.0.1:1081 --port '[::1]:1081' --port 127.0.0.1:8081 --port '[::1]:8081'
    PORT_GRABBER_PID=$LAB_LAST_PID
    local round first generation
    lab__wait_for 5 grep -q grabbing "$LAB_DIR/grabber.out"
    grep -qx "control bound 127.0.0.1:1099" "$LAB_DIR/grabber.out"  # this user can bind a free port
    for round in 1 2 3; do
        first=$(state .connectPid)
        kill -KILL "$first"  # restarted after the supervisor's backoff
        lab__wait_for 30 tunnel_replaced "$first"
        generation=$(state .tunnel.generation)
        run psi reload --timeout 30  # restarted at once
        assert_success
        [ "$(state .tunnel.generation)" -gt "$generation" ]
        # Applications and the engine still reach the real proxies, on both addresses.
        run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
        assert_output "hello from inet"
        run lab_as "$DESKTOP_UID" curl -sS -m 10 --socks5-hostname '[::1]:1081' "http://$LAB_INET_IP4:8080/"
        assert_output "hello from inet"
    done
    lab__stop "$PORT_GRABBER_PID" TERM
    run cat "$LAB_DIR/grabber.out"
    refute_line --partial "got "
    refute_line --partial "connection "
    run lab_client "$BATS_TEST_DIRNAME/../build/psi-diagnose" --config "$LAB_DIR/psi.conf" --no-probes
    assert_line --regexp "^ok +proxy ports +"
}

@test "psi up when another user holds its SOCKS port on [::1]: it refuses to start, names the holder, and the kill switch stays up" {
    lab__spawn "$LAB_CLIENT" holder setpriv --reuid="$DESKTOP_UID" --regid="$DESKTOP_UID" --clear-groups \
        /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/port_grabber.py" --port '[::1]:1081'
    PORT_GRABBER_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q "got \[::1\]:1081" "$LAB_DIR/holder.out"
    run psi up --timeout 10
    assert_failure
    assert_output --partial "cannot listen on [::1]:1081: Address already in use (uid $DESKTOP_UID listens there)"
    run psi status
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_failure
    # psi-diagnose names the listener of another user on psi's port.
    run lab_client "$BATS_TEST_DIRNAME/../build/psi-diagnose" --config "$LAB_DIR/psi.conf" --no-probes
    assert_line --regexp "^FAIL +proxy ports +uid $DESKTOP_UID listens on \[::1\]:1081, psi's SOCKS port"
}

# psi-servers refresh as the refresh timer runs it: as the tunnel user, with a copy of the config.
timer_refresh() {
    lab_as_user psiphon-user "$PSI_SERVERS" --config "$LAB_DIR/timer.conf" refresh --force \
        --ca-file "$LAB_DIR/timer-pki/ca.pem" "$@"
}
list_downloads() { jq -s 'map(select(.method == "GET" and .status == 200)) | length' "$LAB_DIR/timer-list.log"; }

@test "the refresh timer's fetch goes through the tunnel while psi is up, and nowhere while it is down" {
    "$BATS_TEST_DIRNAME/tools/make_package.py" keygen --out-dir "$LAB_DIR/timer-key" >/dev/null
    "$BATS_TEST_DIRNAME/tools/make_package.py" --key "$LAB_DIR/timer-key/private.pem" --data "$LAB_DIR/psiphond.entry" \
        --out "$LAB_DIR/timer.package" 2>/dev/null
    "$BATS_TEST_DIRNAME/tools/make_cert.sh" "$LAB_DIR/timer-pki" "$LAB_INET_IP4" >/dev/null 2>&1
    lab__spawn "$LAB_INET" timer-list /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/list_server.py" \
        --cert "$LAB_DIR/timer-pki/server.pem" --key "$LAB_DIR/timer-pki/server.key" \
        --file "$LAB_DIR/timer.package" --port 8444 --bind "$LAB_INET_IP4" --log "$LAB_DIR/timer-list.log"
    lab__wait_for 5 grep -q listening "$LAB_DIR/timer-list.out"
    jq --arg key "$(cat "$LAB_DIR/timer-key/public.b64")" --arg url "https://$LAB_INET_IP4:8444/server_list_compressed" \
        '.RemoteServerListUrl = $url | .RemoteServerListSignaturePublicKey = $key' "$LAB_DIR/psi.conf" >"$LAB_DIR/timer.conf"
    chown psiphon-user "$LAB_DIR/timer.conf"
    chmod 600 "$LAB_DIR/timer.conf"
    chmod o+rx "$LAB_DIR/timer-pki" && chmod o+r "$LAB_DIR/timer-pki/ca.pem"
    run psi up --timeout 30
    assert_success

    # Control: without --through-tunnel (what the timer ran before), the download leaves beside the tunnel.
    lab_capture_start "tcp port 8444"
    run timer_refresh
    [ "$status" -eq 0 ] || [ "$status" -eq 4 ]
    lab_capture_stop
    [ "$(lab_capture_count)" -gt 0 ]
    assert_equal "$(list_downloads)" 1

    lab_capture_start "tcp port 8444"
    run timer_refresh --through-tunnel
    [ "$status" -eq 0 ] || [ "$status" -eq 4 ]  # 4: the list had nothing new
    lab_capture_stop
    assert_equal "$(lab_capture_count)" 0  # psiphond, in inet, made the connection
    assert_equal "$(list_downloads)" 2

    run psi down
    assert_success
    lab_capture_start "tcp port 8444"
    run timer_refresh --through-tunnel --json
    assert_failure 4
    assert_equal "$(jq -c . <<<"$output")" '{"modified":false,"tunnel":false}'
    lab_capture_stop
    assert_equal "$(lab_capture_count)" 0
    assert_equal "$(list_downloads)" 2
    grep -q -- "refresh --through-tunnel" "$BATS_TEST_DIRNAME/../share/systemd/psi-servers-refresh.service"
    grep -q -- "refresh --through-tunnel" "$BATS_TEST_DIRNAME/../share/cron/psi-servers-refresh"
}

none_alive() {
    local pid
    for pid; do ! kill -0 "$pid" 2>/dev/null || return 1; done
}

@test "the supervisor killed outside systemd (kill -9): psi-connect, psi-tun run and psi-fw watch end with it, the kill switch stays, and psi up comes up again" {
    run psi up --mode socks --timeout 30
    assert_success
    local supervisor children
    supervisor=$(cat "$LAB_DIR/run/psi.pid")
    children=$(pgrep -P "$supervisor" -d ' ')
    run ps -o args= -p "${children// /,}"
    assert_line --regexp "psi-connect "
    assert_line --regexp "psi-tun .*run"
    assert_line --regexp "psi-fw .*watch"
    kill -KILL "$supervisor"
    # shellcheck disable=SC2086
    lab__wait_for 10 none_alive $children
    run psi status
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_failure
    run psi up --mode socks --timeout 30
    assert_success
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "two psi up at the same moment: one supervisor, and both say psi is up (never \"could not start\"), three times over" {
    local round
    for round in 1 2 3; do
        psi up --timeout 30 >"$LAB_DIR/up-a.out" 2>&1 &
        local first=$!
        psi up --timeout 30 >"$LAB_DIR/up-b.out" 2>&1 &
        local second=$!
        wait "$first"
        wait "$second"
        run cat "$LAB_DIR/up-a.out" "$LAB_DIR/up-b.out"
        refute_output --partial "could not start"
        # Each says the tunnel is up, or (finding the other's supervisor already there) that psi is.
        grep -q '^tunnel up via OSSH' "$LAB_DIR/up-a.out" || grep -q '^psi is already up' "$LAB_DIR/up-a.out"
        grep -q '^tunnel up via OSSH' "$LAB_DIR/up-b.out" || grep -q '^psi is already up' "$LAB_DIR/up-b.out"
        [ "$(grep -c '^tunnel up via OSSH' <<<"$output")" -ge 1 ]
        [ "$(pgrep -c -f "^$PSI --config $LAB_DIR/psi.conf up --foreground")" -eq 1 ]
        run psi down
        assert_success
    done
}

@test "IPv6 disabled by sysctl (a common leak fix): psi up runs IPv4-only, in packet and socks mode, and the kill switch still blocks IPv6" {
    lab_client sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    local mode
    for mode in auto socks; do
        run psi up --mode "$mode" --timeout 30
        assert_success
        assert_line --partial "tunnel up via OSSH"
        run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
        assert_output "hello from inet"
        run psi status
        assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
        run lab_client ip -6 addr show dev PsiphonTUN
        assert_output ""
        run lab_client "$BATS_TEST_DIRNAME/../build/psi-diagnose" --config "$LAB_DIR/psi.conf" --no-probes
        assert_line --regexp "^ok +TUN +PsiphonTUN up, psiphon-user's, with 10.200.3.1$"
        assert_line --regexp "^ok +routing +.*IPv4, unreachable behind it; IPv6 \(disabled\) unreachable$"
        run psi down
        assert_success
    done
    # IPv6 back on the uplink, psi down: the kill switch blocks IPv6 (0 packets out); without
    # it, the same request is answered (the control).
    lab_enable_client_ipv6
    lab_capture_start "ip6 and not icmp6"
    run as_user curl -sS -m 5 "http://[$LAB_INET_IP6]:8080/"
    assert_failure
    lab_capture_stop
    assert_equal "$(lab_capture_count)" 0
    run psi down --open
    assert_success
    run as_user curl -sS -m 10 "http://[$LAB_INET_IP6]:8080/"
    assert_output "hello from inet"
}

@test "psi status after psi up --allow-lan and psi down: the kill switch that allows the LAN is no difference (exit 1, not 3)" {
    run psi up --allow-lan --timeout 30
    assert_success
    psi down >/dev/null
    run psi status --json
    assert_failure 1
    [ "$(jq -r .killSwitch.intact <<<"$output")" = true ]
    [ "$(jq -r .killSwitch.allowLan <<<"$output")" = true ]
    run psi status
    assert_failure 1
    assert_line "psi: not running (psi up)"
    assert_line --partial "(and the LAN)"
    # The kill switch without the LAN is intact as well, and says nothing of the LAN.
    lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" up >/dev/null
    run psi status --json
    assert_failure 1
    [ "$(jq -r .killSwitch.intact <<<"$output")" = true ]
    [ "$(jq -r .killSwitch.allowLan <<<"$output")" = false ]
}

@test "psi restart keeps --allow-lan, and reads AllowLan from psi.conf again" {
    psi_lan() { lab_client "$PSI" --config "$LAB_DIR/lan.conf" "$@"; }
    # A new supervisor, with the LAN allowed (true) or not (false), routed through DEV.
    restarted_with_lan() { # ALLOWED DEV
        local pid
        pid=$(state .pid)
        run psi_lan restart --timeout 30
        assert_success
        [ "$(state .pid)" != "$pid" ]
        run psi_lan status --json
        assert_success
        [ "$(jq -r .killSwitch.intact <<<"$output")" = true ]
        [ "$(jq -r .killSwitch.allowLan <<<"$output")" = "$1" ]
        run lab_client ip route get "$LAB_ROUTER_IP4" uid "$DESKTOP_UID"
        assert_output --partial "dev $2"
    }
    jq '.AllowLan = true' "$LAB_DIR/psi.conf" >"$LAB_DIR/lan.conf"
    chmod 600 "$LAB_DIR/lan.conf"
    run psi_lan up --timeout 30
    assert_success
    restarted_with_lan true eth0
    # AllowLan is turned off: after the restart the LAN goes into the tunnel like everything else.
    jq '.AllowLan = false' "$LAB_DIR/psi.conf" >"$LAB_DIR/lan.conf"
    restarted_with_lan false PsiphonTUN
    # --allow-lan on the command line is kept across a restart, also when the state comes from a
    # psi that recorded only allowLan.
    psi_lan down >/dev/null
    run psi_lan up --allow-lan --timeout 30
    assert_success
    restarted_with_lan true eth0
    [ "$(state .allowLanOption)" = true ]
    jq 'del(.allowLanOption)' "$LAB_DIR/run/psi.state.json" >"$LAB_DIR/older-state.json"
    mv "$LAB_DIR/older-state.json" "$LAB_DIR/run/psi.state.json"
    restarted_with_lan true eth0
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
    assert_output --partial "no tunnel within 5 s (no stored server matches"
    run as_user curl -sS -m 3 "http://$LAB_INET_IP4:8080/"
    assert_failure
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    run lab_client "$PSI" --config "$LAB_DIR/empty.conf" status
    assert_failure 1
    assert_line --partial "tunnel: down, connecting (no stored server matches"
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
    lab_client "$PSI" --config "$LAB_DIR/empty.conf" down >/dev/null
}

@test "an empty store and a server list shipped with psi (EmbeddedServerList): psi up imports it and comes up" {
    mkdir -p "$LAB_DIR/shipped-data" "$LAB_DIR/shipped-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/shipped-data"
    cp "$LAB_DIR/psiphond.entry" "$LAB_DIR/shipped_server_list"
    sed "s#$LAB_DIR/empty-data#$LAB_DIR/shipped-data#; s#$LAB_DIR/empty-run#$LAB_DIR/shipped-run#" "$LAB_DIR/empty.conf" |
        jq --arg list "$LAB_DIR/shipped_server_list" '.EmbeddedServerList = $list' >"$LAB_DIR/shipped.conf"
    chmod 600 "$LAB_DIR/shipped.conf"
    run lab_client "$PSI" --config "$LAB_DIR/shipped.conf" up --timeout 30
    assert_success
    assert_line --partial "tunnel up via OSSH"
    grep -q "importing the shipped server list $LAB_DIR/shipped_server_list" "$LAB_DIR/shipped-run/psi.log"
    ! grep -q "fetching the remote list" "$LAB_DIR/shipped-run/psi.log"
    run lab_client "$PSI_SERVERS" --config "$LAB_DIR/shipped.conf" list --json
    [ "$(jq length <<<"$output")" -ge 1 ]
    lab_client "$PSI" --config "$LAB_DIR/shipped.conf" down >/dev/null
}

# uid 2000 asks the uplink's resolver for leak.psi.test every 50 ms, past the system's resolver.
uplink_dns_prober() { # NAME
    lab__spawn "$LAB_CLIENT" "$1" setpriv --reuid="$DESKTOP_UID" --regid="$DESKTOP_UID" --clear-groups /usr/bin/python3 -c '
import random, socket, struct, sys, time
query = lambda: struct.pack(">6H", random.randrange(65536), 0x0100, 1, 0, 0, 0) + b"\x04leak\x03psi\x04test\x00\x00\x01\x00\x01"
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("asking", flush=True)
for _ in range(int(sys.argv[1])):
    try:
        probe.sendto(query(), ("'"$LAB_ROUTER_IP4"'", 53))
    except OSError:
        pass
    time.sleep(0.05)' "${2:-100000}"
}
uplink_queries_for() { grep -c "^query udp $1 " "$LAB_DIR/uplink-dns.out" || true; }
uplink_asked_at_least() { [ "$(uplink_queries_for "$1")" -ge "$2" ]; }

@test "a first run (empty store, the remote list's URL by host name): psi up resolves it at the uplink's resolver for the fetch alone and comes up; no other user's DNS leaves" {
    mkdir -p "$LAB_DIR/firstrun-data" "$LAB_DIR/firstrun-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/firstrun-data"
    "$BATS_TEST_DIRNAME/tools/make_package.py" keygen --out-dir "$LAB_DIR/firstrun-key" >/dev/null
    "$BATS_TEST_DIRNAME/tools/make_package.py" --key "$LAB_DIR/firstrun-key/private.pem" --data "$LAB_DIR/psiphond.entry" \
        --out "$LAB_DIR/firstrun.package" 2>/dev/null
    "$BATS_TEST_DIRNAME/tools/make_cert.sh" "$LAB_DIR/firstrun-pki" lists.psi.test >/dev/null 2>&1
    # The client trusts the lab's CA as the system's: "ip netns exec" mounts this over /etc/ssl.
    mkdir -p "/etc/netns/$LAB_CLIENT/ssl/certs"
    cp "$LAB_DIR/firstrun-pki/ca.pem" "/etc/netns/$LAB_CLIENT/ssl/certs/ca-certificates.crt"
    # The uplink's resolver, the client's nameserver (the lab router).
    lab__spawn "$LAB_ROUTER" uplink-dns /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/dns_server.py" --bind "$LAB_ROUTER_IP4" \
        --port 53 --record "lists.psi.test=$LAB_INET_IP4" --record "leak.psi.test=$LAB_INET_IP4"
    lab__wait_for 5 grep -q listening "$LAB_DIR/uplink-dns.out"
    sed "s#$LAB_DIR/empty-data#$LAB_DIR/firstrun-data#; s#$LAB_DIR/empty-run#$LAB_DIR/firstrun-run#" "$LAB_DIR/empty.conf" |
        jq --arg key "$(cat "$LAB_DIR/firstrun-key/public.b64")" \
            '.RemoteServerListUrl = "https://lists.psi.test:8443/server_list_compressed" | .RemoteServerListSignaturePublicKey = $key' \
            >"$LAB_DIR/firstrun.conf"
    chmod 600 "$LAB_DIR/firstrun.conf"

    # Control: with no kill switch, the prober's queries reach the uplink's resolver.
    lab_client "$BATS_TEST_DIRNAME/../build/psi-fw" --config "$LAB_DIR/firstrun.conf" down >/dev/null
    uplink_dns_prober firstrun-control 5
    lab__wait_for 5 uplink_asked_at_least leak.psi.test 3
    lab_client "$BATS_TEST_DIRNAME/../build/psi-fw" --config "$LAB_DIR/firstrun.conf" boot >/dev/null
    local leaked_before
    leaked_before=$(uplink_queries_for leak.psi.test)

    uplink_dns_prober firstrun-prober
    local prober=$LAB_LAST_PID
    lab__wait_for 5 grep -q asking "$LAB_DIR/firstrun-prober.out"
    # The list server is not there yet: the fetch fails, and is tried again.
    lab_client "$PSI" --config "$LAB_DIR/firstrun.conf" up --timeout 60 >"$LAB_DIR/firstrun-up.out" 2>&1 &
    local up=$!
    lab__wait_for 20 grep -q "no server list yet; fetching it again in" "$LAB_DIR/firstrun-run/psi.log"
    lab__spawn "$LAB_INET" firstrun-list /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/list_server.py" \
        --cert "$LAB_DIR/firstrun-pki/server.pem" --key "$LAB_DIR/firstrun-pki/server.key" \
        --file "$LAB_DIR/firstrun.package" --port 8443 --bind "$LAB_INET_IP4" --log "$LAB_DIR/firstrun-list.log"
    lab__wait_for 5 grep -q listening "$LAB_DIR/firstrun-list.out"
    wait "$up"
    run cat "$LAB_DIR/firstrun-up.out"
    assert_line --partial "tunnel up via OSSH"
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
    lab__stop "$prober" TERM
    rm -rf "/etc/netns/$LAB_CLIENT/ssl"
    lab_client sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0

    # The list's host was asked at the uplink, the list fetched and stored; the prober's
    # queries, all the while, never left.
    [ "$(uplink_queries_for lists.psi.test)" -ge 1 ]
    [ "$(jq -s 'map(select(.method == "GET" and .status == 200)) | length' "$LAB_DIR/firstrun-list.log")" -ge 1 ]
    run lab_client "$PSI_SERVERS" --config "$LAB_DIR/firstrun.conf" list --json
    [ "$(jq length <<<"$output")" -ge 1 ]
    assert_equal "$(uplink_queries_for leak.psi.test)" "$leaked_before"
    lab_client "$PSI" --config "$LAB_DIR/firstrun.conf" down >/dev/null
}

# The entry lines a hostile server hands out: its client's loopback, LAN (the lab router), the
# cloud metadata address, and one global address. 192.175.48.7 is global (IANA's AS112 direct
# delegation block, globally reachable), so the store must take it, yet nothing in the lab holds
# it and the lab router has no route to it: a dial to it ends there, with no reply from anyone.
handed_out_entries() {
    local address
    for address in 127.0.0.1 "$LAB_ROUTER_IP4" 169.254.169.254 192.175.48.7; do
        printf -- '--discovered-entry\n%s\n' "$(connect_entry "{\"ipAddress\":\"$address\",\"sshPort\":22,\"capabilities\":[\"SSH\",\"ssh-api-requests\"],\"region\":\"US\"}")"
    done
}

discovering_state() { jq -r "$1" "$LAB_DIR/discovering-run/psi.state.json"; }
discovering_connect_replaced() { [ "$(discovering_state .connectPid)" != "$1" ]; }
no_server_reached_since() { tail -n "+$1" "$LAB_DIR/discovering-run/psi.log" | grep -q "no server could be reached"; }
syns_to() { tcpdump -r "$LAB_DIR/discovered-syn.pcap" -n "dst host $1" 2>/dev/null | grep -c '^[0-9]' || true; }

@test "servers the tunnel's handshake hands out: only global ones are stored (source DISCOVERY), and psi never dials the loopback, LAN or metadata ones" {
    local main_server=$PSIPHOND_PID handed_out log_lines first_connect address
    mapfile -t handed_out < <(handed_out_entries)
    psiphond_start discovering --ossh-port 4444 --ssh-port 4023 "${handed_out[@]}"
    DISCOVERING_PID=$PSIPHOND_PID PSIPHOND_PID=$main_server
    mkdir -p "$LAB_DIR/discovering-data" "$LAB_DIR/discovering-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/discovering-data"
    chmod 750 "$LAB_DIR/discovering-data"
    sed "s#$LAB_DIR/empty-data#$LAB_DIR/discovering-data#; s#$LAB_DIR/empty-run#$LAB_DIR/discovering-run#" \
        "$LAB_DIR/empty.conf" >"$LAB_DIR/discovering.conf"
    chmod 600 "$LAB_DIR/discovering.conf"
    lab_client "$PSI_SERVERS" --config "$LAB_DIR/discovering.conf" import "$LAB_DIR/discovering.entry" >/dev/null
    run lab_client "$PSI" --config "$LAB_DIR/discovering.conf" up --timeout 30
    assert_success
    grep -q "servers the tunnel handed out: imported 1 entries: 1 added" "$LAB_DIR/discovering-run/psi.log"
    run lab_client "$PSI_SERVERS" --config "$LAB_DIR/discovering.conf" list --json
    [ "$(jq -r '.[] | select(.address == "192.175.48.7") | .source' <<<"$output")" = DISCOVERY ]
    [ "$(jq length <<<"$output")" -eq 2 ]  # the discovering server and 192.175.48.7
    [ ! -e "$LAB_DIR/discovering-data/discovered" ]  # taken
    # A reconnect with the server that handed them out gone: psi-connect, started anew, dials
    # every server psi-servers pick gives it. SYNs on any of the client's interfaces (eth0, lo).
    lab__spawn "$LAB_CLIENT" discovered-syn tcpdump --immediate-mode -U -n -i any -w "$LAB_DIR/discovered-syn.pcap" \
        'tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0'
    local capture=$LAB_LAST_PID
    lab__wait_for 5 grep -q "listening on" "$LAB_DIR/discovered-syn.err"
    # Stopped first, so that the lines after log_lines are the new psi-connect's.
    first_connect=$(discovering_state .connectPid)
    kill -STOP "$first_connect"
    lab__stop "$DISCOVERING_PID" TERM
    log_lines=$(($(wc -l <"$LAB_DIR/discovering-run/psi.log") + 1))
    kill -KILL "$first_connect"
    lab__wait_for 30 discovering_connect_replaced "$first_connect"
    lab__wait_for 30 no_server_reached_since "$log_lines"
    lab__stop "$capture" INT
    [ "$(syns_to 192.175.48.7)" -ge 1 ]  # the global one was dialled: the capture saw the dials
    for address in 127.0.0.1 "$LAB_ROUTER_IP4" 169.254.169.254; do
        [ "$(syns_to "$address")" -eq 0 ]
        ! tail -n "+$log_lines" "$LAB_DIR/discovering-run/psi.log" | grep -q "SSH $address:22"
    done
    lab_client "$PSI" --config "$LAB_DIR/discovering.conf" down >/dev/null
    # A link the tunnel user puts there is not followed: root reads no path they control.
    connect_entry '{"ipAddress":"192.0.2.8","sshPort":22,"capabilities":["SSH"],"region":"US"}' >"$LAB_DIR/elsewhere"
    mkdir -p "$LAB_DIR/linked-data" "$LAB_DIR/linked-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/linked-data"
    chmod 750 "$LAB_DIR/linked-data"
    ln -s "$LAB_DIR/elsewhere" "$LAB_DIR/linked-data/discovered"
    chown -h psiphon-user:psiphon-group "$LAB_DIR/linked-data/discovered"
    sed "s#$LAB_DIR/empty-data#$LAB_DIR/linked-data#; s#$LAB_DIR/empty-run#$LAB_DIR/linked-run#" \
        "$LAB_DIR/empty.conf" >"$LAB_DIR/linked.conf"
    chmod 600 "$LAB_DIR/linked.conf"
    lab_client "$PSI_SERVERS" --config "$LAB_DIR/linked.conf" import "$LAB_DIR/psiphond.entry" >/dev/null
    run lab_client "$PSI" --config "$LAB_DIR/linked.conf" up --timeout 30
    assert_success
    run lab_client "$PSI_SERVERS" --config "$LAB_DIR/linked.conf" list --json
    [ "$(jq length <<<"$output")" -eq 1 ]
    [ -L "$LAB_DIR/linked-data/discovered" ]
}

@test "a server's homepages reach root's terminal only as a few printable https URLs: no escape sequence, 4 at most of 12,006" {
    local main_server=$PEER_PID main_dir=$PEER_DIR cpu url arguments=()
    # The real psiphond hands out its sponsor's homepages from psinet, in order.
    while IFS= read -r url; do arguments+=(--homepage "$url"); done < <(python3 -c '
hostile = ["https://home.psi.test/", "\u001b]0;owned\u0007https://title.psi.test/", "https://clear.psi.test/\u001b[2J\u001b[H",
           "http://plain.psi.test/", "https://ok.psi.test/one", "https://ok.psi.test/one"]
print("\n".join(hostile + ["https://s/%d" % n for n in range(12000)]))')
    peer_start homepages --protocol OSSH:4445 --protocol SSH:4024 --region DE "${arguments[@]}"
    HOMEPAGES_PID=$PEER_PID PEER_PID=$main_server PEER_DIR=$main_dir
    mkdir -p "$LAB_DIR/homepages-data" "$LAB_DIR/homepages-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/homepages-data"
    sed "s#$LAB_DIR/empty-data#$LAB_DIR/homepages-data#; s#$LAB_DIR/empty-run#$LAB_DIR/homepages-run#" \
        "$LAB_DIR/empty.conf" >"$LAB_DIR/homepages.conf"
    chmod 600 "$LAB_DIR/homepages.conf"
    lab_client "$PSI_SERVERS" --config "$LAB_DIR/homepages.conf" import "$LAB_DIR/homepages.entry" >/dev/null
    run lab_client "$PSI" --config "$LAB_DIR/homepages.conf" up --timeout 30
    [ "$status" -eq 0 ] || { cut -c1-300 "$LAB_DIR/homepages-run/psi.log" | grep -iv "dial" | tail -30 >&3; false; }
    [[ "$output" != *$'\e'* ]]
    # psiphond shuffles them (GetRandomizedHomepages): 4 distinct printable https ones, any of them.
    local shown
    shown=$(grep '^homepage: ' <<<"$output")
    [ "$(grep -cE '^homepage: https://[!-~]+$' <<<"$shown")" -eq 4 ]
    [ "$(sort -u <<<"$shown" | wc -l)" -eq 4 ]
    run lab_client "$PSI" --config "$LAB_DIR/homepages.conf" status
    [[ "$output" != *$'\e'* ]]
    assert_equal "$(grep '^homepage: ' <<<"$output")" "$shown"
    ! grep -q $'\e' "$LAB_DIR/homepages-run/psi.log"
    grep -q "the server gave 12006 homepages; shown: 4" "$LAB_DIR/homepages-run/psi.log"
    cpu=$(awk '{ print ($14 + $15) / 100 }' "/proc/$(cat "$LAB_DIR/homepages-run/psi.pid")/stat")
    echo "# the supervisor's CPU time after psi up: $cpu s" >&3
    lab_client "$PSI" --config "$LAB_DIR/homepages.conf" down >/dev/null
}

@test "an empty store whose remote list never answers: the refresh runs beside the supervisor, and psi down stops it at once" {
    mkdir -p "$LAB_DIR/stall-data" "$LAB_DIR/stall-run"
    chown psiphon-user:psiphon-group "$LAB_DIR/stall-data"
    sed "s#$LAB_DIR/empty-data#$LAB_DIR/stall-data#; s#$LAB_DIR/empty-run#$LAB_DIR/stall-run#" "$LAB_DIR/empty.conf" |
        jq --arg url "https://$LAB_INET_IP4:7999/list" --slurpfile defaults "$BATS_TEST_DIRNAME/../share/psi.conf" \
            '.RemoteServerListUrl = $url | .RemoteServerListSignaturePublicKey = $defaults[0].RemoteServerListSignaturePublicKey' \
            >"$LAB_DIR/stall.conf"
    chmod 600 "$LAB_DIR/stall.conf"
    # A server that takes the connection and never answers.
    lab__spawn "$LAB_INET" stall /usr/bin/python3 -c '
import socket, time
s = socket.create_server(("'"$LAB_INET_IP4"'", 7999)); print("listening", flush=True)
held = [s.accept() for _ in range(4)]
time.sleep(600)'
    lab__wait_for 5 grep -q listening "$LAB_DIR/stall.out"
    run lab_client "$PSI" --config "$LAB_DIR/stall.conf" up --timeout 3
    assert_failure 1
    grep -q "fetching the remote list" "$LAB_DIR/stall-run/psi.log"
    # The refresh hangs on that server; the supervisor still acts on its signals.
    local refresh
    refresh=$(pgrep -P "$(cat "$LAB_DIR/stall-run/psi.pid")" -f "psi-servers.*refresh")
    SECONDS=0
    run lab_client "$PSI" --config "$LAB_DIR/stall.conf" down
    assert_success
    [ "$SECONDS" -le 8 ]
    ! kill -0 "$refresh" 2>/dev/null
    run lab_client "$PSI" --config "$LAB_DIR/stall.conf" status
    assert_line "kill switch: up, intact; only psiphon-user and PsiphonTUN may reach the network"
}

@test "psi up --foreground while psi is up (systemd's start after psi up by hand): exit 4, which psi.service does not retry; the running psi is untouched" {
    psi up --timeout 30 >/dev/null
    local pid
    pid=$(state .pid)
    run psi up --foreground
    assert_failure 4
    assert_output "psi: error: psi is already up (psi status)"
    grep -qx "RestartPreventExitStatus=4" "$BATS_TEST_DIRNAME/../share/systemd/psi.service"
    [ "$(state .pid)" = "$pid" ]
    kill -0 "$pid"
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}

@test "psi restart when systemd started the supervisor: it asks systemd (systemctl restart UNIT) and never starts a second psi outside the service" {
    # What systemd gives a service's processes: INVOCATION_ID, and a cgroup named after the
    # unit (one of the lab's own, removed at the end).
    local cgroup_root
    cgroup_root=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
    LAB_CGROUP="$cgroup_root/psi-lab-$$.service"
    mkdir "$LAB_CGROUP"
    # Joined outside the namespace: ip netns exec mounts a sysfs of its own, without cgroups.
    sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$LAB_CGROUP" ip netns exec "$LAB_CLIENT" \
        env INVOCATION_ID=0123456789abcdef0123456789abcdef "$PSI" --config "$LAB_DIR/psi.conf" up --timeout 30 >/dev/null
    [ "$(state .systemdUnit)" = "psi-lab-$$.service" ]
    local pid
    pid=$(state .pid)
    run psi restart
    assert_line "psi runs under systemd: systemctl restart psi-lab-$$.service"
    if ! systemctl is-system-running >/dev/null 2>&1 && [ ! -d /run/systemd/system ]; then
        # No systemd on this machine: systemctl's refusal is passed on, and nothing else happens.
        assert_failure 1
        assert_line --partial "psi: error: systemctl restart psi-lab-$$.service"
        [ "$(state .pid)" = "$pid" ]
        kill -0 "$pid"
    fi
    # Restarted by hand without systemd's mark: the usual down and up.
    psi down >/dev/null
    rmdir "$LAB_CGROUP"
    LAB_CGROUP=
    # INVOCATION_ID alone (a process of a scope or a session, say) is no service either.
    lab_client env INVOCATION_ID=0123456789abcdef0123456789abcdef "$PSI" --config "$LAB_DIR/psi.conf" up --timeout 30 >/dev/null
    [ "$(state .systemdUnit)" = null ]
    psi down >/dev/null
    psi up --timeout 30 >/dev/null
    [ "$(state .systemdUnit)" = null ]
    pid=$(state .pid)
    run psi restart --timeout 30
    assert_success
    [ "$(state .pid)" != "$pid" ]
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

@test "server memory: psi up records the server that connected and the one that refused; pick puts the one that worked first and the failed one last" {
    # A second server in inet where nothing listens: psiphond's entry with another address.
    lab_inet ip addr add 198.51.100.20/32 dev eth0
    peer_entry_edit psiphond '.ipAddress = "198.51.100.20"' "$LAB_DIR/refusing.entry"
    lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" import "$LAB_DIR/refusing.entry"
    run psi up --timeout 30
    assert_success
    servers() { lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" list --json; }
    recorded() { [ "$(servers | jq -r '.[] | select(.address == "198.51.100.20") | .failures')" = 1 ]; }
    lab__wait_for 10 recorded
    run servers
    assert_success
    [ "$(jq -r ".[] | select(.address == \"$LAB_INET_IP4\") | .lastConnected > 0" <<<"$output")" = true ]
    [ "$(jq -r ".[] | select(.address == \"$LAB_INET_IP4\") | .failures" <<<"$output")" = 0 ]
    [ "$(jq -r '.[] | select(.address == "198.51.100.20") | .lastFailure' <<<"$output")" = refused ]
    [ "$(jq -r '.[] | select(.address == "198.51.100.20") | .lastConnected' <<<"$output")" = 0 ]
    # Whatever the shuffle, the one that worked comes first and the refusing one last.
    address_of() { python3 -c 'import sys, json; print(json.loads(bytes.fromhex(sys.argv[1]).decode().split(" ", 4)[4])["ipAddress"])' "$1"; }
    for seed in 1 2 3 4 5; do
        run lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" pick --seed "$seed"
        assert_success
        [ "${#lines[@]}" = 2 ]
        [ "$(address_of "${lines[0]}")" = "$LAB_INET_IP4" ]
        [ "$(address_of "${lines[1]}")" = 198.51.100.20 ]
    done
    run lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" list
    assert_line --regexp '^198\.51\.100\.20 .* 1 refused [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}'
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
