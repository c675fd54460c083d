#!/usr/bin/python3
"""A small Psiphon server for tests (docs/protocol.md sections 3, 4, 5, 6 and 11): plain SSH and
Obfuscated SSH, password auth with the JSON payload, the psiphon-handshake/-connected/-status
API over SSH global requests, direct-tcpip forwards, the udpgw service and, with
--packet-tunnel, the packet tunnel. A test fixture, not a product: one process, threads per
connection and per forward.

    psiphond.py [--listen ADDR] [--ssh-port N] [--ossh-port N]
                [--obfuscated-key KEYWORD] [--username U] [--password P]
                [--web-server-secret S] [--region CC] [--homepage URL ...] [--homepages-file FILE]
                [--discovered-entry LINE ...] [--udpgw HOST:PORT]
                [--dns-resolver ADDR:PORT] [--host-key FILE] [--write-host-key FILE]
                [--print-entry] [--entry-file FILE] [--log FILE] [--verbose]
                [--refuse-handshake] [--close-mid-kex] [--stall-after-handshake]
                [--garbage-ossh] [--rekey-bytes N] [--refuse-connected N]
                [--packet-tunnel [--packet-tunnel-device NAME]]

Ports 0 (the default) let the kernel choose; the entry line and the "listening" log line give
the ports in use. Secrets left out are random. The host key is a fresh RSA-2048 key unless
--host-key names a PEM file.

Readiness: --print-entry prints one server entry line (hex of "0 0 0 0 " + JSON, as
psi-servers reads it) on stdout once both listeners are bound; --entry-file writes the same line
to FILE by an atomic rename after they are bound, so the file appearing means ready.

Packet tunnel (docs/protocol.md section 6.3): with --packet-tunnel (root; in a lab namespace) the
server creates one TUN device at start (--packet-tunnel-device, default psitun0; MTU 1500;
10.0.0.1/16 and fd19:ca83:e6d5:1c44::1/64) and removes it on SIGTERM; without it, a
tun@psiphon.ca channel is refused (administratively prohibited), as by a psiphond without
RunPacketTunnel. The channel is accepted only after the handshake, one per connection: a second
one replaces the first (closed, its addresses carried over). Client N (the lowest free number
from 1) gets 10.0.0.(N+10) and fd19:ca83:e6d5:1c44::(N+10 in hex: ::b for N=1). Frames both
ways: u16 BE length + one IP packet, any number per channel write. Upstream packets that are
not IPv4 without options or IPv6 without extension headers, not TCP/UDP/ICMP(v6), truncated,
over 1500 bytes, to port 0, to another client (10.0.0.0/16 and the /64, except .1 and the DNS
address .2) or not unicast are dropped and counted. The source becomes the client's address;
TCP/UDP to 10.0.0.2 / fd19:ca83:e6d5:1c44::2 port 53 goes to --dns-resolver's address, port 53
(the resolver's family only). Downstream, the reverse rewrites. Checksums are adjusted
incrementally (RFC 1624) as psiphond does, so a bad checksum from the client stays bad.

Fault switches:
    --refuse-handshake       psiphon-handshake gets REQUEST_FAILURE, then the server disconnects
    --refuse-connected N     the first N psiphon-connected requests get REQUEST_FAILURE
    --close-mid-kex          the connection is closed once the client's KEXINIT is read
    --stall-after-handshake  after the handshake reply nothing more is answered (keepalives
                             included); the TCP connection stays open
    --garbage-ossh           an OSSH connection gets 16 KiB of random bytes instead of OSSH

Log: one line per event, flushed, to --log FILE or stderr:  EVENT [conn=N] [key=value ...]
[reason=free text]. Events:
    listening ssh=ADDR:PORT ossh=ADDR:PORT
    connect conn=N protocol=SSH|OSSH peer=ADDR:PORT
    ossh-ok conn=N padding=N            ossh-fail conn=N reason=...
    ossh-garbage conn=N bytes=N         kex-closed conn=N
    rekey conn=N                        (a key exchange after the first one)
    ssh-fail conn=N reason=...          (KEX or banner failed)
    auth-ok conn=N user=U session=HEX   auth-fail conn=N user=U reason=...
    handshake-ok conn=N relay_protocol=P session=HEX
    handshake-fail conn=N param=NAME reason=...   (param=- when no parameter is to blame)
    request-ok conn=N kind=K            request-fail conn=N kind=K [param=NAME] reason=...
    keepalive conn=N bytes=N            stalled conn=N
    forward-refused conn=N target=H:P reason=...
    forward-open conn=N target=H:P      forward-fail conn=N target=H:P reason=...
    forward-close conn=N target=H:P up=BYTES down=BYTES
    channel-refused conn=N type=T
    udpgw-open conn=N
    udpgw-flow conn=N conid=C target=H:P dns=yes|no
    udpgw-drop conn=N conid=C reason=...   (no socket for the flow; the packet is dropped)
    udpgw-close conn=N frames_up=N frames_down=N reason=...
    channel-refused conn=N type=tun@psiphon.ca reason=no --packet-tunnel|before the handshake
    packet-tunnel-device device=NAME mtu=1500 ipv4=10.0.0.1/16 ipv6=fd19:...::1/64 dns=ADDR:53
                                        [reason=a caveat about the resolver]
    packet-tunnel-fail reason=...       (the device could not be made: exit status 1)
    packet-tunnel-open conn=N ipv4=10.0.0.11 ipv6=fd19:ca83:e6d5:1c44::b
    packet-tunnel-drop conn=N dir=up|down reason=...   (the first drop of each kind per channel)
    packet-tunnel-close conn=N up=PACKETS down=PACKETS dropped=PACKETS reason=...
    packet-tunnel-device-removed device=NAME   (on SIGTERM, before "stopped")
    close conn=N
    stopped
"""

import argparse
import datetime
import faulthandler
import fcntl
import hashlib
import ipaddress
import itertools
import json
import logging
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import threading
import time

