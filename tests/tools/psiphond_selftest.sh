#!/bin/bash
# Self-test of psiphond.py, the Psiphon test server, with ossh_client.py as the client.
# Runs as root: everything happens in a network namespace of its own (psiX<pid>, deleted on
# exit), with fixed ports there. Prints one PASS/FAIL line per check; exits 1 if any failed.
#
#   tests/tools/psiphond_selftest.sh
#
# Servers started (all in the namespace):
#   main    127.0.0.1, homepage, one discovered entry, DNS resolver 127.0.0.1:5353, and the
#           checks of the protocol (auth, gating, handshake, API, forwards, udpgw)
#   v6      ::1, with main's host key loaded from the PEM file main wrote
#   refuse, kex, stall, garbage   one fault switch each

set -u

TOOLS=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
PSI_SERVERS="$TOOLS/../../build/psi-servers"
NS=psiX$$
WORK=$(mktemp -d)
SERVER_PIDS=()
FAILED=0

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
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
for name in v6 refuse kex stall garbage; do
    wait_for_entry "$name" || fail "$name server ready"
done
pass "servers ready (entry files written after binding)"

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

@check("OSSH key derivation and RC4 match the PROTOCOL.md 3.4 test vector")
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
                r"^request-ok conn=\d+ kind=psiphon-connected$",
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

kill -TERM "$MAIN_PID"
wait "$MAIN_PID"
status=$?
if [ "$status" = 0 ] && tail -n 1 "$WORK/main.log" | grep -qx stopped; then
    pass "SIGTERM: exit status 0, last log line 'stopped'"
else
    fail "SIGTERM: exit status $status, last log line '$(tail -n 1 "$WORK/main.log")'"
fi

if [ "$FAILED" = 0 ]; then
    echo "psiphond self-test: all checks passed"
else
    echo "psiphond self-test: FAILED (logs were in $WORK, now removed)"
fi
exit "$FAILED"
