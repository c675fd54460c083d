#!/bin/bash
# Self-test of psiphond.py, the Psiphon test server, with ossh_client.py as the client.
# Runs as root: everything happens in two network namespaces of its own (psiX<pid>, the
# server side, and psiY<pid>, a client joined to it by a veth pair; both deleted on exit),
# with fixed ports there. Prints one PASS/FAIL line per check; exits 1 if any failed.
#
#   tests/tools/psiphond_selftest.sh
#
# Servers started (all in psiX<pid>):
#   main    127.0.0.1, homepage, one discovered entry, DNS resolver 127.0.0.1:5353, and the
#           checks of the protocol (auth, gating, handshake, API, forwards, udpgw); no packet
#           tunnel, so it refuses tun@psiphon.ca
#   v6      ::1, with main's host key loaded from the PEM file main wrote
#   refuse, kex, stall, garbage   one fault switch each
#   packet  10.98.0.1 (the veth), --packet-tunnel (TUN psitun0), DNS resolver 10.98.0.1:53
#           (dns_server.py), with packet_echo.py on 10.98.0.1 / fd98::1 (UDP 7002, TCP 7001);
#           the packet tunnel checks run in the client namespace, 10.98.0.2 / fd98::2
#   busy    --packet-tunnel with packet's device name: must fail, as the device is taken

set -u
export PYTHONDONTWRITEBYTECODE=1  # the tests import psiphond and ossh_client: no __pycache__

TOOLS=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
PSI_SERVERS="$TOOLS/../../build/psi-servers"
NS=psiX$$
CLIENT_NS=psiY$$
WORK=$(mktemp -d)
SERVER_PIDS=()
FAILED=0

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    ip netns delete "$CLIENT_NS" 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
    rm -rf "$WORK"
}

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=1; }

# start_server NAME ARGS...: psiphond.py in the namespace, entry in $WORK/NAME.entry,
# log in $WORK/NAME.log; its PID in LAST_PID (ip netns exec execs, so it is python's).
start_server() {
    local name=$1
    shift
    ip netns exec "$NS" "$PY" "$TOOLS/psiphond.py" --entry-file "$WORK/$name.entry" \
        --log "$WORK/$name.log" "$@" &
    LAST_PID=$!
    SERVER_PIDS+=("$LAST_PID")
}

wait_for_entry() {
    local name=$1
    for _ in $(seq 150); do
        [ -s "$WORK/$name.entry" ] && return 0
        sleep 0.2
    done
    return 1
}

if [ "$(id -u)" != 0 ]; then
    echo "psiphond_selftest.sh: needs root (ip netns)" >&2
    exit 2
fi
trap cleanup EXIT
ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
# The packet tunnel's client side: a second namespace, joined by a veth pair (names inside the
# namespaces only, so nothing appears on the host).
ip netns add "$CLIENT_NS" || exit 1
ip -n "$CLIENT_NS" link set lo up
ip -n "$NS" link add vs type veth peer name vc netns "$CLIENT_NS" &&
    ip -n "$NS" addr add 10.98.0.1/24 dev vs && ip -n "$NS" addr add fd98::1/64 dev vs nodad &&
    ip -n "$CLIENT_NS" addr add 10.98.0.2/24 dev vc &&
    ip -n "$CLIENT_NS" addr add fd98::2/64 dev vc nodad &&
    ip -n "$NS" link set vs up && ip -n "$CLIENT_NS" link set vc up || exit 1
ip netns exec "$NS" "$PY" "$TOOLS/packet_echo.py" --udp 10.98.0.1:7002 --udp "[fd98::1]:7002" \
    --tcp 10.98.0.1:7001 > "$WORK/echo.out" 2>&1 &
SERVER_PIDS+=("$!")
ip netns exec "$NS" "$PY" "$TOOLS/dns_server.py" --bind 10.98.0.1 --port 53 \
    --record selftest.psi.test=10.98.0.1 > "$WORK/dns.out" 2>&1 &
SERVER_PIDS+=("$!")

DISCOVERED=$("$PY" "$TOOLS/make_entries.py" --count 1 --seed selftest)
start_server main --listen 127.0.0.1 --ssh-port 2022 --ossh-port 2443 --region CA \
    --homepage https://example.org/welcome --discovered-entry "$DISCOVERED" \
    --dns-resolver 127.0.0.1:5353 --write-host-key "$WORK/host_key.pem"
MAIN_PID=$LAST_PID
wait_for_entry main || { fail "main server ready"; cat "$WORK/main.log"; exit 1; }
start_server v6 --listen ::1 --host-key "$WORK/host_key.pem"
start_server refuse --refuse-handshake
start_server kex --close-mid-kex
start_server stall --stall-after-handshake
start_server garbage --garbage-ossh
start_server packet --listen 10.98.0.1 --ssh-port 3022 --ossh-port 3443 --packet-tunnel \
    --dns-resolver 10.98.0.1:53
PACKET_PID=$LAST_PID
for name in v6 refuse kex stall garbage packet; do
    wait_for_entry "$name" || fail "$name server ready"
done
for _ in $(seq 50); do
    grep -q listening "$WORK/echo.out" && grep -q listening "$WORK/dns.out" && break
    sleep 0.1
done
pass "servers ready (entry files written after binding)"

# The packet tunnel's device, as --packet-tunnel made it.
DEVICE=$(ip -n "$NS" addr show dev psitun0 2>&1)
if grep -q "mtu 1500 " <<<"$DEVICE" && grep -q "[<,]UP[,>]" <<<"$DEVICE" &&
    grep -q "inet 10\.0\.0\.1/16 " <<<"$DEVICE" &&
    grep -q "inet6 fd19:ca83:e6d5:1c44::1/64 " <<<"$DEVICE" &&
    ip -n "$NS" -d link show dev psitun0 | grep -q "tun type tun pi off" &&
    grep -q "^packet-tunnel-device device=psitun0 mtu=1500 ipv4=10.0.0.1/16 \
ipv6=fd19:ca83:e6d5:1c44::1/64 dns=10.98.0.1:53$" "$WORK/packet.log"; then
    pass "--packet-tunnel: TUN psitun0 (no PI), MTU 1500, up, 10.0.0.1/16 and fd19:ca83:e6d5:1c44::1/64"