import paramiko
from paramiko.common import (
    MSG_GLOBAL_REQUEST,
    MSG_KEXINIT,
    MSG_NEWKEYS,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_FAILED_CONNECT_FAILED,
    OPEN_SUCCEEDED,
    cMSG_REQUEST_FAILURE,
    cMSG_REQUEST_SUCCESS,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

SERVER_VERSION = "SSH-2.0-OpenSSH_8.9"
SSH_MSG_NEWKEYS = 21
SSH_HANDSHAKE_TIMEOUT = 30
CONNECT_TIMEOUT = 10

OSSH_SEED_SIZE = 16
OSSH_KEY_SIZE = 16
OSSH_KEY_ITERATIONS = 6000
OSSH_MAGIC = 0x0BF5CA7E
OSSH_MAX_PADDING = 8192
OSSH_CLIENT_TO_SERVER = b"client_to_server"
OSSH_SERVER_TO_CLIENT = b"server_to_client"
OSSH_GARBAGE_SIZE = 16 * 1024
MAX_LINE_SIZE = 1024
MAX_PACKET_LENGTH = 256 * 1024

UDPGW_FLAG_KEEPALIVE = 0x01
UDPGW_FLAG_REBIND = 0x02
UDPGW_FLAG_DNS = 0x04
UDPGW_FLAG_IPV6 = 0x08
UDPGW_MAX_PAYLOAD = 32768
UDPGW_MAX_HEADER = 1 + 2 + 16 + 2  # flags, conid, IPv6 address, port

RELAY_BUFFER_SIZE = 32768
THREAD_STACK_SIZE = 512 * 1024
ETM_MACS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"]


class EventLog:
    """One line per event, flushed, safe to call from any thread."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def event(self, name, conn=None, reason=None, **fields):
        parts = [name]
        if conn is not None:
            parts.append("conn=%d" % conn)
        parts += ["%s=%s" % item for item in fields.items()]
        if reason is not None:
            parts.append("reason=%s" % reason)
        with self._lock:
            self._stream.write(" ".join(parts) + "\n")
            self._stream.flush()


def host_port(host, port):
    """"1.2.3.4:5", "[::1]:5", "example.org:5" (Go's net.JoinHostPort)."""
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def parse_host_port(text):
    """"1.2.3.4:53" or "[::1]:53" -> (host, port)."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", text)
    if not match:
        raise ValueError("%r is not ADDR:PORT ([ADDR]:PORT for IPv6)" % text)
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise ValueError("%r: port out of range" % text)
    return host, port


# --- Obfuscated SSH (docs/protocol.md section 3) ---------------------------------------------------

def derive_ossh_key(seed, keyword, iv):
    digest = hashlib.sha1(seed + keyword + iv).digest()
    for _ in range(OSSH_KEY_ITERATIONS):
        digest = hashlib.sha1(digest).digest()
    return digest[:OSSH_KEY_SIZE]


def rc4(key):
    """One RC4 keystream; encrypting and decrypting are the same update()."""
    return Cipher(algorithms.ARC4(key), mode=None).encryptor()


class ObfuscationError(Exception):
    pass


class SshStreamScanner:
    """Follows one direction of an SSH stream in the clear: lines up to and including the
    "SSH-" version line, then binary packets up to and including the first SSH_MSG_NEWKEYS,
    where the obfuscation stops. Before NEWKEYS there is no MAC: a packet is
    u32 packet_length, u8 padding_length, payload (payload[0] = message number), padding."""

    HEADER_SIZE = 6

    def __init__(self):
        self.is_in_lines = True
        self.lines_before_version = []
        self._line = bytearray()
        self._header = bytearray()
        self._body_left = 0
        self._is_newkeys = False
        self.is_past_newkeys = False

    def span(self):
        """How many of the next bytes are certainly before the NEWKEYS boundary; 0 past it."""
        if self.is_past_newkeys:
            return 0
        if self.is_in_lines:
            return 1  # a line's end decides what comes next
        if len(self._header) < self.HEADER_SIZE:
            return self.HEADER_SIZE - len(self._header)
        return self._body_left

    def consume(self, plain):
        """Takes the next plaintext bytes, at most span() of them."""
        if self.is_in_lines:
            self._consume_line_byte(plain)
        elif len(self._header) < self.HEADER_SIZE:
            self._header += plain
            if len(self._header) == self.HEADER_SIZE:
                self._start_packet()
        else:
            self._body_left -= len(plain)
            if self._body_left == 0:
                self._end_packet()

    def _consume_line_byte(self, plain):
        self._line += plain
        if len(self._line) > MAX_LINE_SIZE:
            raise ObfuscationError("a line before the SSH version is over %d bytes" % MAX_LINE_SIZE)
        if not self._line.endswith(b"\n"):
            return
        if self._line.startswith(b"SSH-"):
            self.is_in_lines = False
        else:
            self.lines_before_version.append(bytes(self._line))
        self._line.clear()

    def _start_packet(self):
        packet_length, padding_length, message = struct.unpack(">IBB", self._header)
        if packet_length > MAX_PACKET_LENGTH or packet_length < 2 + padding_length:
            raise ObfuscationError("packet length %d (padding %d) cannot be SSH"
                                   % (packet_length, padding_length))
        self._is_newkeys = message == SSH_MSG_NEWKEYS
        self._body_left = packet_length - 2
        if self._body_left == 0:
            self._end_packet()

    def _end_packet(self):
        self._header.clear()
        if self._is_newkeys:
            self.is_past_newkeys = True


class StreamObfuscation:
    """RC4 over one direction of the stream, up to and including that side's NEWKEYS packet;
    bytes after it pass raw, even when they came in the same read (docs/protocol.md section 11)."""

    def __init__(self, key, is_encrypting):
        self._cipher = rc4(key)
        self._is_encrypting = is_encrypting
        self.scanner = SshStreamScanner()

    def transform(self, data):
        if self.scanner.is_past_newkeys:
            return data
        out = bytearray()
        done = 0
        while done < len(data) and not self.scanner.is_past_newkeys:
            size = min(self.scanner.span(), len(data) - done)
            chunk = data[done:done + size]
            converted = self._cipher.update(chunk)
            self.scanner.consume(chunk if self._is_encrypting else converted)
            out += converted
            done += size
        out += data[done:]
        return bytes(out)

    def apply_to_all(self, data):
        """RC4 without scanning: the preamble and the server's padding lines."""
        return self._cipher.update(data)


def wait_readable(sock, timeout):
    poller = select.poll()  # not select(): fds past 1024 are normal with 1,000+ forwards
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


class ObfuscatedSocket:
    """The socket paramiko's Transport sees: recv() undoes the peer's obfuscation, send()
    applies ours. The real socket stays blocking so a send is never cut short by a timeout
    after the keystream has moved on; recv() honours settimeout() with poll()."""

    def __init__(self, sock, inbound, outbound):
        self._sock = sock
        self._sock.settimeout(None)
        self._timeout = None
        self._inbound = inbound
        self._outbound = outbound
        self._send_lock = threading.Lock()

    @property
    def _closed(self):  # paramiko's Transport.close() reads it
        return self._sock._closed

    def settimeout(self, timeout):
        self._timeout = timeout

    def recv(self, size):
        if self._timeout is not None and not wait_readable(self._sock, self._timeout):
            raise socket.timeout()
        data = self._sock.recv(size)
        try:
            return self._inbound.transform(data)
        except ObfuscationError as error:
            raise socket.error("OSSH: %s" % error)

    def send(self, data):
        with self._send_lock:
            self._sock.sendall(self._outbound.transform(bytes(data)))
        return len(data)

    def send_raw_obfuscated(self, data):
        with self._send_lock:
            self._sock.sendall(self._outbound.apply_to_all(data))

    def getpeername(self):
        return self._sock.getpeername()

    def close(self):
        self._sock.close()


def recv_exact(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ObfuscationError("the client closed after %d of %d preamble bytes" % (len(data), size))
        data += chunk
    return bytes(data)


def padding_lines():
    """1-3 printable lines of at most 100 bytes (CRLF included), none starting with "SSH-"."""
    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    lines = []
    for _ in range(random.randint(1, 3)):
        text = "SSH-"
        while text.startswith("SSH-"):
            text = "".join(random.choice(alphabet) for _ in range(random.randint(1, 98)))
        lines.append(text + "\r\n")
    return "".join(lines).encode("ascii")


def accept_ossh(sock, keyword):
    """Reads and checks the client's preamble (seed, then c2s(magic, padding length, padding)),
    sends our padding lines, and returns (the socket for paramiko, the padding length)."""
    seed = recv_exact(sock, OSSH_SEED_SIZE)
    inbound = StreamObfuscation(derive_ossh_key(seed, keyword, OSSH_CLIENT_TO_SERVER), False)
    outbound = StreamObfuscation(derive_ossh_key(seed, keyword, OSSH_SERVER_TO_CLIENT), True)
    magic, padding_size = struct.unpack(">II", inbound.apply_to_all(recv_exact(sock, 8)))
    if magic != OSSH_MAGIC:
        raise ObfuscationError("bad magic 0x%08x (wrong obfuscation keyword?)" % magic)
    if padding_size > OSSH_MAX_PADDING:
        raise ObfuscationError("padding length %d is over %d" % (padding_size, OSSH_MAX_PADDING))
    inbound.apply_to_all(recv_exact(sock, padding_size))
    obfuscated = ObfuscatedSocket(sock, inbound, outbound)
    obfuscated.send(padding_lines())  # through the scanner: lines before the version line
    return obfuscated, padding_size


def drain_until_closed(sock, idle_timeout=60):
    """What psiphond does with a bad preamble: read silently until the client gives up."""
    sock.settimeout(idle_timeout)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


# --- Psiphon API over SSH (docs/protocol.md section 5) ---------------------------------------------

class ApiError(Exception):
    def __init__(self, param, reason):
        super().__init__("%s: %s" % (param, reason))
        self.param = param
        self.reason = reason


def is_hex(value):
    return bool(re.fullmatch(r"[0-9a-fA-F]+", value))


BASE_PARAMS = [
    ("propagation_channel_id", is_hex, "not hex"),
    ("sponsor_id", lambda v: len(v) == 16 and is_hex(v), "not 16 hex digits"),
    ("client_version", lambda v: v.isascii() and v.isdigit(), "not a decimal integer"),
    ("client_platform", lambda v: not re.search(r"\s", v), "has whitespace"),
    ("relay_protocol", lambda v: v in ("OSSH", "SSH"), "not OSSH or SSH"),
]


def is_rfc3339(value):
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    if not match:
        return False
    try:
        datetime.datetime.fromisoformat(match.group(1))
    except ValueError:
        return False
    return True


def parse_api_params(data):
    """The request data: a JSON object whose values are strings or arrays of strings."""
    if data[:2] == b"\x00\x01":
        raise ApiError("-", "packed CBOR parameters are not supported by this test server")
    try:
        params = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ApiError("-", "not JSON: %s" % error)
    if not isinstance(params, dict):
        raise ApiError("-", "not a JSON object")
    for name, value in params.items():
        is_string_list = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not isinstance(value, str) and not is_string_list:
            raise ApiError(name, "not a string or an array of strings")
    return params


def check_base_params(params, relay_protocol):
    for name, is_valid, problem in BASE_PARAMS:
        if name not in params:
            raise ApiError(name, "missing")
        if not isinstance(params[name], str) or not is_valid(params[name]):
            raise ApiError(name, problem)
    if params["relay_protocol"] != relay_protocol:
        raise ApiError("relay_protocol", "%s on the %s port" % (params["relay_protocol"], relay_protocol))


def check_equal(params, name, expected):
    if name not in params:
        raise ApiError(name, "missing")
    if params[name] != expected:
        raise ApiError(name, "wrong value")


def rfc3339_now(is_hour=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    if is_hour:
        now = now.replace(minute=0, second=0, microsecond=0)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def compact_json(value):
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


class Answer:
    """What a global request gets: payload bytes for REQUEST_SUCCESS, or None for FAILURE;
    then, optionally, close the connection or stall it."""
    CLOSE = "close"
    STALL = "stall"

    def __init__(self, payload, then=None):
        self.payload = payload
        self.then = then


# --- Forwarding (docs/protocol.md section 6) -------------------------------------------------------

def start_thread(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class TcpRelay:
    """Copies both ways between a direct-tcpip channel and the target's socket, with the
    half-closes passed on; both are closed when both directions are done."""

    def __init__(self, channel, target_socket, target, conn, log):
        self.channel = channel
        self.target_socket = target_socket
        self.target = target
        self.conn = conn
        self.log = log
        self.bytes_up = 0
        self.bytes_down = 0
        self._directions_left = 2
        self._lock = threading.Lock()

    def start(self):
        start_thread(self._copy_up)
        start_thread(self._copy_down)

    def _copy_up(self):
        try:
            while True:
                data = self.channel.recv(RELAY_BUFFER_SIZE)
                if not data:
                    break
                self.target_socket.sendall(data)
                self.bytes_up += len(data)
            if self.channel.closed:
                self.target_socket.shutdown(socket.SHUT_RDWR)  # wakes _copy_down
            else:
                self.target_socket.shutdown(socket.SHUT_WR)
                self._wait_channel_closed()
        except OSError:
            self._shutdown_quietly()
        self._direction_done()

    def _wait_channel_closed(self):
        # After the client's EOF, recv() no longer blocks; paramiko has no close event to wait on.
        while not self.channel.closed and self._directions_left == 2:
            time.sleep(0.5)
        if self.channel.closed:
            self._shutdown_quietly()

    def _copy_down(self):
        try:
            while True:
                data = self.target_socket.recv(RELAY_BUFFER_SIZE)
                if not data:
                    break
                self.channel.sendall(data)
                self.bytes_down += len(data)
            self.channel.shutdown_write()
        except OSError:
            self.channel.close()
        self._direction_done()

    def _shutdown_quietly(self):
        try:
            self.target_socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _direction_done(self):
        with self._lock:
            self._directions_left -= 1
            is_last = self._directions_left == 0
        if is_last:
            self.channel.close()
            self.target_socket.close()
            self.log.event("forward-close", self.conn, target=self.target,
                           up=self.bytes_up, down=self.bytes_down)


class UdpFlow:
    """One udpgw conid: a connected UDP socket and a thread that frames its replies."""

    def __init__(self, conid, address_bytes, destination, service):
        self.conid = conid
        self.address_bytes = address_bytes  # as the client sent it: replies carry it back
        self.service = service
        family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.socket.connect(destination)
        self.socket.settimeout(0.5)
        self.is_closed = False
        start_thread(self._read_replies)

    def send(self, payload):
        try:
            self.socket.send(payload)
        except OSError:
            pass  # UDP: a refused port shows as an error on a later call

    def close(self):
        self.is_closed = True

    def _read_replies(self):
        while not self.is_closed and not self.service.is_closed:
            try:
                payload = self.socket.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                continue  # ICMP port unreachable from an earlier datagram
            if len(payload) <= UDPGW_MAX_PAYLOAD:
                self.service.send_reply(self, payload)
        self.socket.close()


class UdpgwService:
    """The udpgw protocol on one channel (badvpn framing, docs/protocol.md section 6.2):
    u16 LE size; u8 flags; u16 LE conid; address (4 or 16 bytes) + u16 BE port; payload.
    Replies carry flags=0 whatever the request said, as psiphond's do."""

    def __init__(self, channel, conn, log, dns_resolver):
        self.channel = channel
        self.conn = conn
        self.log = log
        self.dns_resolver = dns_resolver
        self.flows = {}
        self.frames_up = 0
        self.frames_down = 0
        self.is_closed = False
        self._close_reason = "client closed the channel"
        self._write_lock = threading.Lock()

    def close(self, reason):
        self._close_reason = reason
        self.is_closed = True
        self.channel.close()

    def run(self):
        self.log.event("udpgw-open", self.conn)
        try:
            while not self.is_closed:
                frame = self._read_frame()
                if frame is None:
                    break
                self._handle_frame(frame)
        except UdpgwError as error:
            self._close_reason = str(error)
        except OSError as error:
            self._close_reason = "channel error: %s" % error
        self.is_closed = True
        self.channel.close()
        for flow in self.flows.values():
            flow.close()
        self.log.event("udpgw-close", self.conn, frames_up=self.frames_up,
                       frames_down=self.frames_down, reason=self._close_reason)

    def _read_exact(self, size):
        data = bytearray()
        while len(data) < size:
            chunk = self.channel.recv(size - len(data))
            if not chunk:
                if data:
                    raise UdpgwError("channel closed in the middle of a frame")
                return None
            data += chunk
        return bytes(data)

    def _read_frame(self):
        size_field = self._read_exact(2)
        if size_field is None:
            return None
        (size,) = struct.unpack("<H", size_field)
        if size < 3 or size > UDPGW_MAX_HEADER + UDPGW_MAX_PAYLOAD:
            raise UdpgwError("frame size %d is out of range" % size)
        body = self._read_exact(size)
        if body is None:
            raise UdpgwError("channel closed in the middle of a frame")
        return body

    def _handle_frame(self, body):
        flags, conid = struct.unpack("<BH", body[:3])
        if flags & UDPGW_FLAG_KEEPALIVE:
            return
        address_size = (16 if flags & UDPGW_FLAG_IPV6 else 4) + 2
        if len(body) < 3 + address_size:
            raise UdpgwError("frame of %d bytes is too short for its address" % len(body))
        address_bytes = body[3:3 + address_size]
        payload = body[3 + address_size:]
        if len(payload) > UDPGW_MAX_PAYLOAD:
            raise UdpgwError("payload of %d bytes is over %d" % (len(payload), UDPGW_MAX_PAYLOAD))
        self.frames_up += 1
        try:
            flow = self._flow_for(conid, flags, address_bytes)
        except OSError as error:
            self.log.event("udpgw-drop", self.conn, conid=conid, reason=error.strerror or str(error))
            return
        flow.send(payload)

    def _flow_for(self, conid, flags, address_bytes):
        flow = self.flows.get(conid)
        if flow and (flags & UDPGW_FLAG_REBIND or flow.address_bytes != address_bytes):
            flow.close()
            flow = None
        if flow is None:
            destination = self._destination(flags, address_bytes)
            flow = UdpFlow(conid, address_bytes, destination, self)
            self.flows[conid] = flow
            self.log.event("udpgw-flow", self.conn, conid=conid, target=host_port(*destination),
                           dns="yes" if flags & UDPGW_FLAG_DNS else "no")
        return flow

    def _destination(self, flags, address_bytes):
        if flags & UDPGW_FLAG_DNS:
            return self.dns_resolver
        host = str(ipaddress.ip_address(address_bytes[:-2]))
        (port,) = struct.unpack(">H", address_bytes[-2:])
        return host, port

    def send_reply(self, flow, payload):
        frame_body = struct.pack("<BH", 0, flow.conid) + flow.address_bytes + payload
        frame = struct.pack("<H", len(frame_body)) + frame_body
        with self._write_lock:
            if self.is_closed:
                return
            try:
                self.channel.sendall(frame)
                self.frames_down += 1
            except OSError:
                self.is_closed = True


class UdpgwError(Exception):
    pass


# --- Packet tunnel (docs/protocol.md section 6.3) --------------------------------------------------
#
# One TUN device for every client. Upstream, a client's packets get the client's assigned
# address as their source (and DNS to 10.0.0.2 / fd19:ca83:e6d5:1c44::2 goes to the resolver);
# the kernel then routes them as if they came from a host on the TUN's subnet. Downstream, the
# destination (an assigned address) names the client, and the rewrites are undone. Checksums
# are adjusted incrementally (RFC 1624), as psiphond does: a checksum the client got wrong stays
# wrong, and the kernel drops the packet, as behind a real server.

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
PACKET_TUNNEL_CHANNEL = "tun@psiphon.ca"
PACKET_TUNNEL_MTU = 1500
# /16, not psiphond's 10.0.0.0/8, so that the lab's other 10.x networks stay routable.
PACKET_TUNNEL_IPV4 = ipaddress.ip_network("10.0.0.0/16")
PACKET_TUNNEL_IPV6 = ipaddress.ip_network("fd19:ca83:e6d5:1c44::/64")
PACKET_TUNNEL_SERVER_HOST = 1      # 10.0.0.1, the TUN's own address
PACKET_TUNNEL_DNS_HOST = 2         # 10.0.0.2, the transparent DNS address
PACKET_TUNNEL_FIRST_HOST = 10      # client N (1, 2, ...) gets host number N + 10
PACKET_TUNNEL_MAX_CLIENTS = 65000  # host numbers up to 65010, inside the /16
PACKET_TUNNEL_QUEUE_LIMIT = 1024 * 1024  # downstream bytes waiting for one client's channel
PACKET_TUNNEL_READ_BATCH = 256     # TUN packets read per wakeup before they go to the channels
PACKET_TUNNEL_SEND_CHUNK = 32768   # bytes per Channel.sendall call
DNS_PORT = 53
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
IPV6_FRAGMENT_HEADER = 44
LENGTH_PREFIX = struct.Struct(">H")
IP_COMMAND = shutil.which("ip") or "/usr/sbin/ip"


def pool_address(network, host):
    return (network.network_address + host).packed


PT_SERVER_V4 = pool_address(PACKET_TUNNEL_IPV4, PACKET_TUNNEL_SERVER_HOST)
PT_SERVER_V6 = pool_address(PACKET_TUNNEL_IPV6, PACKET_TUNNEL_SERVER_HOST)
PT_DNS_V4 = pool_address(PACKET_TUNNEL_IPV4, PACKET_TUNNEL_DNS_HOST)
PT_DNS_V6 = pool_address(PACKET_TUNNEL_IPV6, PACKET_TUNNEL_DNS_HOST)
PT_SERVER_CIDR_V4 = "%s/%d" % (ipaddress.IPv4Address(PT_SERVER_V4), PACKET_TUNNEL_IPV4.prefixlen)
PT_SERVER_CIDR_V6 = "%s/%d" % (ipaddress.IPv6Address(PT_SERVER_V6), PACKET_TUNNEL_IPV6.prefixlen)
PT_PREFIX_V4 = PACKET_TUNNEL_IPV4.network_address.packed[:2]
PT_PREFIX_V6 = PACKET_TUNNEL_IPV6.network_address.packed[:8]


def internet_checksum(*parts):
    """RFC 1071 checksum field value over the concatenation of parts (each but the last of
    even length), in 0..0xFFFE. The one's complement sum of 16-bit words is the number the
    bytes spell modulo 0xFFFF, since 2**16 = 1 (mod 0xFFFF): no loop over words in Python."""
    total = 0
    for part in parts:
        value = int.from_bytes(part, "big")
        total += value << 8 if len(part) % 2 else value
    return -total % 0xFFFF


def transport_checksum(version, source, destination, protocol, segment):
    """The TCP/UDP/ICMPv6 checksum over the pseudo-header and segment (its checksum field
    as it is: zero it first to compute, keep it to verify, where 0 means valid)."""
    if version == 4:
        pseudo = source + destination + struct.pack(">xBH", protocol, len(segment))
    else:
        pseudo = source + destination + struct.pack(">I3xB", len(segment), protocol)
    return internet_checksum(pseudo, segment)


def adjust_checksum(packet, offset, delta, is_udp=False):
    """RFC 1624: the checksum at packet[offset:offset+2] after words summing to S_old were
    replaced by words summing to S_new, delta = S_old - S_new (as plain integers)."""
    value = (((packet[offset] << 8) | packet[offset + 1]) + delta) % 0xFFFF
    if value == 0 and is_udp:
        value = 0xFFFF  # 0 means "no checksum" in UDP
    packet[offset] = value >> 8
    packet[offset + 1] = value & 0xFF


def transport_checksum_offset(protocol):
    return {PROTO_TCP: 16, PROTO_UDP: 6, PROTO_ICMPV6: 2}.get(protocol)


class PacketDrop(Exception):
    """A packet that is not relayed. kind is the counter's key; str() the log text."""

    def __init__(self, kind, detail=None):
        super().__init__(detail or kind)
        self.kind = kind


def fix_transport_checksum(packet, version, protocol, l4, delta):
    """After an address rewrite: adjust the TCP/UDP/ICMPv6 checksum, if its field is there."""
    offset = transport_checksum_offset(protocol)
    if offset is None or len(packet) < l4 + offset + 2:
        return
    if protocol == PROTO_UDP and packet[l4 + 6] == 0 and packet[l4 + 7] == 0:
        if version == 4:
            return  # IPv4 UDP without a checksum stays without
        # IPv6 UDP must have one (RFC 8200 8.1): compute it whole.
        header = packet[8:40]
        value = transport_checksum(6, bytes(header[:16]), bytes(header[16:]), protocol,
                                   bytes(packet[l4:]))
        packet[l4 + 6:l4 + 8] = LENGTH_PREFIX.pack(value or 0xFFFF)
        return
    adjust_checksum(packet, l4 + offset, delta, protocol == PROTO_UDP)


def check_transport_header(packet, protocol, l4, is_whole):
    """The transport header of a first (or only) fragment: present and self-consistent."""
    size = len(packet) - l4
    if protocol == PROTO_TCP:
        if size < 20 or not 20 <= (packet[l4 + 12] >> 4) * 4 <= size:
            raise PacketDrop("truncated", "truncated TCP header")
    elif protocol == PROTO_UDP:
        if size < 8:
            raise PacketDrop("truncated", "truncated UDP header")
        udp_length = (packet[l4 + 4] << 8) | packet[l4 + 5]
        if udp_length < 8 or (is_whole and udp_length > size):
            raise PacketDrop("truncated", "UDP length %d with %d bytes" % (udp_length, size))
    elif size < 8:
        raise PacketDrop("truncated", "truncated ICMP header")
    if protocol in (PROTO_TCP, PROTO_UDP):
        if packet[l4 + 2] == 0 and packet[l4 + 3] == 0:
            raise PacketDrop("port 0", "destination port 0")
        return (packet[l4 + 2] << 8) | packet[l4 + 3]
    return None


class PacketTunnelClient:
    """One tun@psiphon.ca channel: its assigned addresses, the client's own addresses (learnt
    from its first packet of each version), whether it used the transparent DNS, counters,
    and the queue of framed packets for its channel."""

    def __init__(self, tunnel, channel, conn, slot):
        self.tunnel = tunnel
        self.channel = channel
        self.conn = conn
        self.slot = slot
        host = slot + PACKET_TUNNEL_FIRST_HOST
        self.assigned_v4 = pool_address(PACKET_TUNNEL_IPV4, host)
        self.assigned_v6 = pool_address(PACKET_TUNNEL_IPV6, host)
        self.original_v4 = None
        self.original_v6 = None
        self.used_dns_v4 = False
        self.used_dns_v6 = False
        self.packets_up = 0
        self.packets_down = 0
        self.dropped = 0
        self._drop_kinds = set()
        self.is_closed = False
        self._close_reason = None
        self._queue = bytearray()
        self._queue_lock = threading.Condition(threading.Lock())

    def describe(self):
        return {"ipv4": str(ipaddress.IPv4Address(self.assigned_v4)),
                "ipv6": str(ipaddress.IPv6Address(self.assigned_v6))}

    def start(self):
        start_thread(self._read_upstream)
        start_thread(self._send_downstream)

    def close(self, reason):
        with self._queue_lock:
            if self.is_closed:
                return
            self._close_reason = reason
            self.is_closed = True
            self._queue_lock.notify_all()
        try:
            self.channel.close()  # ends _read_upstream, which detaches and logs
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the connection is gone: the channel is as good as closed

    def drop(self, direction, error):
        self.dropped += 1
        if error.kind not in self._drop_kinds:  # one line per kind of drop, not per packet
            self._drop_kinds.add(error.kind)
            self.tunnel.log.event("packet-tunnel-drop", self.conn, dir=direction, reason=str(error))

    # Upstream: channel -> TUN

    def _read_upstream(self):
        buffer = bytearray()
        reason = "client closed the channel"
        try:
            while not self.is_closed:
                data = self.channel.recv(65536)
                if not data:
                    break
                buffer += data
                end = self._relay_frames(buffer)
                if end:
                    del buffer[:end]
            if buffer:
                reason = "channel closed in the middle of a packet"
        except (OSError, EOFError, paramiko.SSHException) as error:
            reason = "channel error: %s" % error
        self.close(reason)  # keeps an earlier reason (replaced, send failed)
        self.tunnel.detach(self)

    def _relay_frames(self, buffer):
        """Relays every whole frame in buffer; returns where the first partial one starts."""
        position = 0
        available = len(buffer)
        while available - position >= 2:
            size = (buffer[position] << 8) | buffer[position + 1]
            if available - position - 2 < size:
                break
            packet = buffer[position + 2:position + 2 + size]  # a copy we may rewrite
            position += 2 + size
            try:
                self.tunnel.write_packet(self.rewrite_upstream(packet))
                self.packets_up += 1
            except PacketDrop as error:
                self.drop("up", error)
        return position

    def rewrite_upstream(self, packet):
        size = len(packet)
        if size == 0:
            raise PacketDrop("empty", "empty packet")
        if size > PACKET_TUNNEL_MTU:
            raise PacketDrop("over MTU", "%d bytes, over the MTU of %d" % (size, PACKET_TUNNEL_MTU))
        version = packet[0] >> 4
        if version == 4:
            return self._rewrite_upstream_v4(packet, size)
        if version == 6:
            return self._rewrite_upstream_v6(packet, size)
        raise PacketDrop("not IP", "IP version %d" % version)

    def _rewrite_upstream_v4(self, packet, size):
        if size < 20:
            raise PacketDrop("truncated", "truncated IPv4 header")
        if packet[0] != 0x45:
            raise PacketDrop("IPv4 options", "IPv4 header length %d (options)" % ((packet[0] & 15) * 4))
        total = (packet[2] << 8) | packet[3]
        if total < 20 or total > size:
            raise PacketDrop("truncated", "IPv4 total length %d with %d bytes" % (total, size))
        if total < size:
            del packet[total:]
        protocol = packet[9]
        if protocol not in (PROTO_TCP, PROTO_UDP, PROTO_ICMP):
            raise PacketDrop("protocol", "IPv4 protocol %d" % protocol)
        fragment = (packet[6] << 8) | packet[7]
        is_first = fragment & 0x1FFF == 0
        port = (check_transport_header(packet, protocol, 20, not fragment & 0x2000)
                if is_first else None)
        destination = bytes(packet[16:20])
        new_destination = None
        if destination == PT_DNS_V4:
            new_destination = self._dns_target(4, protocol, port)
        elif destination[:2] == PT_PREFIX_V4 and destination != PT_SERVER_V4:
            raise PacketDrop("client to client", "to %s, inside the tunnel's subnet"
                             % ipaddress.IPv4Address(destination))
        elif destination[0] in (0, 127) or destination[0] >= 224:
            raise PacketDrop("destination", "to %s, not unicast" % ipaddress.IPv4Address(destination))
        if self.original_v4 is None:
            self.original_v4 = bytes(packet[12:16])
            self.tunnel.log.event("packet-tunnel-client", self.conn,
                                  ipv4=str(ipaddress.IPv4Address(self.original_v4)))
        before = int.from_bytes(packet[12:20], "big")
        packet[12:16] = self.assigned_v4
        if new_destination is not None:
            packet[16:20] = new_destination
            self.used_dns_v4 = True
        delta = before - int.from_bytes(packet[12:20], "big")
        adjust_checksum(packet, 10, delta)
        if is_first:
            fix_transport_checksum(packet, 4, protocol, 20, delta)
        return packet

    def _rewrite_upstream_v6(self, packet, size):
        if size < 40:
            raise PacketDrop("truncated", "truncated IPv6 header")
        total = 40 + ((packet[4] << 8) | packet[5])
        if total > size:
            raise PacketDrop("truncated", "IPv6 payload length %d with %d bytes"
                             % (total - 40, size - 40))
        if total < size:
            del packet[total:]
        protocol = packet[6]
        if protocol not in (PROTO_TCP, PROTO_UDP, PROTO_ICMPV6):
            raise PacketDrop("protocol", "IPv6 next header %d (only TCP, UDP and ICMPv6; "
                             "no extension headers)" % protocol)
        port = check_transport_header(packet, protocol, 40, True)
        destination = bytes(packet[24:40])
        new_destination = None
        if destination == PT_DNS_V6:
            new_destination = self._dns_target(6, protocol, port)
        elif destination[:8] == PT_PREFIX_V6 and destination != PT_SERVER_V6:
            raise PacketDrop("client to client", "to %s, inside the tunnel's subnet"
                             % ipaddress.IPv6Address(destination))
        elif destination[0] == 0xFF or destination[:15] == bytes(15) or (
                destination[0] == 0xFE and destination[1] & 0xC0 == 0x80):
            raise PacketDrop("destination", "to %s, not unicast beyond the link"
                             % ipaddress.IPv6Address(destination))
        if self.original_v6 is None:
            self.original_v6 = bytes(packet[8:24])
            self.tunnel.log.event("packet-tunnel-client", self.conn,
                                  ipv6=str(ipaddress.IPv6Address(self.original_v6)))
        before = int.from_bytes(packet[8:40], "big")
        packet[8:24] = self.assigned_v6
        if new_destination is not None:
            packet[24:40] = new_destination
            self.used_dns_v6 = True
        delta = before - int.from_bytes(packet[8:40], "big")
        fix_transport_checksum(packet, 6, protocol, 40, delta)
        return packet

    def _dns_target(self, version, protocol, port):
        if protocol not in (PROTO_TCP, PROTO_UDP) or port != DNS_PORT:
            raise PacketDrop("to the DNS address", "to the transparent DNS address, not DNS")
        target = self.tunnel.dns_v4 if version == 4 else self.tunnel.dns_v6
        if target is None:
            raise PacketDrop("no DNS resolver", "IPv%d DNS, but the resolver is not IPv%d"
                             % (version, version))
        return target

    # Downstream: TUN -> channel (the TUN reader thread calls rewrite_downstream and queue)

    def rewrite_downstream(self, packet):
        if packet[0] >> 4 == 4:
            return self._rewrite_downstream_v4(packet)
        return self._rewrite_downstream_v6(packet)

    def _rewrite_downstream_v4(self, packet):
        if self.original_v4 is None:
            raise PacketDrop("no client address", "IPv4 for a client that has sent no IPv4")
        l4 = (packet[0] & 15) * 4
        protocol = packet[9]
        is_first = ((packet[6] << 8) | packet[7]) & 0x1FFF == 0
        before = int.from_bytes(packet[12:20], "big")
        packet[16:20] = self.original_v4
        if (self.used_dns_v4 and is_first and protocol in (PROTO_TCP, PROTO_UDP)
                and packet[12:16] == self.tunnel.dns_v4 and len(packet) >= l4 + 4
                and ((packet[l4] << 8) | packet[l4 + 1]) == DNS_PORT):
            packet[12:16] = PT_DNS_V4
        delta = before - int.from_bytes(packet[12:20], "big")
        adjust_checksum(packet, 10, delta)
        if is_first:
            fix_transport_checksum(packet, 4, protocol, l4, delta)
        return packet

    def _rewrite_downstream_v6(self, packet):
        if self.original_v6 is None:
            raise PacketDrop("no client address", "IPv6 for a client that has sent no IPv6")
        protocol, l4, is_first = packet[6], 40, True
        if protocol == IPV6_FRAGMENT_HEADER and len(packet) >= 48:  # the kernel fragments big UDP
            protocol, l4 = packet[40], 48
            is_first = ((packet[42] << 8) | packet[43]) & 0xFFF8 == 0
        before = int.from_bytes(packet[8:40], "big")
        packet[24:40] = self.original_v6
        if (self.used_dns_v6 and is_first and protocol in (PROTO_TCP, PROTO_UDP)
                and packet[8:24] == self.tunnel.dns_v6 and len(packet) >= l4 + 4
                and ((packet[l4] << 8) | packet[l4 + 1]) == DNS_PORT):
            packet[8:24] = PT_DNS_V6
        delta = before - int.from_bytes(packet[8:40], "big")
        if is_first:
            fix_transport_checksum(packet, 6, protocol, l4, delta)
        return packet

    def queue(self, frames, count):
        """frames: length-prefixed packets, joined. Dropped whole when the queue is full."""
        with self._queue_lock:
            if self.is_closed:
                return
            if len(self._queue) + len(frames) > PACKET_TUNNEL_QUEUE_LIMIT:
                full = True
            else:
                full = False
                self._queue += frames
                self.packets_down += count
                self._queue_lock.notify()
        if full:
            for _ in range(count):
                self.drop("down", PacketDrop("queue full", "the channel's queue is full"))

    def _send_downstream(self):
        """Sends whatever has queued up since the last send: several packets per send."""
        while True:
            with self._queue_lock:
                while not self._queue and not self.is_closed:
                    self._queue_lock.wait()
                if self.is_closed:
                    return
                data, self._queue = bytes(self._queue), bytearray()
            try:
                for start in range(0, len(data), PACKET_TUNNEL_SEND_CHUNK):
                    self.channel.sendall(data[start:start + PACKET_TUNNEL_SEND_CHUNK])
            except (OSError, EOFError, paramiko.SSHException) as error:
                self.close("channel error: %s" % error)
                return

    def log_close(self):
        self.tunnel.log.event("packet-tunnel-close", self.conn, up=self.packets_up,
                              down=self.packets_down, dropped=self.dropped,
                              reason=self._close_reason)


class PacketTunnel:
    """The server's TUN device and its clients; a reader thread for the downstream side."""

    def __init__(self, config, log):
        self.log = log
        self.name = config.packet_tunnel_device
        self.dns_resolver = config.dns_resolver
        try:
            address = ipaddress.ip_address(config.dns_resolver[0])
        except ValueError:
            raise PacketTunnelError("--dns-resolver %s is not an IP address, which the packet "
                                    "tunnel needs" % config.dns_resolver[0])
        self.dns_v4 = address.packed if address.version == 4 else None
        self.dns_v6 = address.packed if address.version == 6 else None
        self.dns_address = address
        self.fd = None
        self.orphans = 0  # TUN packets for no client
        self._lock = threading.Lock()
        self._clients = {}  # slot -> PacketTunnelClient
        self._by_v4 = {}    # assigned address -> client (read without the lock: one dict get)
        self._by_v6 = {}
        self._wake_read, self._wake_write = os.pipe()
        self._reader = None

    def create_device(self):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            request = struct.pack("16sH22x", self.name.encode("ascii"), IFF_TUN | IFF_NO_PI)
            reply = fcntl.ioctl(fd, TUNSETIFF, request)
            self.name = reply[:16].rstrip(b"\0").decode("ascii")
            for command in (
                    ["link", "set", "dev", self.name, "mtu", str(PACKET_TUNNEL_MTU)],
                    ["addr", "add", PT_SERVER_CIDR_V4, "dev", self.name],
                    ["addr", "add", PT_SERVER_CIDR_V6, "dev", self.name, "nodad"],
                    ["link", "set", "dev", self.name, "up"]):
                done = subprocess.run([IP_COMMAND] + command, capture_output=True, text=True)
                if done.returncode != 0:
                    raise PacketTunnelError("ip %s: %s" % (" ".join(command), done.stderr.strip()))
            os.set_blocking(fd, False)
        except (OSError, PacketTunnelError):
            os.close(fd)
            raise
        self.fd = fd
        caveat = None
        if self.dns_resolver[1] != DNS_PORT:
            caveat = "the packet tunnel sends DNS to port 53, not %d" % self.dns_resolver[1]
        if self.dns_address.is_loopback:
            caveat = "a loopback resolver cannot answer packets from the TUN (martians)"
        self.log.event("packet-tunnel-device", device=self.name, mtu=PACKET_TUNNEL_MTU,
                       ipv4=PT_SERVER_CIDR_V4, ipv6=PT_SERVER_CIDR_V6,
                       dns=host_port(str(self.dns_address), DNS_PORT), reason=caveat)

    def start(self):
        self._reader = start_thread(self._read_downstream)

    def stop(self):
        """Ends the reader and removes the device (closing a non-persistent TUN deletes it)."""
        if self.fd is None:
            return
        os.write(self._wake_write, b"x")
        if self._reader is not None:
            self._reader.join(2)
        fd, self.fd = self.fd, None
        os.close(fd)
        gone = subprocess.run([IP_COMMAND, "link", "show", "dev", self.name],
                              capture_output=True).returncode != 0
        if not gone:
            subprocess.run([IP_COMMAND, "link", "delete", "dev", self.name], capture_output=True)
        self.log.event("packet-tunnel-device-removed", device=self.name)

    def attach(self, channel, conn, previous=None):
        """A new client for channel; with previous (the same connection's earlier channel),
        the new one takes over its slot, so its addresses stay, and previous is closed."""
        with self._lock:
            if previous is not None and self._clients.get(previous.slot) is previous:
                slot = previous.slot
            else:
                slot = next((n for n in range(1, PACKET_TUNNEL_MAX_CLIENTS + 1)
                             if n not in self._clients), None)
                if slot is None:
                    return None
            client = PacketTunnelClient(self, channel, conn, slot)
            self._clients[slot] = client
            self._by_v4[client.assigned_v4] = client
            self._by_v6[client.assigned_v6] = client
        if previous is not None:
            previous.close("replaced by a new %s channel" % PACKET_TUNNEL_CHANNEL)
        self.log.event("packet-tunnel-open", conn, **client.describe())
        client.start()
        return client

    def detach(self, client):
        with self._lock:
            if self._clients.get(client.slot) is client:  # not when a new channel took over
                del self._clients[client.slot]
                del self._by_v4[client.assigned_v4]
                del self._by_v6[client.assigned_v6]
        client.log_close()

    def write_packet(self, packet):
        fd = self.fd
        if fd is None:
            raise PacketDrop("stopped", "the server is stopping")
        try:
            os.write(fd, packet)
        except OSError as error:
            raise PacketDrop("TUN write", "TUN write: %s" % (error.strerror or error))

    def _read_downstream(self):
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        fd = self.fd
        while True:
            events = poller.poll()
            if any(ready == self._wake_read for ready, _ in events):
                return
            batches = {}  # client -> [frames], [count]
            for _ in range(PACKET_TUNNEL_READ_BATCH):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as error:
                    self.log.event("packet-tunnel-read-fail", device=self.name, reason=str(error))
                    return
                self._route_downstream(bytearray(packet), batches)
            for client, (frames, count) in batches.items():
                client.queue(b"".join(frames), count[0])

    def _route_downstream(self, packet, batches):
        size = len(packet)
        version = packet[0] >> 4 if size else 0
        if version == 4 and size >= 20:
            client = self._by_v4.get(bytes(packet[16:20]))
        elif version == 6 and size >= 40:
            client = self._by_v6.get(bytes(packet[24:40]))
        else:
            client = None
        if client is None:
            self.orphans += 1  # router solicitations, packets for a client just gone, ...
            return
        try:
            packet = client.rewrite_downstream(packet)
        except PacketDrop as error:
            client.drop("down", error)
            return
        batch = batches.get(client)
        if batch is None:
            batch = batches[client] = ([], [0])
        batch[0].append(LENGTH_PREFIX.pack(size))
        batch[0].append(packet)
        batch[1][0] += 1


class PacketTunnelError(Exception):
    pass


# --- SSH server ------------------------------------------------------------------------------

class CloseConnection(EOFError):
    """Raised in paramiko's transport thread: its run loop ends and closes the socket."""


def _parse_global_request_raw(transport, message):
    """paramiko adds REQUEST_SUCCESS data as length-prefixed strings; Psiphon's API needs the
    raw bytes after the message number, both ways. This replaces Transport._parse_global_request."""
    kind = message.get_text()
    want_reply = message.get_boolean()
    answer = transport.server_object.answer_global_request(kind, message.get_remainder())
    if want_reply:
        reply = paramiko.Message()
        if answer.payload is None:
            reply.add_byte(cMSG_REQUEST_FAILURE)
        else:
            reply.add_byte(cMSG_REQUEST_SUCCESS)
            reply.add_bytes(answer.payload)
        transport._send_message(reply)
    if answer.then == Answer.CLOSE:
        raise CloseConnection()
    if answer.then == Answer.STALL:
        transport.server_object.stall()


def _negotiate_keys_or_close(transport, message):
    if transport.server_object.config.close_mid_kex:
        transport.server_object.log_event("kex-closed")
        raise CloseConnection()
    if transport.active:  # a key exchange after the first: a rekey
        transport.server_object.log_event("rekey")
    paramiko.Transport._negotiate_keys(transport, message)


def _parse_newkeys_then_send_held(transport, message):
    # Under the lock that other threads take before they send, so a held OPEN_SUCCESS goes out
    # before any data of that channel.
    with transport.clear_to_send_lock:
        paramiko.Transport._parse_newkeys(transport, message)
        transport.send_held_messages()


class PsiphonTransport(paramiko.Transport):
    """paramiko's Transport, with the Psiphon global requests, the KEX fault switch, and two
    faults of paramiko 2.12 mended for rekeys under traffic. During a key exchange the transport
    thread itself answered channel messages (an OPEN_SUCCESS, a CLOSE for the peer's CLOSE, a
    request reply): sent at once, they broke RFC 4253 7.1 (libssh drops the connection for it);
    sent the user way, they waited for the key exchange that only that same thread can finish,
    and the connection died after 30 s. Such messages are held and sent after NEWKEYS, as
    OpenSSH and Go's x/crypto/ssh do."""

    _handler_table = dict(paramiko.Transport._handler_table)
    _handler_table[MSG_GLOBAL_REQUEST] = _parse_global_request_raw
    _handler_table[MSG_KEXINIT] = _negotiate_keys_or_close
    _handler_table[MSG_NEWKEYS] = _parse_newkeys_then_send_held

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clear_to_send_lock = threading.RLock()  # _parse_newkeys takes it again inside
        self._held_messages = []

    def _is_held(self, data):
        # Transport-layer messages (KEX included) are below 50; authentication and channels above.
        return (threading.current_thread() is self and not self.clear_to_send.is_set()
                and data.asbytes()[0] >= 50)

    def _send_message(self, data):
        if self._is_held(data):
            self._held_messages.append(data)
            return
        super()._send_message(data)

    def _send_user_message(self, data):
        if self._is_held(data):
            self._held_messages.append(data)
            return
        super()._send_user_message(data)

    def send_held_messages(self):
        held, self._held_messages = self._held_messages, []
        for data in held:
            super()._send_message(data)


class Session(paramiko.ServerInterface):
    """One client connection: auth, the API requests, and the channels it opens."""

    UDPGW = "udpgw"
    PACKET_TUNNEL = "packet tunnel"

    def __init__(self, server, conn, relay_protocol, peer):
        self.server = server
        self.config = server.config
        self.log = server.log
        self.conn = conn
        self.relay_protocol = relay_protocol
        self.peer = peer
        self.session_id = None
        self.has_handshake = False
        self._pending_channels = {}  # our channel id -> (target socket, target) or UDPGW
        self._udpgw = None
        self._packet_client = None
        self._lock = threading.Lock()

    def log_event(self, name, reason=None, **fields):
        self.log.event(name, self.conn, reason, **fields)

    # Auth (docs/protocol.md section 4)

    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        problem = self._password_problem(username, password)
        if problem:
            self.log_event("auth-fail", user=username, reason=problem)
            return paramiko.AUTH_FAILED
        self.log_event("auth-ok", user=username, session=self.session_id)
        return paramiko.AUTH_SUCCESSFUL

    def _password_problem(self, username, password):
        if username != self.config.username:
            return "wrong user"
        try:
            payload = json.loads(password)
        except ValueError:
            return "password is not JSON"
        if not isinstance(payload, dict):
            return "password is not a JSON object"
        session_id = payload.get("SessionId")
        if not isinstance(session_id, str) or len(session_id) != 32 or not is_hex(session_id):
            return "SessionId is not 32 hex digits"
        if payload.get("SshPassword") != self.config.password:
            return "wrong SshPassword"
        self.session_id = session_id
        return None

    # Global requests (docs/protocol.md section 5)

    def answer_global_request(self, kind, data):
        if kind == "keepalive@openssh.com":
            padding = os.urandom(random.randint(0, 256))
            self.log_event("keepalive", bytes=len(padding))
            return Answer(padding)
        if kind == "psiphon-handshake":
            return self._answer_handshake(data)
        if not self.has_handshake:
            self.log_event("request-fail", kind=kind, reason="before the handshake")
            return Answer(None)
        if kind == "psiphon-connected":
            return self._answer_connected(data)
        if kind == "psiphon-status":
            self.log_event("request-ok", kind=kind)
            return Answer(b"{}")
        self.log_event("request-fail", kind=kind, reason="unknown request")
        return Answer(None)

    def _answer_handshake(self, data):
        if self.has_handshake:
            self.log_event("handshake-fail", param="-", reason="a second handshake")
            return Answer(None, Answer.CLOSE)
        if self.config.refuse_handshake:
            self.log_event("handshake-fail", param="-", reason="--refuse-handshake")
            return Answer(None, Answer.CLOSE)
        try:
            params = parse_api_params(data)
            check_base_params(params, self.relay_protocol)
            check_equal(params, "server_secret", self.config.web_server_secret)
            check_equal(params, "client_session_id", self.session_id)
        except ApiError as error:
            self.log_event("handshake-fail", param=error.param, reason=error.reason)
            return Answer(None, Answer.CLOSE)
        self.has_handshake = True
        self.log_event("handshake-ok", relay_protocol=self.relay_protocol, session=self.session_id)
        then = Answer.STALL if self.config.stall_after_handshake else None
        return Answer(compact_json(self._handshake_reply()), then)

    def _handshake_reply(self):
        return {
            "ssh_session_id": self.session_id,
            "homepages": self.config.homepages,
            "upgrade_client_version": "",
            "page_view_regexes": [],
            "https_request_regexes": [],
            "encoded_server_list": self.config.discovered_entries,
            "client_region": self.config.region,
            "client_address": host_port(*self.peer[:2]),
            "server_timestamp": rfc3339_now(),
            "active_authorization_ids": [],
        }

    def _answer_connected(self, data):
        kind = "psiphon-connected"
        try:
            params = parse_api_params(data)
            check_base_params(params, self.relay_protocol)
            last = params.get("last_connected")
            if last is None:
                raise ApiError("last_connected", "missing")
            if last != "None" and not is_rfc3339(last):
                raise ApiError("last_connected", "not None or an RFC 3339 time")
        except ApiError as error:
            self.log_event("request-fail", kind=kind, param=error.param, reason=error.reason)
            return Answer(None)
        if self.server.take_connected_refusal():
            self.log_event("request-fail", kind=kind, last_connected=last, reason="--refuse-connected")
            return Answer(None)
        self.log_event("request-ok", kind=kind, last_connected=last)
        return Answer(compact_json({"connected_timestamp": rfc3339_now(is_hour=True)}))

    def stall(self):
        """Blocks paramiko's transport thread: nothing more is read or answered."""
        self.log_event("stalled")
        self.server.stopping.wait()

    # Channels (docs/protocol.md section 6)

    def check_channel_request(self, kind, chanid):
        if kind == PACKET_TUNNEL_CHANNEL:
            return self._check_packet_tunnel(chanid)
        self.log_event("channel-refused", type=kind)
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def _check_packet_tunnel(self, chanid):
        # Refused as psiphond refuses it without RunPacketTunnel, and before the handshake.
        if self.server.packet_tunnel is None:
            reason = "no --packet-tunnel"
        elif not self.has_handshake:
            reason = "before the handshake"
        else:
            self._pending_channels[chanid] = self.PACKET_TUNNEL
            return OPEN_SUCCEEDED
        self.log_event("channel-refused", type=PACKET_TUNNEL_CHANNEL, reason=reason)
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(self, chanid, origin, destination):
        host, port = destination
        target = host_port(host, port)
        if not self.has_handshake:
            self.log_event("forward-refused", target=target, reason="before the handshake")
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if (host, port) == self.config.udpgw:
            self._pending_channels[chanid] = self.UDPGW
            return OPEN_SUCCEEDED
        try:
            # Blocks this connection's transport thread for the connect; fine for a test server.
            target_socket = socket.create_connection((host.strip("[]"), port), CONNECT_TIMEOUT)
        except OSError as error:
            self.log_event("forward-fail", target=target, reason=error.strerror or str(error))
            return OPEN_FAILED_CONNECT_FAILED
        target_socket.settimeout(None)
        # As Go's net package does by default (psiphond is Go): no Nagle delay on small writes.
        target_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending_channels[chanid] = (target_socket, target)
        self.log_event("forward-open", target=target)
        return OPEN_SUCCEEDED

    def serve_channels(self, transport):
        while transport.is_active():
            channel = transport.accept(1.0)
            if channel is None:
                continue
            pending = self._pending_channels.pop(channel.get_id(), None)
            if pending == self.UDPGW:
                self._start_udpgw(channel)
            elif pending == self.PACKET_TUNNEL:
                self._start_packet_tunnel(channel)
            elif pending is not None:
                target_socket, target = pending
                TcpRelay(channel, target_socket, target, self.conn, self.log).start()
            else:
                channel.close()

    def _start_udpgw(self, channel):
        service = UdpgwService(channel, self.conn, self.log, self.config.dns_resolver)
        with self._lock:
            previous, self._udpgw = self._udpgw, service
        if previous is not None:
            previous.close("replaced by a new udpgw channel")
        start_thread(service.run)

    def _start_packet_tunnel(self, channel):
        # One per connection, as psiphond keeps one per client: a new channel replaces the
        # old one, which is closed, and keeps its addresses.
        with self._lock:
            previous = self._packet_client
            client = self.server.packet_tunnel.attach(channel, self.conn, previous)
            self._packet_client = client
        if client is None:
            self.log_event("packet-tunnel-refused", reason="no address left")
            channel.close()


class PsiphonServer:
    def __init__(self, config, host_key, log):
        self.config = config
        self.host_key = host_key
        self.log = log
        self.stopping = threading.Event()
        self._connection_ids = itertools.count(1)
        self.listeners = {}  # relay protocol -> listening socket
        self.packet_tunnel = None  # a PacketTunnel with --packet-tunnel
        self._connected_refusals = config.refuse_connected
        self._connected_lock = threading.Lock()

    def take_connected_refusal(self):
        """True while --refuse-connected has refusals left (each call uses one)."""
        with self._connected_lock:
            if self._connected_refusals <= 0:
                return False
            self._connected_refusals -= 1
            return True

    def bind(self):
        family = socket.AF_INET6 if ":" in self.config.listen else socket.AF_INET
        for protocol, port in (("SSH", self.config.ssh_port), ("OSSH", self.config.ossh_port)):
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.config.listen, port))
            listener.listen(1024)
            self.listeners[protocol] = listener

    def port(self, protocol):
        return self.listeners[protocol].getsockname()[1]

    def create_packet_tunnel(self):
        tunnel = PacketTunnel(self.config, self.log)
        tunnel.create_device()
        self.packet_tunnel = tunnel

    def start(self):
        if self.packet_tunnel is not None:
            self.packet_tunnel.start()
        for protocol, listener in self.listeners.items():
            start_thread(self._accept_loop, listener, protocol)
        self.log.event("listening", ssh=host_port(self.config.listen, self.port("SSH")),
                       ossh=host_port(self.config.listen, self.port("OSSH")))

    def _accept_loop(self, listener, protocol):
        while not self.stopping.is_set():
            try:
                sock, peer = listener.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                continue  # EMFILE and friends: keep serving the others
            start_thread(self._serve_connection, sock, peer, protocol)

    def _serve_connection(self, sock, peer, protocol):
        conn = next(self._connection_ids)
        self.log.event("connect", conn, protocol=protocol, peer=host_port(*peer[:2]))
        transport = None
        try:
            ssh_socket = self._open_obfuscation(sock, conn) if protocol == "OSSH" else sock
            if ssh_socket is None:
                return
            transport = self._start_ssh(ssh_socket, conn, protocol, peer)
            if transport is not None:
                transport.server_object.serve_channels(transport)
        finally:
            if transport is not None:
                transport.close()
            sock.close()
            self.log.event("close", conn)

    def _open_obfuscation(self, sock, conn):
        if self.config.garbage_ossh:
            garbage = os.urandom(OSSH_GARBAGE_SIZE)
            self.log.event("ossh-garbage", conn, bytes=len(garbage))
            try:
                sock.sendall(garbage)
            except OSError:
                pass
            drain_until_closed(sock)
            return None
        sock.settimeout(SSH_HANDSHAKE_TIMEOUT)
        try:
            obfuscated, padding_size = accept_ossh(sock, self.config.obfuscated_key.encode("ascii"))
        except (ObfuscationError, OSError) as error:
            self.log.event("ossh-fail", conn, reason=str(error))
            drain_until_closed(sock)
            return None
        self.log.event("ossh-ok", conn, padding=padding_size)
        return obfuscated

    def _start_ssh(self, ssh_socket, conn, protocol, peer):
        transport = PsiphonTransport(ssh_socket, disabled_algorithms={"macs": ETM_MACS})
        transport.local_version = SERVER_VERSION
        transport.banner_timeout = SSH_HANDSHAKE_TIMEOUT
        transport.handshake_timeout = SSH_HANDSHAKE_TIMEOUT
        transport.add_server_key(self.host_key)
        if self.config.rekey_bytes:
            # paramiko starts a new key exchange after this many bytes either way (Go: 1 GiB).
            transport.packetizer.REKEY_BYTES = self.config.rekey_bytes
        session = Session(self, conn, protocol, peer)
        try:
            transport.start_server(server=session)
        except (paramiko.SSHException, EOFError, OSError) as error:
            if not self.config.close_mid_kex:
                self.log.event("ssh-fail", conn, reason=str(error) or type(error).__name__)
            transport.close()
            return None
        return transport

    def stop(self):
        self.stopping.set()
        for listener in self.listeners.values():
            listener.close()
        if self.packet_tunnel is not None:
            self.packet_tunnel.stop()


# --- Entry line and command line -------------------------------------------------------------

def entry_line(config, host_key, ssh_port, ossh_port):
    """docs/protocol.md section 1.1: lowercase hex of "0 0 0 0 " + compact JSON."""
    fields = {
        "ipAddress": config.listen,
        "sshPort": ssh_port,
        "sshObfuscatedPort": ossh_port,
        "sshUsername": config.username,
        "sshPassword": config.password,
        "sshObfuscatedKey": config.obfuscated_key,
        "sshHostKey": host_key.get_base64(),
        "webServerSecret": config.web_server_secret,
        "region": config.region,
        "capabilities": ["OSSH", "SSH", "handshake", "ssh-api-requests"],
        "configurationVersion": 1,
    }
    text = "0 0 0 0 " + json.dumps(fields, separators=(",", ":"))
    return text.encode("utf-8").hex()


def write_atomically(path, text):
    temporary = "%s.tmp.%d" % (path, os.getpid())
    with open(temporary, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(temporary, path)


def default_dns_resolver():
    try:
        with open("/etc/resolv.conf", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1].split("%")[0], 53
    except OSError:
        pass
    return "127.0.0.1", 53


def random_hex(size):
    return os.urandom(size // 2).hex()


def parse_args(argv):
    p = argparse.ArgumentParser(description="A Psiphon test server (SSH, OSSH, API, udpgw).")
    p.add_argument("--listen", default="127.0.0.1", help="IPv4 or IPv6 address")
    p.add_argument("--ssh-port", type=int, default=0, help="plain SSH port (0: any free port)")
    p.add_argument("--ossh-port", type=int, default=0, help="OSSH port (0: any free port)")
    p.add_argument("--obfuscated-key", default=random_hex(64), help="OSSH keyword")
    p.add_argument("--username", default="psiphon_" + random_hex(16))
    p.add_argument("--password", default=random_hex(64))
    p.add_argument("--web-server-secret", default=random_hex(64),
                   help="the handshake's server_secret")
    p.add_argument("--region", default="CA", help="client_region in the handshake reply")
    p.add_argument("--homepage", action="append", default=[], metavar="URL")
    p.add_argument("--homepages-file", metavar="FILE",
                   help="more homepages, a JSON array of strings (any bytes a hostile server sends)")
    p.add_argument("--discovered-entry", action="append", default=[], metavar="LINE",
                   help="an entry line for the handshake's encoded_server_list")
    p.add_argument("--udpgw", default="127.0.0.1:7300", metavar="HOST:PORT",
                   help="direct-tcpip target intercepted as udpgw (exact string match)")
    p.add_argument("--dns-resolver", metavar="ADDR:PORT",
                   help="where DNS-flagged udpgw packets go (default: resolv.conf's first, port 53)")
    p.add_argument("--host-key", metavar="FILE", help="RSA private key, PEM")
    p.add_argument("--write-host-key", metavar="FILE", help="save the host key, PEM")
    p.add_argument("--print-entry", action="store_true", help="print the entry line when ready")
    p.add_argument("--entry-file", metavar="FILE", help="write the entry line when ready")
    p.add_argument("--log", metavar="FILE", help="event log (default: stderr)")
    p.add_argument("--verbose", action="store_true", help="paramiko's debug log on stderr")
    p.add_argument("--refuse-handshake", action="store_true")
    p.add_argument("--refuse-connected", type=int, default=0, metavar="N",
                   help="refuse the first N psiphon-connected requests (of any client)")
    p.add_argument("--close-mid-kex", action="store_true")
    p.add_argument("--stall-after-handshake", action="store_true")
    p.add_argument("--garbage-ossh", action="store_true")
    p.add_argument("--rekey-bytes", type=int, default=0, metavar="N",
                   help="start a key exchange after N bytes (default: paramiko's 512 MiB)")
    p.add_argument("--packet-tunnel", action="store_true",
                   help="accept tun@psiphon.ca channels (needs root: creates a TUN device)")
    p.add_argument("--packet-tunnel-device", default="psitun0", metavar="NAME",
                   help="the packet tunnel's TUN device (default: psitun0)")
    config = p.parse_args(argv)
    try:
        config.listen = str(ipaddress.ip_address(config.listen))
        config.udpgw = parse_host_port(config.udpgw)
        config.dns_resolver = (parse_host_port(config.dns_resolver) if config.dns_resolver
                               else default_dns_resolver())
        config.obfuscated_key.encode("ascii")
    except (ValueError, UnicodeEncodeError) as error:
        p.error(str(error))
    for name in ("ssh_port", "ossh_port"):
        if not 0 <= getattr(config, name) < 65536:
            p.error("--%s: out of range" % name.replace("_", "-"))
    if not re.fullmatch(r"[A-Za-z0-9_.%-]{1,15}", config.packet_tunnel_device):
        p.error("--packet-tunnel-device: not a device name of 1-15 characters")
    config.homepages = config.homepage
    if config.homepages_file:
        with open(config.homepages_file, encoding="utf-8") as f:
            more = json.load(f)
        if not isinstance(more, list) or not all(isinstance(url, str) for url in more):
            p.error("--homepages-file: not a JSON array of strings")
        config.homepages = config.homepages + more
    config.discovered_entries = config.discovered_entry
    return config


def load_host_key(config):
    if config.host_key:
        key = paramiko.RSAKey.from_private_key_file(config.host_key)
    else:
        key = paramiko.RSAKey.generate(2048)
    if config.write_host_key:
        key.write_private_key_file(config.write_host_key)
    return key


def raise_open_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv=None):
    config = parse_args(argv)
    log_stream = open(config.log, "a", encoding="utf-8") if config.log else sys.stderr
    log = EventLog(log_stream)
    logging.getLogger("paramiko").addHandler(
        logging.StreamHandler() if config.verbose else logging.NullHandler())
    logging.getLogger("paramiko").setLevel(logging.DEBUG if config.verbose else logging.CRITICAL)
    raise_open_file_limit()
    threading.stack_size(THREAD_STACK_SIZE)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a stalled test asks where every thread is

    host_key = load_host_key(config)
    server = PsiphonServer(config, host_key, log)
    server.bind()
    if config.packet_tunnel:
        try:
            server.create_packet_tunnel()
        except (OSError, PacketTunnelError) as error:
            message = "--packet-tunnel: device %s: %s" % (config.packet_tunnel_device, error)
            log.event("packet-tunnel-fail", reason=message)
            sys.stderr.write("psiphond.py: %s\n" % message)
            sys.exit(1)
    # Blocked before any thread starts, so every thread inherits the mask and only sigwait()
    # below sees them: no handler runs in the middle of a lock.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server.start()

    line = entry_line(config, host_key, server.port("SSH"), server.port("OSSH"))
    if config.entry_file:
        write_atomically(config.entry_file, line + "\n")
    if config.print_entry:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    signal.sigwait(stop_signals)
    server.stop()
    log.event("stopped")
    # Relay and transport threads may sit in blocking calls; none holds anything to flush.
    os._exit(0)


if __name__ == "__main__":
    main()
