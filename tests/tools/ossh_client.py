#!/usr/bin/python3
"""The client side of psiphond.py, for tests: dial an entry's plain SSH or OSSH port with
paramiko, check the host key against sshHostKey, log in with the JSON password, send Psiphon
API requests with raw data, and use the packet tunnel (docs/protocol.md sections 3, 4, 5 and 6.3).

    ossh_client.py --entry LINE [--protocol OSSH|SSH] [--address ADDR]

connects, sends psiphon-handshake and prints the reply on stdout.

    ossh_client.py --entry LINE --packet-udp ADDR:PORT [--packet-source ADDR]
                   [--payload TEXT] [--timeout S]

connects, sends psiphon-handshake, opens tun@psiphon.ca, sends one hand-built UDP datagram
from --packet-source (default 10.200.3.1, or fd42:42:42::1 for an IPv6 ADDR; port 40000)
and prints the first packet that comes back as one JSON line (addresses, ports, payload,
whether its checksums hold). Exit status 1 when the channel is refused or nothing comes back.
As a module:
    tunnel = connect(entry, "OSSH")
    reply = global_request(tunnel.transport, "psiphon-handshake", json_bytes)
    channel = open_packet_tunnel(tunnel)
    channel.sendall(frame(udp_packet("10.200.3.1", "10.0.0.2", 40000, 53, query)))
    reply = parse_packet(PacketReader(channel).read())
"""

import argparse
import base64
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import threading
import time

import paramiko
from paramiko.common import MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS, cMSG_GLOBAL_REQUEST

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psiphond  # noqa: E402  (the OSSH pieces are shared with the server)


def decode_entry(line):
    """Hex of "<ip> <port> <secret> <cert> <JSON>" -> the JSON object."""
    return json.loads(bytes.fromhex(line.strip()).decode("utf-8").split(" ", 4)[4])


def new_session_id():
    return os.urandom(16).hex()


def open_ossh(sock, keyword, padding_size=None):
    """Sends the preamble and returns the socket for paramiko; its inbound scanner keeps the
    server's padding lines (inbound.scanner.lines_before_version)."""
    seed = os.urandom(psiphond.OSSH_SEED_SIZE)
    outbound = psiphond.StreamObfuscation(
        psiphond.derive_ossh_key(seed, keyword, psiphond.OSSH_CLIENT_TO_SERVER), True)
    inbound = psiphond.StreamObfuscation(
        psiphond.derive_ossh_key(seed, keyword, psiphond.OSSH_SERVER_TO_CLIENT), False)
    if padding_size is None:
        padding_size = random.randint(32, psiphond.OSSH_MAX_PADDING)
    header = struct.pack(">II", psiphond.OSSH_MAGIC, padding_size) + os.urandom(padding_size)
    sock.sendall(seed + outbound.apply_to_all(header))
    obfuscated = psiphond.ObfuscatedSocket(sock, inbound, outbound)
    obfuscated.inbound = inbound
    return obfuscated


def _record_success(transport, message):
    transport.global_answer = ("success", message.get_remainder())
    paramiko.Transport._parse_request_success(transport, message)


def _record_failure(transport, message):
    transport.global_answer = ("failure", None)
    paramiko.Transport._parse_request_failure(transport, message)


class ClientTransport(paramiko.Transport):
    """Tells a REQUEST_FAILURE from the connection ending, which paramiko reports alike."""
    _handler_table = dict(paramiko.Transport._handler_table)
    _handler_table[MSG_REQUEST_SUCCESS] = _record_success
    _handler_table[MSG_REQUEST_FAILURE] = _record_failure
    global_answer = None


class Tunnel:
    def __init__(self, transport, session_id, ssh_socket):
        self.transport = transport
        self.session_id = session_id
        self.ssh_socket = ssh_socket  # an ObfuscatedSocket for OSSH

    def close(self):
        self.transport.close()