else
    fail "--packet-tunnel device: $DEVICE"
fi

# A second server cannot take the same device: it says so and exits 1, before it is "ready".
timeout 20 ip netns exec "$NS" "$PY" "$TOOLS/psiphond.py" --entry-file "$WORK/busy.entry" \
    --log "$WORK/busy.log" --listen 10.98.0.1 --packet-tunnel --dns-resolver 10.98.0.1:53 \
    2>"$WORK/busy.err"
status=$?
if [ "$status" = 1 ] && [ ! -e "$WORK/busy.entry" ] &&
    grep -q "^psiphond.py: --packet-tunnel: device psitun0: .*busy" "$WORK/busy.err" &&
    grep -q "^packet-tunnel-fail reason=--packet-tunnel: device psitun0: " "$WORK/busy.log"; then
    pass "--packet-tunnel with a device already in use: exit status 1, packet-tunnel-fail"
else
    fail "--packet-tunnel with a device already in use: status $status, $(cat "$WORK/busy.log")"
fi

if [ -x "$PSI_SERVERS" ]; then
    echo '{}' > "$WORK/psi.conf"
    if "$PSI_SERVERS" --config "$WORK/psi.conf" --store "$WORK/store" import "$WORK/main.entry" \
        > "$WORK/import.out" 2>&1 && grep -q '1 added' "$WORK/import.out"; then
        pass "psi-servers imports the entry line"
    else
        fail "psi-servers imports the entry line: $(cat "$WORK/import.out")"
    fi
else
    echo "SKIP psi-servers import (no $PSI_SERVERS; run make first)"
fi

ip netns exec "$NS" "$PY" - "$TOOLS" "$WORK" "$DISCOVERED" <<'EOF' || FAILED=1
import ipaddress, json, logging, os, re, socket, socketserver, struct, sys, threading, time
import paramiko

logging.getLogger("paramiko").addHandler(logging.NullHandler())  # failures are expected here

tools, work, discovered = sys.argv[1:4]
sys.path.insert(0, tools)
import ossh_client as client
import psiphond

failures = []

def check(name):
    def run(function):
        try:
            function()
            print("PASS " + name)
        except Exception as error:
            failures.append(name)
            print("FAIL %s: %s: %s" % (name, type(error).__name__, error))
        sys.stdout.flush()
    return run

def entry(name):
    return client.decode_entry(open(os.path.join(work, name + ".entry")).read())

def log_text(name):
    return open(os.path.join(work, name + ".log")).read()

def expect(condition, message):
    if not condition:
        raise AssertionError(message)

def request(tunnel, kind, params):
    return client.global_request(tunnel.transport, kind, json.dumps(params).encode())

def handshake(tunnel, server, protocol, **overrides):
    params = client.handshake_params(server, protocol, tunnel.session_id, **overrides)
    return request(tunnel, "psiphon-handshake", params)

def wait_closed(tunnel, seconds=5):
    deadline = time.time() + seconds
    while tunnel.transport.is_active() and time.time() < deadline:
        time.sleep(0.05)
    return not tunnel.transport.is_active()

def open_forward(tunnel, host, port):
    return tunnel.transport.open_channel("direct-tcpip", (host, port), ("0.0.0.0", 0), timeout=10)

def open_failure_code(tunnel, host, port):
    try:
        open_forward(tunnel, host, port).close()
    except paramiko.ChannelException as error:
        return error.code
    return 0

# Local services in the namespace: TCP echo on 7001, UDP echo on 7002 (IPv4 and IPv6), and a
# fake resolver on 5353 that answers "dns:" + the query, to show where DNS-flagged packets went.
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)

class ThreadingTcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 2048

def udp_responder(family, address, prefix):
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(address)
    def loop():
        while True:
            data, peer = sock.recvfrom(65536)
            sock.sendto(prefix + data, peer)
    threading.Thread(target=loop, daemon=True).start()

tcp_echo = ThreadingTcp(("127.0.0.1", 7001), Echo)
threading.Thread(target=tcp_echo.serve_forever, daemon=True).start()
udp_responder(socket.AF_INET, ("127.0.0.1", 7002), b"")
udp_responder(socket.AF_INET6, ("::1", 7002), b"")
udp_responder(socket.AF_INET, ("127.0.0.1", 5353), b"dns:")

main = entry("main")
OSSH_TEST_KEYWORD = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

@check("OSSH key derivation and RC4 match the docs/protocol.md 3.4 test vector")
def _():
    seed = bytes(range(16))
    c2s = psiphond.derive_ossh_key(seed, OSSH_TEST_KEYWORD, psiphond.OSSH_CLIENT_TO_SERVER)
    s2c = psiphond.derive_ossh_key(seed, OSSH_TEST_KEYWORD, psiphond.OSSH_SERVER_TO_CLIENT)
    expect(c2s.hex() == "dcef84d7a19fbd39c63b3671cec720cd", c2s.hex())
    expect(s2c.hex() == "fd7c3f757fb23bd3dd5c096e0935bf35", s2c.hex())
    cipher = psiphond.rc4(c2s)
    preamble = cipher.update(struct.pack(">II", psiphond.OSSH_MAGIC, 32) + bytes(range(32)))
    expect(preamble.hex() == "5227f303794d0f19b24919590fb797f87c3798ab4bc67ccade7b063e908d3e93"
           "3385d49ffced385e", preamble.hex())
    line = cipher.update(b"SSH-2.0-OpenSSH_8.0\r\n")
    expect(line.hex() == "56d1cffd4a7f89d73c632f58d11245f5554c0309cf", line.hex())
    expect(psiphond.rc4(s2c).update(bytes(16)).hex() == "24617620698a132d15bc15fa2673cf08", "s2c")

