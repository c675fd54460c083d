#!/usr/bin/python3
"""Sends one datagram through a SOCKS5 proxy's UDP ASSOCIATE (RFC 1928 §7) and prints the
first reply's payload on stdout; with --show-source, "HOST PORT " (the source the proxy
names) comes first.

    socks5_udp_client.py --proxy HOST:PORT --to HOST:PORT [--message TEXT] [--timeout S]
                         [--show-source] [--dns-query NAME]

--dns-query NAME sends a DNS query for NAME's A records instead of the message, and prints the
addresses of the answer, one per line.

HOST may be an IPv6 address in brackets ([::1]:1080); --to may name a domain.
Exit status: 0 a reply came; 1 usage or network error; 2 the proxy refused the association
("socks reply N" on stderr); 3 no reply within the timeout.
"""

import argparse
import ipaddress
import socket
import struct
import sys


def split_host_port(text):
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host, int(port)


def encode_address(host, port):
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        return b"\x03" + bytes([len(name)]) + name + struct.pack("!H", port)
    kind = b"\x01" if ip.version == 4 else b"\x04"
    return kind + ip.packed + struct.pack("!H", port)


def decode_address(data):
    """(host, port, rest) from ATYP onwards."""
    kind = data[0]
    if kind == 1:
        host, end = socket.inet_ntop(socket.AF_INET, data[1:5]), 5
    elif kind == 4:
        host, end = socket.inet_ntop(socket.AF_INET6, data[1:17]), 17
    elif kind == 3:
        end = 2 + data[1]
        host = data[2:end].decode("ascii")
    else:
        raise ValueError("unknown address type %d" % kind)
    return host, struct.unpack("!H", data[end:end + 2])[0], data[end + 2:]


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("proxy closed the connection")
        data += chunk
    return data


def read_reply(control):
    version, code, _, kind = read_exactly(control, 4)
    if kind == 1:
        rest = read_exactly(control, 6)
    elif kind == 4:
        rest = read_exactly(control, 18)
    elif kind == 3:
        length = read_exactly(control, 1)
        rest = length + read_exactly(control, length[0] + 2)
    else:
        raise ValueError("unknown address type %d in reply" % kind)
    if version != 5:
        raise ValueError("not a SOCKS5 reply")
    return code, decode_address(bytes([kind]) + rest)


def dns_query(name):
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", 0x5053, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack(">HH", 1, 1)


def dns_answers(reply):
    """The IPv4 addresses in the answer section of a reply to dns_query."""
    _, _, questions, answers, _, _ = struct.unpack(">HHHHHH", reply[:12])
    offset = 12
    for _ in range(questions):
        while reply[offset] != 0:
            offset += 1 + reply[offset]
        offset += 5
    addresses = []
    for _ in range(answers):
        if reply[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while reply[offset] != 0:
                offset += 1 + reply[offset]
            offset += 1
        kind, _, _, length = struct.unpack(">HHIH", reply[offset:offset + 10])
        offset += 10
        if kind == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset:offset + 4]))
        offset += length
    return addresses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", type=split_host_port, required=True)
    parser.add_argument("--to", type=split_host_port, required=True)
    parser.add_argument("--message", default="ping")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--show-source", action="store_true")
    parser.add_argument("--dns-query", metavar="NAME")
    args = parser.parse_args()
    message = dns_query(args.dns_query) if args.dns_query else args.message.encode()

    try:
        control = socket.create_connection(args.proxy, timeout=args.timeout)
        control.sendall(b"\x05\x01\x00")
        if read_exactly(control, 2) != b"\x05\x00":
            print("proxy wants authentication", file=sys.stderr)
            return 1
        control.sendall(b"\x05\x03\x00\x01" + bytes(6))
        code, (relay_host, relay_port, _) = read_reply(control)
        if code != 0:
            print("socks reply %d" % code, file=sys.stderr)
            return 2
        if ipaddress.ip_address(relay_host).is_unspecified:
            relay_host = control.getpeername()[0]
        family = socket.AF_INET6 if ":" in relay_host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.settimeout(args.timeout)
        udp.sendto(b"\x00\x00\x00" + encode_address(*args.to) + message,
                   (relay_host, relay_port))
        try:
            datagram = udp.recv(65535)
        except socket.timeout:
            print("no reply within %g s" % args.timeout, file=sys.stderr)
            return 3
        host, port, payload = decode_address(datagram[3:])
    except (OSError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    if args.show_source:
        sys.stdout.write("%s %d " % (host, port))
    if args.dns_query:
        payload = "".join(address + "\n" for address in dns_answers(payload)).encode()
    sys.stdout.write(payload.decode("utf-8", "replace"))
    if not payload.endswith(b"\n"):
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