def connect(entry, protocol, address=None, session_id=None, password=None, timeout=10):
    """An authenticated paramiko Transport to the entry; raises on any failure."""
    port = entry["sshObfuscatedPort"] if protocol == "OSSH" else entry["sshPort"]
    sock = socket.create_connection((address or entry["ipAddress"], port), timeout)
    ssh_socket = sock
    if protocol == "OSSH":
        ssh_socket = open_ossh(sock, entry["sshObfuscatedKey"].encode("ascii"))
    transport = ClientTransport(ssh_socket)
    transport.banner_timeout = timeout
    transport.start_client(timeout=timeout)
    server_key = transport.get_remote_server_key().asbytes()
    if server_key != base64.b64decode(entry["sshHostKey"]):
        transport.close()
        raise paramiko.SSHException("the host key is not the entry's sshHostKey")
    session_id = session_id or new_session_id()
    payload = {"SessionId": session_id,
               "SshPassword": entry["sshPassword"] if password is None else password}
    transport.auth_password(entry["sshUsername"], json.dumps(payload))
    return Tunnel(transport, session_id, ssh_socket)


def handshake_params(entry, protocol, session_id, **overrides):
    params = {
        "propagation_channel_id": "FFFFFFFFFFFFFFFF",
        "sponsor_id": "FFFFFFFFFFFFFFFF",
        "client_version": "1",
        "client_platform": "Linux",
        "relay_protocol": protocol,
        "server_secret": entry["webServerSecret"],
        "client_session_id": session_id,
        "session_id": session_id,
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def global_request(transport, kind, data, timeout=10):
    """Sends a global request with raw data (no length prefix) and want_reply; returns the raw
    bytes after SSH_MSG_REQUEST_SUCCESS, or None on REQUEST_FAILURE. Raises TimeoutError when
    no answer comes, EOFError when the connection ends first."""
    message = paramiko.Message()
    message.add_byte(cMSG_GLOBAL_REQUEST)
    message.add_string(kind)
    message.add_boolean(True)
    message.add_bytes(data)
    done = threading.Event()
    transport.completion_event = done
    transport.global_answer = None
    transport._send_user_message(message)
    if not done.wait(timeout):
        raise TimeoutError("no %s reply in %ss" % (kind, timeout))
    if transport.global_answer is None:
        raise EOFError("the connection closed before the %s reply" % kind)
    return transport.global_answer[1]


# --- Packet tunnel (docs/protocol.md section 6.3) ----------------------------------------------

PACKET_TUNNEL_CHANNEL = psiphond.PACKET_TUNNEL_CHANNEL
CLIENT_TUN_IPV4 = "10.200.3.1"   # docs/architecture.md section 4: PsiphonTUN's own addresses
CLIENT_TUN_IPV6 = "fd42:42:42::1"
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129


def open_packet_tunnel(tunnel, timeout=10):
    """Opens tun@psiphon.ca (no extra data); raises paramiko.ChannelException on refusal."""
    return tunnel.transport.open_channel(PACKET_TUNNEL_CHANNEL, timeout=timeout)


def _packed(address):
    return ipaddress.ip_address(address).packed


def ip_packet(source, destination, protocol, segment, checksum_offset=None, ttl=64):
    """An IPv4 (no options) or IPv6 (no extension headers) packet around segment, with its
    IPv4 header checksum and, at checksum_offset in segment, the transport checksum."""
    source, destination = _packed(source), _packed(destination)
    segment = bytearray(segment)
    version = 4 if len(source) == 4 else 6
    if checksum_offset is not None:
        segment[checksum_offset:checksum_offset + 2] = b"\0\0"
        if version == 4 and protocol == psiphond.PROTO_ICMP:  # no pseudo-header in ICMPv4
            value = psiphond.internet_checksum(bytes(segment))
        else:
            value = psiphond.transport_checksum(version, source, destination, protocol, bytes(segment))
        if value == 0 and protocol == psiphond.PROTO_UDP:
            value = 0xFFFF
        segment[checksum_offset:checksum_offset + 2] = struct.pack(">H", value)
    if version == 4:
        header = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(segment),
                                       random.randint(0, 0xFFFF), 0x4000, ttl, protocol, 0,
                                       source, destination))
        header[10:12] = struct.pack(">H", psiphond.internet_checksum(bytes(header)))
    else:
        header = struct.pack(">IHBB16s16s", 6 << 28, len(segment), protocol, ttl, source, destination)
    return bytes(header) + bytes(segment)