@check("entry line: hex of '0 0 0 0 ' + JSON with the listening ports and capabilities")
def _():
    text = bytes.fromhex(open(os.path.join(work, "main.entry")).read().strip()).decode()
    expect(text.startswith("0 0 0 0 {"), text[:20])
    expect(main["ipAddress"] == "127.0.0.1" and main["sshPort"] == 2022, main)
    expect(main["sshObfuscatedPort"] == 2443 and main["region"] == "CA", main)
    expect(main["capabilities"] == ["OSSH", "SSH", "handshake", "ssh-api-requests"], main)
    expect(main["configurationVersion"] == 1, main)

@check("plain SSH: host key matches sshHostKey, password auth succeeds, banner OpenSSH_8.9")
def _():
    tunnel = client.connect(main, "SSH")
    expect(tunnel.transport.is_authenticated(), "not authenticated")
    expect(tunnel.transport.remote_version == "SSH-2.0-OpenSSH_8.9", tunnel.transport.remote_version)
    tunnel.close()

@check("OSSH: auth succeeds after 1-3 printable padding lines before the version line")
def _():
    tunnel = client.connect(main, "OSSH")
    expect(tunnel.transport.is_authenticated(), "not authenticated")
    lines = tunnel.ssh_socket.inbound.scanner.lines_before_version
    expect(1 <= len(lines) <= 3, "%d padding lines" % len(lines))
    for line in lines:
        expect(len(line) <= 100 and line.endswith(b"\r\n") and not line.startswith(b"SSH-"), line)
        expect(all(32 <= byte < 127 for byte in line[:-2]), line)
    tunnel.close()

@check("auth fails with a wrong SshPassword and with a SessionId that is not 32 hex digits")
def _():
    for kwargs in ({"password": "wrong"}, {"session_id": "1234"}):
        try:
            client.connect(main, "SSH", **kwargs).close()
        except paramiko.AuthenticationException:
            continue
        raise AssertionError("accepted %r" % kwargs)

@check("OSSH with a wrong keyword: no SSH banner, the server logs a bad magic")
def _():
    wrong = dict(main, sshObfuscatedKey="f" * 64)
    try:
        client.connect(wrong, "OSSH", timeout=2).close()
    except (paramiko.SSHException, EOFError, OSError):
        pass
    else:
        raise AssertionError("connected with a wrong keyword")
    expect(re.search(r"^ossh-fail conn=\d+ reason=bad magic", log_text("main"), re.M), "no log line")

@check("before the handshake: direct-tcpip refused with reason 1, psiphon-connected refused")
def _():
    tunnel = client.connect(main, "OSSH")
    code = open_failure_code(tunnel, "127.0.0.1", 7001)
    expect(code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, "reason %d" % code)
    code = open_failure_code(tunnel, "127.0.0.1", 7300)
    expect(code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, "udpgw reason %d" % code)
    params = client.handshake_params(main, "OSSH", tunnel.session_id, last_connected="None")
    expect(request(tunnel, "psiphon-connected", params) is None, "connected answered")
    expect(tunnel.transport.is_active(), "disconnected")
    tunnel.close()

@check("a bad sponsor_id is refused, the connection closed, the log names sponsor_id")
def _():
    tunnel = client.connect(main, "OSSH")
    expect(handshake(tunnel, main, "OSSH", sponsor_id="XYZ") is None, "handshake accepted")
    expect(wait_closed(tunnel), "still connected")
    expect(re.search(r"^handshake-fail conn=\d+ param=sponsor_id reason=not 16 hex digits$",
                     log_text("main"), re.M), "no log line")

@check("handshake refused without server_secret, with a wrong client_session_id, "
       "with relay_protocol SSH on the OSSH port")
def _():
    cases = [({"server_secret": None}, "server_secret"),
             ({"client_session_id": "0" * 32}, "client_session_id"),
             ({"relay_protocol": "SSH"}, "relay_protocol")]
    for overrides, param in cases:
        tunnel = client.connect(main, "OSSH")
        expect(handshake(tunnel, main, "OSSH", **overrides) is None, "accepted " + param)
        expect(wait_closed(tunnel), "still connected after " + param)
        expect(re.search(r"^handshake-fail conn=\d+ param=%s " % param, log_text("main"), re.M),
               "no log line for " + param)

tunnel = client.connect(main, "OSSH")
HANDSHAKE_KEYS = ["ssh_session_id", "homepages", "upgrade_client_version", "page_view_regexes",
                  "https_request_regexes", "encoded_server_list", "client_region",
                  "client_address", "server_timestamp", "active_authorization_ids"]

@check("psiphon-handshake: REQUEST_SUCCESS carries the raw JSON reply, keys in order")
def _():
    reply = handshake(tunnel, main, "OSSH")
    expect(reply is not None, "refused")
    expect(reply[:1] == b"{", "not raw JSON: %r" % reply[:8])
    fields = json.loads(reply)
    expect(list(fields) == HANDSHAKE_KEYS, list(fields))
    expect(fields["ssh_session_id"] == tunnel.session_id, fields["ssh_session_id"])
    expect(fields["homepages"] == ["https://example.org/welcome"], fields["homepages"])
    expect(fields["encoded_server_list"] == [discovered], fields["encoded_server_list"])
    expect(fields["client_region"] == "CA", fields["client_region"])
    expect(re.fullmatch(r"127\.0\.0\.1:\d+", fields["client_address"]), fields["client_address"])
    expect(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields["server_timestamp"]),
           fields["server_timestamp"])

