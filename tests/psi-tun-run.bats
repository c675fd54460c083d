#!/usr/bin/env bats
# psi-tun run, the packet engine, end to end in the lab: a normal user (uid 2000) in the client
# namespace, with the kill switch and psi-tun up, reaches the inet host only through
# PsiphonTUN, the engine and a SOCKS5 proxy run by the tunnel user (the lab's SOCKS5 proxy,
# or OpenSSH's ssh -D against a real sshd).

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/fw
    load lab/tun
    tun_lab_up
}

teardown_file() {
    load lab/fw
    load lab/tun
    tun_lab_down
}

setup() {
    load lab/fw
    load lab/tun
    load lab/sshd
    load lab/connect
}

teardown() {
    local pid
    engine_stop
    proxy_stop
    for pid in ${OTHER_PIDS:-}; do lab__stop "$pid" TERM; done
    OTHER_PIDS=
    [ -n "${CONNECT_PID:-}" ] && lab__stop "$CONNECT_PID" TERM
    [ -n "${PSIPHOND_PID:-}" ] && lab__stop "$PSIPHOND_PID" TERM
    CONNECT_PID= PSIPHOND_PID=
}

psi_tun() { lab_client "$PSI_TUN" --config "$LAB_DIR/psi.conf" "$@"; }
psi_tun_with() { local config=$1; shift; lab_client "$PSI_TUN" --config "$config" "$@"; }

# The lab's SOCKS5 proxy as the tunnel user on 127.0.0.1:1080; extra arguments go to it.
proxy_start() {
    lab__spawn "$LAB_CLIENT" socks setpriv --reuid="$TUNNEL_USER" --regid=psiphon-group --clear-groups \
        --inh-caps=-all --bounding-set=-all /usr/bin/python3 "$TOOLS/socks5_server.py" --bind 127.0.0.1 --port 1080 "$@"
    PROXY_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q listening "$LAB_DIR/socks.out"
}

proxy_stop() {
    [ -n "${PROXY_PID:-}" ] || return 0
    lab__stop "$PROXY_PID" TERM
    PROXY_PID=
}

# psi-tun run, started by root in the namespace as psi would: it attaches to the TUN and
# becomes the tunnel user with no capability before it touches the network.
engine_start() {
    lab__spawn "$LAB_CLIENT" engine "$PSI_TUN" --config "$LAB_DIR/psi.conf" run "$@"
    ENGINE_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q "carried into" "$LAB_DIR/engine.out"
}

engine_stop() {
    [ -n "${ENGINE_PID:-}" ] || return 0
    lab__stop "$ENGINE_PID" TERM
    ENGINE_PID=
}

as_user() { lab_as "$DESKTOP_UID" "$@"; }
probe() { probe_as "$DESKTOP_UID" "$@" 2>/dev/null; }