def udp_packet(source, destination, source_port, destination_port, payload):
    segment = struct.pack(">HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    return ip_packet(source, destination, psiphond.PROTO_UDP, segment, 6)


def tcp_packet(source, destination, source_port, destination_port, flags, seq=0, ack=0,
               payload=b"", window=65535):
    segment = struct.pack(">HHIIBBHHH", source_port, destination_port, seq, ack, 5 << 4, flags,
                          window, 0, 0) + payload
    return ip_packet(source, destination, psiphond.PROTO_TCP, segment, 16)


def icmp_echo(source, destination, ident, sequence, payload):
    """An ICMP (IPv4) or ICMPv6 echo request."""
    is_v6 = ":" in source
    kind = ICMPV6_ECHO_REQUEST if is_v6 else ICMP_ECHO_REQUEST
    protocol = psiphond.PROTO_ICMPV6 if is_v6 else psiphond.PROTO_ICMP
    segment = struct.pack(">BBHHH", kind, 0, 0, ident, sequence) + payload
    return ip_packet(source, destination, protocol, segment, 2)


def frame(*packets):
    """The packet tunnel's framing: u16 BE length + packet, for each packet."""
    return b"".join(struct.pack(">H", len(packet)) + packet for packet in packets)


class PacketReader:
    """Reads framed packets from a tun@psiphon.ca channel, keeping partial frames."""

    def __init__(self, channel):
        self.channel = channel
        self._buffer = b""

    def read(self, timeout=5):
        """The next packet, or None when nothing whole came within timeout (or at EOF)."""
        deadline = time.time() + timeout
        while True:
            if len(self._buffer) >= 2:
                (size,) = struct.unpack(">H", self._buffer[:2])
                if len(self._buffer) >= 2 + size:
                    packet = self._buffer[2:2 + size]
                    self._buffer = self._buffer[2 + size:]
                    return packet
            left = deadline - time.time()
            if left <= 0:
                return None
            self.channel.settimeout(left)
            try:
                data = self.channel.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self._buffer += data


class ParsedPacket:
    """What a test looks at in a packet that came back: version, source, destination (text),
    protocol, source_port, destination_port (None without ports), tcp_flags, tcp_seq, tcp_ack,
    icmp_type, payload, and checksums_ok (IPv4 header and transport checksum both verify)."""

    def __init__(self, packet):
        self.raw = packet
        self.version = packet[0] >> 4
        if self.version == 4:
            header_length = (packet[0] & 15) * 4
            total = struct.unpack(">H", packet[2:4])[0]
            self.protocol = packet[9]
            source, destination = packet[12:16], packet[16:20]
            segment = packet[header_length:total]
            header_ok = psiphond.internet_checksum(packet[:header_length]) == 0
        else:
            total = 40 + struct.unpack(">H", packet[4:6])[0]
            self.protocol = packet[6]
            source, destination = packet[8:24], packet[24:40]
            segment = packet[40:total]
            header_ok = True
        self.source = str(ipaddress.ip_address(source))
        self.destination = str(ipaddress.ip_address(destination))
        self.source_port = self.destination_port = self.icmp_type = None
        self.tcp_flags = self.tcp_seq = self.tcp_ack = None
        if self.version == 4 and self.protocol == psiphond.PROTO_ICMP:
            transport_ok = psiphond.internet_checksum(segment) == 0
        else:
            transport_ok = psiphond.transport_checksum(
                self.version, source, destination, self.protocol, segment) == 0
        if self.protocol == psiphond.PROTO_UDP:
            self.source_port, self.destination_port = struct.unpack(">HH", segment[:4])
            self.payload = segment[8:]
            if self.version == 4 and segment[6:8] == b"\0\0":
                transport_ok = True  # no checksum
        elif self.protocol == psiphond.PROTO_TCP:
            (self.source_port, self.destination_port, self.tcp_seq,
             self.tcp_ack) = struct.unpack(">HHII", segment[:12])
            self.tcp_flags = segment[13]
            self.payload = segment[(segment[12] >> 4) * 4:]
        else:
            self.icmp_type = segment[0]
            self.payload = segment[8:]
        self.checksums_ok = header_ok and transport_ok

    def summary(self):
        return {"version": self.version, "protocol": self.protocol, "source": self.source,
                "destination": self.destination, "source_port": self.source_port,
                "destination_port": self.destination_port, "tcp_flags": self.tcp_flags,
                "icmp_type": self.icmp_type, "checksums_ok": self.checksums_ok,
                "payload": self.payload.decode("latin-1")}


def parse_packet(packet):
    return ParsedPacket(packet)


def packet_udp_round_trip(tunnel, target, source, payload, timeout):
    """Opens the packet tunnel, sends one UDP datagram, returns the first packet back."""
    host, port = target
    channel = open_packet_tunnel(tunnel, timeout)
    channel.sendall(frame(udp_packet(source, host, 40000, port, payload)))
    packet = PacketReader(channel).read(timeout)
    channel.close()
    return None if packet is None else parse_packet(packet)


def main(argv=None):
    p = argparse.ArgumentParser(description="Connect to psiphond.py and print the handshake reply "
                                "(or, with --packet-udp, a UDP reply through the packet tunnel).")
    p.add_argument("--entry", required=True, help="a server entry line")
    p.add_argument("--protocol", choices=["OSSH", "SSH"], default="OSSH")
    p.add_argument("--address", help="dial this address instead of ipAddress")
    p.add_argument("--packet-udp", metavar="ADDR:PORT",
                   help="send a UDP datagram there through tun@psiphon.ca, print the reply")
    p.add_argument("--packet-source", metavar="ADDR",
                   help="its source (default %s or %s)" % (CLIENT_TUN_IPV4, CLIENT_TUN_IPV6))
    p.add_argument("--payload", default="hello through the packet tunnel")
    p.add_argument("--timeout", type=float, default=5)
    a = p.parse_args(argv)
    target = None
    if a.packet_udp:
        try:
            target = psiphond.parse_host_port(a.packet_udp)
            ipaddress.ip_address(target[0])
        except ValueError as error:
            p.error("--packet-udp: %s" % error)
    entry = decode_entry(a.entry)
    tunnel = connect(entry, a.protocol, a.address)
    params = handshake_params(entry, a.protocol, tunnel.session_id)
    reply = global_request(tunnel.transport, "psiphon-handshake", json.dumps(params).encode())
    if reply is None:
        tunnel.close()
        sys.stderr.write("psiphon-handshake refused\n")
        return 1
    if target is None:
        tunnel.close()
        sys.stdout.write(reply.decode("utf-8") + "\n")
        return 0
    source = a.packet_source or (CLIENT_TUN_IPV6 if ":" in target[0] else CLIENT_TUN_IPV4)
    try:
        packet = packet_udp_round_trip(tunnel, target, source, a.payload.encode(), a.timeout)
    except paramiko.ChannelException as error:
        sys.stderr.write("%s refused: reason %d\n" % (PACKET_TUNNEL_CHANNEL, error.code))
        return 1
    finally:
        tunnel.close()
    if packet is None:
        sys.stderr.write("no packet came back in %ss\n" % a.timeout)
        return 1
    sys.stdout.write(json.dumps(packet.summary()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