@check("keepalive@openssh.com gets REQUEST_SUCCESS with at most 256 bytes")
def _():
    reply = client.global_request(tunnel.transport, "keepalive@openssh.com", b"")
    expect(reply is not None and len(reply) <= 256, repr(reply))

@check("psiphon-connected gives an hour-truncated timestamp, psiphon-status gives {}")
def _():
    params = client.handshake_params(main, "OSSH", tunnel.session_id, last_connected="None")
    reply = json.loads(request(tunnel, "psiphon-connected", params))
    expect(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z", reply["connected_timestamp"]), reply)
    params["last_connected"] = "yesterday"
    expect(request(tunnel, "psiphon-connected", params) is None, "bad last_connected accepted")
    expect(request(tunnel, "psiphon-status", {"statusData": "{}"}) == b"{}", "status")

@check("after the handshake: direct-tcpip to the TCP echo server relays both ways")
def _():
    for host in ("127.0.0.1", "localhost"):
        channel = open_forward(tunnel, host, 7001)
        channel.sendall(b"hello through psiphond")
        expect(channel.recv(100) == b"hello through psiphond", "no echo via " + host)
        channel.close()
    expect(re.search(r"^forward-open conn=\d+ target=127\.0\.0\.1:7001$", log_text("main"), re.M),
           "no forward-open line")

@check("direct-tcpip to a closed port fails with reason 2 (connect failed)")
def _():
    code = open_failure_code(tunnel, "127.0.0.1", 9)
    expect(code == paramiko.OPEN_FAILED_CONNECT_FAILED, "reason %d" % code)

def udpgw_frame(flags, conid, host, port, payload):
    address = ipaddress.ip_address(host).packed + struct.pack(">H", port)
    body = struct.pack("<BH", flags, conid) + address + payload
    return struct.pack("<H", len(body)) + body

def read_exact(channel, size):
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        expect(chunk, "udpgw channel closed")
        data += chunk
    return data

def read_udpgw_reply(channel, address_size):
    (size,) = struct.unpack("<H", read_exact(channel, 2))
    body = read_exact(channel, size)
    flags, conid = struct.unpack("<BH", body[:3])
    return flags, conid, body[3:3 + address_size], body[3 + address_size:]

@check("udpgw: IPv4 and IPv6 echo and DNS to the resolver; replies have flags 0")
def _():
    channel = open_forward(tunnel, "127.0.0.1", 7300)
    channel.settimeout(5)
    cases = [(0x00, 1, "127.0.0.1", b"ping v4", b"ping v4"),
             (0x08, 2, "::1", b"ping v6", b"ping v6"),
             (0x04, 3, "8.8.8.8", b"query", b"dns:query")]
    for flags, conid, host, payload, answer in cases:
        channel.sendall(udpgw_frame(flags, conid, host, 53 if flags & 0x04 else 7002, payload))
        address = ipaddress.ip_address(host).packed
        reply = read_udpgw_reply(channel, len(address) + 2)
        port = 53 if flags & 0x04 else 7002
        expect(reply == (0, conid, address + struct.pack(">H", port), answer), repr(reply))
    channel.close()

@check("udpgw: an oversized frame closes the channel; a new udpgw channel works")
def _():
    channel = open_forward(tunnel, "127.0.0.1", 7300)
    channel.settimeout(5)
    channel.sendall(struct.pack("<H", 32768 + 22) + b"\x00" * 40)
    expect(channel.recv(10) == b"", "channel still open")
    channel = open_forward(tunnel, "127.0.0.1", 7300)
    channel.settimeout(5)
    channel.sendall(udpgw_frame(0, 9, "127.0.0.1", 7002, b"again"))
    expect(read_udpgw_reply(channel, 6)[3] == b"again", "no echo")
    channel.close()
    time.sleep(0.3)
    expect(re.search(r"^udpgw-close conn=\d+ frames_up=0 frames_down=0 reason=frame size 32790",
                     log_text("main"), re.M), "no udpgw-close line for the oversized frame")

@check("1,000 concurrent forwards on one connection all echo")
def _():
    channels = [open_forward(tunnel, "127.0.0.1", 7001) for _ in range(1000)]
    for number, channel in enumerate(channels):
        channel.sendall(b"forward %d;" % number)
    for number, channel in enumerate(channels):
        channel.settimeout(10)
        expected = b"forward %d;" % number
        expect(read_exact(channel, len(expected)) == expected, "forward %d" % number)
    for channel in channels:
        channel.close()

@check("without --packet-tunnel: tun@psiphon.ca is refused with reason 1 after the handshake")
def _():
    try:
        client.open_packet_tunnel(tunnel).close()
    except paramiko.ChannelException as error:
        code = error.code
    else:
        code = 0
    expect(code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, "reason %d" % code)
    expect(tunnel.transport.is_active(), "disconnected")
    expect(re.search(r"^channel-refused conn=\d+ type=tun@psiphon\.ca reason=no --packet-tunnel$",
                     log_text("main"), re.M), "no channel-refused line")

@check("a second handshake is refused and disconnects")
def _():
    expect(handshake(tunnel, main, "OSSH") is None, "second handshake accepted")
    expect(wait_closed(tunnel), "still connected")
    expect(re.search(r"^handshake-fail conn=\d+ param=- reason=a second handshake$",
                     log_text("main"), re.M), "no log line")

@check("IPv6 server on ::1 with the loaded host key: OSSH auth and handshake")
def _():
    v6 = entry("v6")
    expect(v6["ipAddress"] == "::1" and v6["sshHostKey"] == main["sshHostKey"], v6)
    tunnel = client.connect(v6, "OSSH")
    reply = json.loads(handshake(tunnel, v6, "OSSH"))
    expect(re.fullmatch(r"\[::1\]:\d+", reply["client_address"]), reply["client_address"])
    tunnel.close()

@check("--refuse-handshake: a good handshake gets REQUEST_FAILURE and a disconnect")
def _():
    refuse = entry("refuse")
    tunnel = client.connect(refuse, "SSH")
    expect(handshake(tunnel, refuse, "SSH") is None, "accepted")
    expect(wait_closed(tunnel), "still connected")

@check("--close-mid-kex: SSH and OSSH fail during key exchange")
def _():
    kex = entry("kex")
    for protocol in ("SSH", "OSSH"):
        try:
            client.connect(kex, protocol, timeout=5).close()
        except (paramiko.SSHException, EOFError, OSError):
            continue
        raise AssertionError(protocol + " connected")
    expect(len(re.findall(r"^kex-closed conn=\d+$", log_text("kex"), re.M)) == 2, "log lines")

@check("--stall-after-handshake: the keepalive gets no answer, the connection stays open")
def _():
    stall = entry("stall")
    tunnel = client.connect(stall, "OSSH")
    expect(handshake(tunnel, stall, "OSSH") is not None, "handshake refused")
    try:
        client.global_request(tunnel.transport, "keepalive@openssh.com", b"", timeout=2)
    except TimeoutError:
        pass
    else:
        raise AssertionError("keepalive answered")
    expect(tunnel.transport.is_active(), "connection closed")
    text = log_text("stall")
    expect(re.search(r"^stalled conn=1$", text, re.M) and "close conn=1" not in text, text)
    tunnel.close()

@check("--garbage-ossh: an OSSH client gets random bytes and fails; plain SSH still works")
def _():
    garbage = entry("garbage")
    try:
        client.connect(garbage, "OSSH", timeout=3).close()
    except (paramiko.SSHException, EOFError, OSError):
        pass
    else:
        raise AssertionError("connected")
    client.connect(garbage, "SSH").close()

@check("log lines: connect, ossh-ok, auth-ok, handshake-ok, keepalive, request-ok, udpgw")
def _():
    text = log_text("main")
    patterns = [r"^listening ssh=127\.0\.0\.1:2022 ossh=127\.0\.0\.1:2443$",
                r"^connect conn=\d+ protocol=OSSH peer=127\.0\.0\.1:\d+$",
                r"^ossh-ok conn=\d+ padding=\d+$",
                r"^auth-ok conn=\d+ user=\S+ session=[0-9a-f]{32}$",
                r"^auth-fail conn=\d+ user=\S+ reason=wrong SshPassword$",
                r"^handshake-ok conn=\d+ relay_protocol=OSSH session=[0-9a-f]{32}$",
                r"^keepalive conn=\d+ bytes=\d+$",
                r"^request-ok conn=\d+ kind=psiphon-connected last_connected=\S+$",
                r"^request-fail conn=\d+ kind=psiphon-connected param=last_connected reason=",
                r"^forward-refused conn=\d+ target=127\.0\.0\.1:7001 reason=before the handshake$",
                r"^forward-fail conn=\d+ target=127\.0\.0\.1:9 reason=",
                r"^forward-close conn=\d+ target=127\.0\.0\.1:7001 up=22 down=22$",
                r"^udpgw-open conn=\d+$",
                r"^udpgw-flow conn=\d+ conid=2 target=\[::1\]:7002 dns=no$",
                r"^udpgw-flow conn=\d+ conid=3 target=127\.0\.0\.1:5353 dns=yes$",
                r"^udpgw-close conn=\d+ frames_up=3 frames_down=3 reason=",
                r"^close conn=\d+$"]
    missing = [p for p in patterns if not re.search(p, text, re.M)]
    expect(not missing, "missing: %s" % missing)

sys.exit(1 if failures else 0)
EOF

# The packet tunnel (docs/protocol.md section 6.3), from the client namespace: hand-built packets
# from 10.200.3.1 / fd42:42:42::1 (the client's own TUN addresses) over tun@psiphon.ca to the
# packet server, whose TUN hands them to the kernel of the server namespace.
ip netns exec "$CLIENT_NS" "$PY" - "$TOOLS" "$WORK" <<'EOF' || FAILED=1
import ipaddress, json, logging, os, re, struct, sys, time
import paramiko

logging.getLogger("paramiko").addHandler(logging.NullHandler())

tools, work = sys.argv[1:3]
sys.path.insert(0, tools)
import ossh_client as client

failures = []
opened = []  # a check's connections, closed when it ends (so a failure does not spread)

def check(name):
    def run(function):
        try:
            function()
            print("PASS " + name)
        except Exception as error:
            failures.append(name)
            print("FAIL %s: %s: %s" % (name, type(error).__name__, error))
        sys.stdout.flush()
        while opened:
            opened.pop().close()
    return run

def expect(condition, message):
    if not condition:
        raise AssertionError(message)

def read(name):
    return open(os.path.join(work, name)).read()

def wait_for(function, seconds=5):
    deadline = time.time() + seconds
    while True:
        value = function()
        if value or time.time() > deadline:
            return value
        time.sleep(0.05)

def log_match(pattern, seconds=5, name="packet.log"):
    return wait_for(lambda: re.search(pattern, read(name), re.M), seconds)

packet = client.decode_entry(read("packet.entry"))
SERVER4, SERVER6 = "10.98.0.1", "fd98::1"
SOURCE4, SOURCE6 = client.CLIENT_TUN_IPV4, client.CLIENT_TUN_IPV6
DNS4, DNS6 = "10.0.0.2", "fd19:ca83:e6d5:1c44::2"
UDP_ECHO, TCP_ECHO = 7002, 7001
SYN, ACK, PSH, RST = client.TCP_SYN, client.TCP_ACK, client.TCP_PSH, client.TCP_RST

def connection_number(tunnel):
    port = tunnel.ssh_socket._sock.getsockname()[1]
    match = log_match(r"^connect conn=(\d+) protocol=OSSH peer=10\.98\.0\.2:%d$" % port)
    expect(match, "no connect line for local port %d" % port)
    return int(match.group(1))

def connect(with_handshake=True, keep=False):
    tunnel = client.connect(packet, "OSSH")
    if not keep:
        opened.append(tunnel)
    tunnel.conn = connection_number(tunnel)
    if with_handshake:
        params = client.handshake_params(packet, "OSSH", tunnel.session_id)
        reply = client.global_request(tunnel.transport, "psiphon-handshake",
                                      json.dumps(params).encode())
        expect(reply is not None, "handshake refused")
    return tunnel

def open_code(tunnel):
    try:
        client.open_packet_tunnel(tunnel).close()
    except paramiko.ChannelException as error:
        return error.code
    return 0

class PacketChannel:
    def __init__(self, tunnel):
        self.channel = client.open_packet_tunnel(tunnel)
        self.reader = client.PacketReader(self.channel)

    def send(self, *packets):
        self.channel.sendall(client.frame(*packets))

    def receive(self, timeout=5):
        raw = self.reader.read(timeout)
        expect(raw is not None, "no packet came back in %ss" % timeout)
        return client.parse_packet(raw)

def expect_reply(reply, source, destination, source_port=None, destination_port=None):
    expect((reply.source, reply.destination) == (source, destination),
           "addresses: %r" % reply.summary())
    if source_port is not None:
        expect((reply.source_port, reply.destination_port) == (source_port, destination_port),
               "ports: %r" % reply.summary())
    expect(reply.checksums_ok, "checksums do not verify: %r" % reply.summary())

def opened_addresses(conn):
    match = log_match(r"^packet-tunnel-open conn=%d ipv4=(\S+) ipv6=(\S+)$" % conn)
    expect(match, "no packet-tunnel-open line for conn %d" % conn)
    return match.group(1), match.group(2)

def closed_line(conn):
    match = log_match(r"^packet-tunnel-close conn=%d up=(\d+) down=(\d+) dropped=(\d+) reason=(.*)$"
                      % conn)
    expect(match, "no packet-tunnel-close line for conn %d" % conn)
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(4)

def dns_query(name, ident):
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)

