#!/usr/bin/python3
"""A small Psiphon server for tests (PROTOCOL.md sections 3, 4, 5, 6.1, 6.2 and 11): plain SSH
and Obfuscated SSH, password auth with the JSON payload, the psiphon-handshake/-connected/-status
API over SSH global requests, direct-tcpip forwards and the udpgw service. A test fixture, not a
product: one process, threads per connection and per forward.

    psiphond.py [--listen ADDR] [--ssh-port N] [--ossh-port N]
                [--obfuscated-key KEYWORD] [--username U] [--password P]
                [--web-server-secret S] [--region CC] [--homepage URL ...]
                [--discovered-entry LINE ...] [--udpgw HOST:PORT]
                [--dns-resolver ADDR:PORT] [--host-key FILE] [--write-host-key FILE]
                [--print-entry] [--entry-file FILE] [--log FILE] [--verbose]
                [--refuse-handshake] [--close-mid-kex] [--stall-after-handshake]
                [--garbage-ossh]

Ports 0 (the default) let the kernel choose; the entry line and the "listening" log line give
the ports in use. Secrets left out are random. The host key is a fresh RSA-2048 key unless
--host-key names a PEM file.

Readiness: --print-entry prints one server entry line (hex of "0 0 0 0 " + JSON, as
psi-servers reads it) on stdout once both listeners are bound; --entry-file writes the same line
to FILE by an atomic rename after they are bound, so the file appearing means ready.

Fault switches:
    --refuse-handshake       psiphon-handshake gets REQUEST_FAILURE, then the server disconnects
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
    close conn=N
    stopped
"""

import argparse
import datetime
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
import signal
import socket
import string
import struct
import sys
import threading
import time

import paramiko
from paramiko.common import (
    MSG_GLOBAL_REQUEST,
    MSG_KEXINIT,
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


# --- Obfuscated SSH (PROTOCOL.md section 3) ---------------------------------------------------

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
    bytes after it pass raw, even when they came in the same read (PROTOCOL.md section 11)."""

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


# --- Psiphon API over SSH (PROTOCOL.md section 5) ---------------------------------------------

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


# --- Forwarding (PROTOCOL.md section 6) -------------------------------------------------------

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
    """The udpgw protocol on one channel (badvpn framing, PROTOCOL.md section 6.2):
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


class PsiphonTransport(paramiko.Transport):
    _handler_table = dict(paramiko.Transport._handler_table)
    _handler_table[MSG_GLOBAL_REQUEST] = _parse_global_request_raw
    _handler_table[MSG_KEXINIT] = _negotiate_keys_or_close


class Session(paramiko.ServerInterface):
    """One client connection: auth, the API requests, and the channels it opens."""

    UDPGW = "udpgw"

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
        self._lock = threading.Lock()

    def log_event(self, name, reason=None, **fields):
        self.log.event(name, self.conn, reason, **fields)

    # Auth (PROTOCOL.md section 4)

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

    # Global requests (PROTOCOL.md section 5)

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
        self.log_event("request-ok", kind=kind)
        return Answer(compact_json({"connected_timestamp": rfc3339_now(is_hour=True)}))

    def stall(self):
        """Blocks paramiko's transport thread: nothing more is read or answered."""
        self.log_event("stalled")
        self.server.stopping.wait()

    # Channels (PROTOCOL.md section 6)

    def check_channel_request(self, kind, chanid):
        self.log_event("channel-refused", type=kind)
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


class PsiphonServer:
    def __init__(self, config, host_key, log):
        self.config = config
        self.host_key = host_key
        self.log = log
        self.stopping = threading.Event()
        self._connection_ids = itertools.count(1)
        self.listeners = {}  # relay protocol -> listening socket

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

    def start(self):
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


# --- Entry line and command line -------------------------------------------------------------

def entry_line(config, host_key, ssh_port, ossh_port):
    """PROTOCOL.md section 1.1: lowercase hex of "0 0 0 0 " + compact JSON."""
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
    p.add_argument("--close-mid-kex", action="store_true")
    p.add_argument("--stall-after-handshake", action="store_true")
    p.add_argument("--garbage-ossh", action="store_true")
    p.add_argument("--rekey-bytes", type=int, default=0, metavar="N",
                   help="start a key exchange after N bytes (default: paramiko's 512 MiB)")
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
    config.homepages = config.homepage
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

    host_key = load_host_key(config)
    server = PsiphonServer(config, host_key, log)
    server.bind()
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