# Milliseconds that CMD takes; its output is discarded.
elapsed_ms() {
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

@test "a normal user reaches the inet host by IPv4, IPv6 and name, all through the tunnel" {
    proxy_start
    engine_start
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 5 "http://[$LAB_INET_IP6]:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 5 "http://inet.psi.test:8080/"
    assert_success
    assert_output "hello from inet"
    # The proxy made each connection, with the address the application used; the name was
    # resolved by the inet resolver, asked through the proxy's UDP ASSOCIATE.
    grep -q "^connect $LAB_INET_IP4 8080$" "$LAB_DIR/socks.out"
    grep -q "^connect $LAB_INET_IP6 8080$" "$LAB_DIR/socks.out"
    grep -q "^udp $LAB_INET_IP4 53$" "$LAB_DIR/socks.out"
    grep -q "^query udp inet.psi.test A$" "$LAB_DIR/dns.out"
    run --separate-stderr psi_tun stats --json
    assert_success
    [ "$(jq '.stats.tcp.flowsOpened' <<<"$output")" -ge 3 ]
    [ "$(jq '.stats.udp.datagramsDown' <<<"$output")" -ge 1 ]
}

@test "the engine runs as the tunnel user with no capability at all" {
    proxy_start
    engine_start
    local pid status
    pid=$(lab_client ss -Hltnp "src 10.200.3.1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    [ -n "$pid" ]
    status=$(cat "/proc/$pid/status")
    grep -q "^Uid:[[:space:]]*$(id -u "$TUNNEL_USER")[[:space:]]" <<<"$status"
    grep -q "^CapEff:[[:space:]]*0000000000000000$" <<<"$status"
    grep -q "^CapPrm:[[:space:]]*0000000000000000$" <<<"$status"
    grep -q "^CapBnd:[[:space:]]*0000000000000000$" <<<"$status"
    grep -q "^NoNewPrivs:[[:space:]]*1$" <<<"$status"
    # And so it cannot lower the kill switch.
    run lab_as_user "$TUNNEL_USER" nft delete table inet psiphon_filter
    assert_failure
}

# The engine's tc program (TcpFastPath) as the kernel lists it on this lab's TUN: how many are
# attached. Only this TUN's, so that psi-tun runs elsewhere on the machine do not count.
fast_path_programs() {
    local attached id count=0
    attached=$(lab_client /usr/bin/python3 "$TOOLS/tcx_programs.py" PsiphonTUN) || return 1
    while read -r _ id; do
        [ -n "$id" ] && [ "$(bpftool -j prog show id "$id" | jq -r .name)" = tcp_fast_path ] && count=$((count + 1))
    done <<<"$attached"
    echo "$count"
}

@test "the kernel NATs established flows: byte for byte both ways, IPv4 and IPv6" {
    proxy_start
    engine_start
    head -c 16M /dev/urandom >"$LAB_DIR/www/blob"
    chmod 644 "$LAB_DIR/www/blob"
    local want family address sink
    want=$(sha256sum <"$LAB_DIR/www/blob")
    for address in "$LAB_INET_IP4" "[$LAB_INET_IP6]"; do
        run as_user sh -c "curl -sS -m 30 http://$address:8080/blob | sha256sum"
        assert_success
        assert_output "$want"
    done
    for family in 4 6; do
        address=$LAB_INET_IP4
        [ "$family" = 4 ] || address="[$LAB_INET_IP6]"
        rm -f "$LAB_DIR/upload"
        lab__spawn "$LAB_INET" sink timeout 30 socat -u "TCP$family-LISTEN:7200,reuseaddr" "CREATE:$LAB_DIR/upload"
        sink=$LAB_LAST_PID
        lab__wait_for 5 eval '[ -n "$(lab_inet ss -Hltn "sport = :7200")" ]'
        as_user timeout 30 socat -u STDIN "TCP$family:$address:7200" <"$LAB_DIR/www/blob"
        wait "$sink"
        [ "$(sha256sum <"$LAB_DIR/upload")" = "$want" ]
    done
    run --separate-stderr psi_tun stats --json
    assert_success
    [ "$(jq '.stats.fastPath.on' <<<"$output")" = true ]
    # 64 MB moved: far more segments went through the kernel than through the engine.
    [ "$(jq '.stats.fastPath.packets' <<<"$output")" -gt "$(jq '.stats.packets.read * 2' <<<"$output")" ]
    [ "$(jq '.stats.tcp.flowsOpened' <<<"$output")" -ge 4 ]
    run psi_tun stats
    assert_line --regexp '^kernel fast path: [0-9]+ TCP segments NATed in the kernel$'
}

@test "the kernel fast path lives and dies with the engine; --no-fast-path leaves it out" {
    proxy_start
    [ "$(fast_path_programs)" = 0 ]
    engine_start
    [ "$(fast_path_programs)" = 1 ]
    # Killed outright, the engine takes its program with it: no table outlives it.
    lab__stop "$ENGINE_PID" KILL
    ENGINE_PID=
    [ "$(fast_path_programs)" = 0 ]
    engine_start --no-fast-path
    [ "$(fast_path_programs)" = 0 ]
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run --separate-stderr psi_tun stats --json
    [ "$(jq '.stats.fastPath' <<<"$output" | jq -c .)" = '{"on":false,"packets":0}' ]
    run psi_tun stats
    refute_line --partial "kernel fast path"
}

@test "1,000 connections at once all complete" {
    proxy_start
    engine_start
    run as_user /usr/bin/python3 "$TOOLS/many_connections.py" connect "$LAB_INET_IP4" 7100 --count 1000 --timeout 60
    assert_success
    assert_output "ok=1000 failed=0"
}

@test "a refused destination fails at once, not after a timeout" {
    proxy_start
    engine_start
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8099/"
    assert_failure 7  # "Couldn't connect": the application got a reset, as from the server itself
    [ "$(elapsed_ms as_user curl -sS -m 10 "http://$LAB_INET_IP4:8099/")" -lt 1000 ]
    # The SYN was held until the proxy answered: the application never saw "connected".
    [ "$(probe tcp "$LAB_INET_IP4" 8099 --timeout 5)" = refused ]
}

@test "the proxy killed: new connections fail at once and nothing leaves the machine; back when it is back" {
    proxy_start
    engine_start
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_success
    proxy_stop
    lab_capture_start
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_failure 7
    [ "$(elapsed_ms as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/")" -lt 1000 ]
    [ "$(probe udp "$LAB_INET_IP4" 7200 --timeout 1)" != reply ]
    lab_client getent hosts inet.psi.test && false
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    grep -q "cannot reach the SOCKS proxy" "$LAB_DIR/engine.err"
    [ "$(grep -c "cannot reach the SOCKS proxy" "$LAB_DIR/engine.err")" -eq 1 ]  # one warning, not one per flow
    proxy_start
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
}

@test "UDP goes through the proxy's UDP ASSOCIATE, IPv4 and IPv6" {
    proxy_start
    engine_start
    [ "$(probe udp "$LAB_INET_IP4" 7200 --timeout 3)" = reply ]
    [ "$(probe udp "$LAB_INET_IP6" 7200 --timeout 3)" = reply ]
    grep -q "^udp $LAB_INET_IP6 7200$" "$LAB_DIR/socks.out"
}

@test "with OpenSSH's ssh -D (no UDP): pages and names still work, DNS over TCP, other UDP refused" {
    lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 22
    OTHER_PIDS=$LAB_LAST_PID
    lab_ssh_socks_start "$LAB_CLIENT" "$TUNNEL_USER" 1081
    OTHER_PIDS="$OTHER_PIDS $LAB_LAST_PID"
    engine_start --socks 127.0.0.1:1081
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_success
    assert_output "hello from inet"
    grep -q "^query tcp inet.psi.test" "$LAB_DIR/dns.out"
    [ "$(probe udp "$LAB_INET_IP4" 7200 --timeout 3)" = refused ]
    run --separate-stderr psi_tun stats --json
    [ "$(jq '.stats.dnsQueriesOverTcp' <<<"$output")" -ge 1 ]
    [ "$(jq '.stats.dropped.udpUnsupported' <<<"$output")" -ge 1 ]
}

@test "ICMP is answered with administratively prohibited, and counted" {
    proxy_start
    engine_start
    run lab_client ping -c 1 -W 2 "$LAB_INET_IP4"
    assert_failure
    assert_output --partial "Packet filtered"
    run --separate-stderr psi_tun stats --json
    [ "$(jq '.stats.dropped.notTcpOrUdp' <<<"$output")" -ge 1 ]
}

@test "nothing but the engine's own NAT legs is accepted on its listener" {
    proxy_start
    engine_start
    local port
    port=$(lab_client ss -Hltn "src 10.200.3.1" | awk '{print $4}' | head -1 | cut -d: -f2)
    [ -n "$port" ]
    run as_user curl -sS -m 5 "http://10.200.3.1:$port/"
    assert_failure
    ! grep -q "^connect 10.200.3" "$LAB_DIR/socks.out"
    # Destinations inside the TUN's own network are never handed to the proxy.
    run as_user curl -sS -m 5 "http://10.200.3.9:8080/"
    assert_failure 7
    ! grep -q "^connect 10.200.3.9" "$LAB_DIR/socks.out"
}

@test "an engine restarted under an open connection resets it instead of leaving it hanging" {
    proxy_start
    engine_start
    lab__spawn "$LAB_CLIENT" held setpriv --reuid="$DESKTOP_UID" --regid="$DESKTOP_UID" --clear-groups \
        /usr/bin/python3 -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7100), timeout=5)
s.sendall(b"one\n"); print(s.recv(100).decode().strip(), flush=True)
time.sleep(2)
try:
    s.sendall(b"two\n"); data = s.recv(100)
    print("two:", data.decode().strip() or "eof", flush=True)
except OSError as error:
    print("error:", error.errno, flush=True)
' "$LAB_INET_IP4"
    lab__wait_for 5 grep -q "^one$" "$LAB_DIR/held.out"
    engine_stop
    engine_start
    lab__wait_for 8 grep -q "error: 104" "$LAB_DIR/held.out"  # ECONNRESET
    run --separate-stderr psi_tun stats --json
    [ "$(jq '.stats.dropped.noFlow' <<<"$output")" -ge 1 ]
}

@test "stats without an engine, and run without a TUN of the tunnel user's, say what is wrong" {
    run psi_tun stats
    assert_failure 1
    assert_output --partial "no packet engine is running"
    lab_client ip tuntap add dev OtherTUN mode tun
    printf '{\n  "RunDirectory": "%s",\n  "TunName": "OtherTUN"\n}\n' "$LAB_DIR/run" >"$LAB_DIR/other.conf"
    chmod 600 "$LAB_DIR/other.conf"
    run psi_tun_with "$LAB_DIR/other.conf" run
    assert_failure 1
    assert_output "psi-tun: error: OtherTUN is not a TUN of psiphon-user's (psi-tun up makes it so)"
    lab_client ip link del OtherTUN
    run psi_tun_with "$LAB_DIR/other.conf" run
    assert_failure 1
    assert_output "psi-tun: error: OtherTUN does not exist: run psi-tun up first"
}

@test "psi-tun down under a running engine: it stops with a clear error, and nothing leaves" {
    proxy_start
    engine_start
    local pid=$ENGINE_PID status=0
    psi_tun down
    lab__wait_for 5 lab__gone "$pid"
    wait "$pid" || status=$?
    ENGINE_PID=
    [ "$status" -eq 1 ]
    grep -q "psi-tun: error: PsiphonTUN went away (psi-tun down, or deleted): the engine stops" "$LAB_DIR/engine.err"
    # The routes are gone with the TUN; the kill switch keeps the user inside.
    lab_capture_start
    [[ $(probe tcp "$LAB_INET_IP4" 8080) =~ ^(refused|prohibited|unreachable)$ ]]
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    psi_tun up >/dev/null
}

@test "a local program posing as a NAT leg (bound to the NAT source) neither reaches the listener nor stops the engine" {
    proxy_start --delay-connect 2
    engine_start
    local port6
    port6=$(lab_client ss -Hltn "src [fd42:42:42::1]" | awk '{print $4}' | head -1 | sed 's/.*://')
    [ -n "$port6" ]
    # A flow waits for the proxy on the first NAT port (1024) while the impostor connects from it.
    as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/" >"$LAB_DIR/victim.html" &
    local victim=$!
    sleep 0.5
    run lab_as_user nobody /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
s.bind(("fd42:42:42::3", 1024))
s.settimeout(2)
try:
    s.connect(("fd42:42:42::1", int(sys.argv[1]))); print("connected")
except OSError as error:
    print("failed", error)
' "$port6"
    refute_output connected
    wait "$victim"
    grep -q "hello from inet" "$LAB_DIR/victim.html"
    lab__ours "$ENGINE_PID"
    [ "$(as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/")" = "hello from inet" ]
}

@test "UDP larger than the TUN's MTU leaves in fragments and is put back together, IPv4 and IPv6" {
    proxy_start
    engine_start
    local address
    for address in "$LAB_INET_IP4" "$LAB_INET_IP6"; do
        run as_user /usr/bin/python3 -c '
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(3)
message = bytes(range(256)) * 16  # 4096 bytes: three pieces at MTU 1500
s.sendto(message, (sys.argv[1], 7200))
print("echoed" if s.recv(65535) == message else "different")
' "$address"
        assert_output echoed
    done
    run --separate-stderr psi_tun stats --json
    [ "$(jq '.stats.fragments.reassembled' <<<"$output")" -ge 2 ]
}

# --- the whole path: psi-tun run into psi-connect, over OSSH to the lab's Psiphon test server ---

# The Psiphon test server in inet, and psi-connect in the client namespace started by root as
# psi will (it becomes the tunnel user, which alone may reach the network under the kill switch).
psiphon_path_start() {
    psiphond_start psiphond --dns-resolver "$LAB_INET_IP4:53"
    connect_start connect "$LAB_DIR/psiphond.entry" --socks 1090 --protocols OSSH
    connect_wait_tunnels connect 1
    engine_start --socks 127.0.0.1:1090
}

@test "the whole path through psi-connect: a normal user reaches the inet host by IPv4, IPv6 and name" {
    psiphon_path_start
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 10 "http://[$LAB_INET_IP6]:8080/"
    assert_success
    assert_output "hello from inet"
    run as_user curl -sS -m 10 "http://inet.psi.test:8080/"
    assert_success
    assert_output "hello from inet"
    # Each went through the Psiphon server's port forwards, with the address the application used.
    grep -q "^forward-open .*target=$LAB_INET_IP4:8080" "$LAB_DIR/psiphond.err"
    grep -q "^forward-open .*target=\\[$LAB_INET_IP6\\]:8080" "$LAB_DIR/psiphond.err"
    # The name went as UDP through udpgw with the DNS flag, to the server's resolver.
    grep -q "^udpgw-flow .*dns=yes" "$LAB_DIR/psiphond.err"
    grep -q "^query udp inet.psi.test" "$LAB_DIR/dns.out"
}

@test "the whole path through psi-connect: 1,000 connections at once all complete" {
    psiphon_path_start
    run as_user /usr/bin/python3 "$TOOLS/many_connections.py" connect "$LAB_INET_IP4" 7100 --count 1000 --timeout 60
    assert_success
    assert_output "ok=1000 failed=0"
}

@test "the whole path: psi-connect killed, new connections fail at once and nothing leaves the machine" {
    psiphon_path_start
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_success
    lab__stop "$CONNECT_PID" TERM
    CONNECT_PID=
    lab_capture_start
    run as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"
    assert_failure 7
    [ "$(elapsed_ms as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/")" -lt 1000 ]
    [ "$(probe udp "$LAB_INET_IP4" 7200 --timeout 1)" != reply ]
    lab_client getent hosts inet.psi.test && false
    lab_capture_stop
    assert_equal "$(lab_capture_count "$(lab_leak_filter)")" 0
    # Back when psi-connect is back.
    connect_start connect "$LAB_DIR/psiphond.entry" --socks 1090 --protocols OSSH
    connect_wait_tunnels connect 1
    run as_user curl -sS -m 10 "http://$LAB_INET_IP4:8080/"
    assert_output "hello from inet"
}