def expect_dns_answer(message, ident, address):
    flags, _, answers = struct.unpack(">HHH", message[2:8])
    expect(message[:2] == struct.pack(">H", ident) and flags & 0x8000 and answers == 1,
           "not the answer: %r" % message)
    expect(message[-4:] == ipaddress.ip_address(address).packed, "A record: %r" % message[-4:])

def tcp_exchange(pt, source, destination, source_port, destination_port, data, is_complete):
    """A TCP connection by hand: SYN, the handshake's ACK with data, the reply's bytes in
    order until is_complete(bytes), then RST. Every packet back must verify."""
    sequence = 1000
    pt.send(client.tcp_packet(source, destination, source_port, destination_port, SYN, seq=sequence))
    answer = pt.receive()
    expect_reply(answer, destination, source, destination_port, source_port)
    expect(answer.tcp_flags & (SYN | ACK) == SYN | ACK, "no SYN-ACK: %r" % answer.summary())
    expected = (answer.tcp_seq + 1) & 0xFFFFFFFF
    pt.send(client.tcp_packet(source, destination, source_port, destination_port, ACK | PSH,
                              seq=sequence + 1, ack=expected, payload=data))
    received = b""
    while not is_complete(received):
        segment = pt.receive()
        expect_reply(segment, destination, source, destination_port, source_port)
        if segment.payload and segment.tcp_seq == expected:
            received += segment.payload
            expected = (expected + len(segment.payload)) & 0xFFFFFFFF
    pt.send(client.tcp_packet(source, destination, source_port, destination_port, RST,
                              seq=sequence + 1 + len(data)))
    return received

@check("packet tunnel: tun@psiphon.ca before the handshake is refused with reason 1")
def _():
    tunnel = connect(with_handshake=False)
    code = open_code(tunnel)
    expect(code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, "reason %d" % code)
    expect(tunnel.transport.is_active(), "disconnected")
    expect(log_match(r"^channel-refused conn=%d type=tun@psiphon\.ca reason=before the handshake$"
                     % tunnel.conn), "no channel-refused line")
    tunnel.close()

tunnel = connect(keep=True)  # for the checks up to "closing the channel"
pt = None

@check("packet tunnel: opens after the handshake; the client gets 10.0.0.11 and fd19:ca83:e6d5:1c44::b")
def _():
    global pt
    pt = PacketChannel(tunnel)
    expect(opened_addresses(tunnel.conn) == ("10.0.0.11", "fd19:ca83:e6d5:1c44::b"),
           opened_addresses(tunnel.conn))

@check("packet tunnel: UDP/IPv4 reaches the echo server from 10.0.0.11; the reply comes back "
       "to 10.200.3.1 with valid checksums")
def _():
    payload = b"ping v4 through the packet tunnel"
    pt.send(client.udp_packet(SOURCE4, SERVER4, 40001, UDP_ECHO, payload))
    reply = pt.receive()
    expect(reply.protocol == 17 and reply.payload == payload, reply.summary())
    expect_reply(reply, SERVER4, SOURCE4, UDP_ECHO, 40001)
    expect(log_match(r"^udp 10\.0\.0\.11 40001 -> 10\.98\.0\.1 7002 bytes=%d$" % len(payload),
                     name="echo.out"), "the echo server did not see 10.0.0.11")

@check("packet tunnel: UDP/IPv6 reaches the echo server from fd19:ca83:e6d5:1c44::b; the reply "
       "comes back to fd42:42:42::1 with a valid checksum")
def _():
    payload = b"ping v6 through the packet tunnel"
    pt.send(client.udp_packet(SOURCE6, SERVER6, 40001, UDP_ECHO, payload))
    reply = pt.receive()
    expect(reply.version == 6 and reply.payload == payload, reply.summary())
    expect_reply(reply, SERVER6, SOURCE6, UDP_ECHO, 40001)
    expect(log_match(r"^udp fd19:ca83:e6d5:1c44::b 40001 -> fd98::1 7002 bytes=%d$" % len(payload),
                     name="echo.out"), "the echo server did not see fd19:ca83:e6d5:1c44::b")

@check("packet tunnel: DNS over UDP to 10.0.0.2:53 reaches --dns-resolver; the answer comes "
       "from 10.0.0.2:53 with valid checksums")
def _():
    pt.send(client.udp_packet(SOURCE4, DNS4, 40002, 53, dns_query("selftest.psi.test", 0x5151)))
    reply = pt.receive()
    expect_reply(reply, DNS4, SOURCE4, 53, 40002)
    expect_dns_answer(reply.payload, 0x5151, SERVER4)
    expect(log_match(r"^query udp selftest\.psi\.test A$", name="dns.out"), "no query at the resolver")

@check("packet tunnel: TCP by hand: to the echo server, and DNS over TCP to 10.0.0.2:53, "
       "replies rewritten back with valid checksums")
def _():
    data = b"tcp through the packet tunnel"
    echoed = tcp_exchange(pt, SOURCE4, SERVER4, 40003, TCP_ECHO, data,
                          lambda received: len(received) >= len(data))
    expect(echoed == data, "echo: %r" % echoed)
    query = dns_query("selftest.psi.test", 0x5252)
    answer = tcp_exchange(pt, SOURCE4, DNS4, 40004, 53, struct.pack(">H", len(query)) + query,
                          lambda r: len(r) >= 2 and len(r) >= 2 + struct.unpack(">H", r[:2])[0])
    expect_dns_answer(answer[2:], 0x5252, SERVER4)
    expect(log_match(r"^query tcp selftest\.psi\.test A$", name="dns.out"), "no TCP query")

@check("packet tunnel: ICMP and ICMPv6 echo requests get their replies, with valid checksums")
def _():
    pt.send(client.icmp_echo(SOURCE4, SERVER4, 0x77, 1, b"icmp v4"))
    reply = pt.receive()
    expect(reply.icmp_type == client.ICMP_ECHO_REPLY and reply.payload == b"icmp v4", reply.summary())
    expect_reply(reply, SERVER4, SOURCE4)
    pt.send(client.icmp_echo(SOURCE6, SERVER6, 0x77, 2, b"icmp v6"))
    reply = pt.receive()
    expect(reply.icmp_type == client.ICMPV6_ECHO_REPLY and reply.payload == b"icmp v6", reply.summary())
    expect_reply(reply, SERVER6, SOURCE6)

@check("packet tunnel: framing: two packets in one write and one split across two writes")
def _():
    packets = [client.udp_packet(SOURCE4, SERVER4, 40010 + n, UDP_ECHO, b"frame %d" % n)
               for n in range(3)]
    data = client.frame(*packets)
    cut = len(client.frame(*packets[:2])) + 5  # in the middle of the third packet's header
    pt.channel.sendall(data[:cut])
    time.sleep(0.3)
    pt.channel.sendall(data[cut:])
    replies = [pt.receive() for _ in packets]
    for reply in replies:
        expect_reply(reply, SERVER4, SOURCE4)
    expect(sorted(reply.payload for reply in replies) == [b"frame 0", b"frame 1", b"frame 2"],
           [reply.payload for reply in replies])

@check("packet tunnel: closing the channel logs packet-tunnel-close with the counts (up=14 dropped=0)")
def _():
    pt.channel.close()
    up, down, dropped, reason = closed_line(tunnel.conn)
    # UDP 2, DNS 1, TCP 2 x (SYN, data, RST), ICMP 2, framing 3
    expect((up, dropped, reason) == (14, 0, "client closed the channel"), (up, down, dropped, reason))
    expect(down >= 11, "down=%d" % down)
    tunnel.close()

@check("packet tunnel: malformed and forbidden packets are dropped and counted, the rest relayed")
def _():
    tunnel = connect()
    pt = PacketChannel(tunnel)
    options = bytearray(client.udp_packet(SOURCE4, SERVER4, 40020, UDP_ECHO, b"x"))
    options[0] = 0x46
    bad = [bytes(options),                                                      # IPv4 options
           client.ip_packet(SOURCE4, SERVER4, 47, bytes(24)),                   # GRE
           client.udp_packet(SOURCE4, SERVER4, 40020, UDP_ECHO, b"cut")[:-2],   # truncated
           client.ip_packet(SOURCE6, SERVER6, 0, bytes([17, 0]) + bytes(6) + bytes(8)),  # hop-by-hop
           client.udp_packet(SOURCE4, SERVER4, 40020, UDP_ECHO, bytes(1600)),   # over the MTU
           client.udp_packet(SOURCE4, "10.0.0.12", 40020, UDP_ECHO, b"x"),      # another client
           client.udp_packet(SOURCE6, DNS6, 40020, 53, b"x"),                   # no IPv6 resolver
           client.udp_packet(SOURCE4, DNS4, 40020, 54, b"x")]                   # .2, not DNS
    pt.send(*bad, client.udp_packet(SOURCE4, SERVER4, 40021, UDP_ECHO, b"after the bad ones"))
    reply = pt.receive()
    expect(reply.payload == b"after the bad ones", reply.summary())
    expect(pt.reader.read(0.5) is None, "something else came back")
    pt.channel.close()
    up, down, dropped, _ = closed_line(tunnel.conn)
    expect((up, down, dropped) == (1, 1, len(bad)), (up, down, dropped))
    text = read("packet.log")
    for reason in (r"IPv4 header length 24 \(options\)", r"IPv4 protocol 47",
                   r"IPv4 total length \d+ with \d+ bytes", r"1628 bytes, over the MTU of 1500",
                   r"to 10\.0\.0\.12, inside the tunnel's subnet",
                   r"IPv6 DNS, but the resolver is not IPv6",
                   r"to the transparent DNS address, not DNS"):
        expect(re.search(r"^packet-tunnel-drop conn=%d dir=up reason=%s$" % (tunnel.conn, reason),
                         text, re.M), "no drop line: " + reason)
    tunnel.close()

@check("packet tunnel: a second tun@psiphon.ca channel replaces the first (closed), "
       "with the same addresses")
def _():
    tunnel = connect()
    first = PacketChannel(tunnel)
    first.send(client.udp_packet(SOURCE4, SERVER4, 40030, UDP_ECHO, b"first"))
    expect(first.receive().payload == b"first", "no echo on the first channel")
    second = PacketChannel(tunnel)
    expect(first.reader.read(3) is None and wait_for(lambda: first.channel.closed, 3),
           "the first channel is still open")
    second.send(client.udp_packet(SOURCE4, SERVER4, 40031, UDP_ECHO, b"second"))
    reply = second.receive()
    expect(reply.payload == b"second", reply.summary())
    expect_reply(reply, SERVER4, SOURCE4, UDP_ECHO, 40031)
    up, down, dropped, reason = closed_line(tunnel.conn)
    expect((up, down, dropped) == (1, 1, 0), (up, down, dropped))
    expect(reason == "replaced by a new tun@psiphon.ca channel", reason)
    opens = re.findall(r"^packet-tunnel-open conn=%d (.*)$" % tunnel.conn, read("packet.log"), re.M)
    expect(len(opens) == 2 and opens[0] == opens[1], opens)
    second.channel.close()
    tunnel.close()

@check("packet tunnel: two clients at once get 10.0.0.11 and 10.0.0.12 and only their own "
       "replies; a closed client's address is given out again")
def _():
    wait_for(lambda: read("packet.log").count("packet-tunnel-close ") ==
             read("packet.log").count("packet-tunnel-open "), 5)  # no client left
    first, second = connect(), connect()
    # The address is given when the server's side takes the channel, just after it confirmed
    # the open: one client at a time, so that the order is known.
    first_channel = PacketChannel(first)
    expect(opened_addresses(first.conn)[0] == "10.0.0.11", opened_addresses(first.conn))
    second_channel = PacketChannel(second)
    expect(opened_addresses(second.conn) == ("10.0.0.12", "fd19:ca83:e6d5:1c44::c"),
           opened_addresses(second.conn))
    for channel, text in ((first_channel, b"to the first"), (second_channel, b"to the second")):
        channel.send(client.udp_packet(SOURCE4, SERVER4, 40040, UDP_ECHO, text))
    for channel, text in ((first_channel, b"to the first"), (second_channel, b"to the second")):
        reply = channel.receive()
        expect(reply.payload == text, reply.summary())
        expect_reply(reply, SERVER4, SOURCE4, UDP_ECHO, 40040)
    echo = read("echo.out")
    expect("udp 10.0.0.11 40040 " in echo and "udp 10.0.0.12 40040 " in echo, "sources at the echo")
    first.close()
    closed_line(first.conn)
    third = connect()
    PacketChannel(third)
    expect(opened_addresses(third.conn)[0] == "10.0.0.11", opened_addresses(third.conn))
    second.close()
    third.close()

sys.exit(1 if failures else 0)
EOF

# ossh_client.py's command-line mode, as a person would use it.
ENTRY=$(cat "$WORK/packet.entry")
for target in 10.98.0.1:7002 "[fd98::1]:7002"; do
    if REPLY=$(ip netns exec "$CLIENT_NS" "$PY" "$TOOLS/ossh_client.py" --entry "$ENTRY" \
        --packet-udp "$target" --payload "from the command line" 2>&1) &&
        grep -q '"destination": "\(10\.200\.3\.1\|fd42:42:42::1\)".*"checksums_ok": true, '\
'"payload": "from the command line"' <<<"$REPLY"; then
        pass "ossh_client.py --packet-udp $target: the reply, to the client's own address"
    else
        fail "ossh_client.py --packet-udp $target: $REPLY"
    fi
done

kill -TERM "$MAIN_PID"
wait "$MAIN_PID"
status=$?
if [ "$status" = 0 ] && tail -n 1 "$WORK/main.log" | grep -qx stopped; then
    pass "SIGTERM: exit status 0, last log line 'stopped'"
else
    fail "SIGTERM: exit status $status, last log line '$(tail -n 1 "$WORK/main.log")'"
fi

kill -TERM "$PACKET_PID"
wait "$PACKET_PID"
status=$?
if [ "$status" = 0 ] && [ "$(tail -n 2 "$WORK/packet.log")" = "packet-tunnel-device-removed device=psitun0
stopped" ] && ! ip -n "$NS" link show psitun0 >/dev/null 2>&1; then
    pass "--packet-tunnel, SIGTERM: exit status 0, psitun0 removed, then 'stopped'"
else
    fail "--packet-tunnel, SIGTERM: status $status, $(tail -n 2 "$WORK/packet.log" | tr '\n' '|')"
fi

if [ "$FAILED" = 0 ]; then
    echo "psiphond self-test: all checks passed"
else
    echo "psiphond self-test: FAILED (logs were in $WORK, now removed)"
fi
exit "$FAILED"
