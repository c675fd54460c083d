#!/usr/bin/python3
"""A tiny authoritative DNS server for the psi test lab (RFC 1035), over UDP and TCP
(two-byte length prefix, several queries per connection).

    dns_server.py --bind ADDR [--bind ADDR ...] [--port 53] --record NAME=IP [--record ...]

A name's IPv4 values answer A queries, its IPv6 values AAAA queries (a name may be given
several times); any other type of a known name, or the family it lacks, answers NOERROR with
no answers; unknown names answer NXDOMAIN. Replies echo the question, set AA, TTL 60.
Malformed packets and responses are ignored; opcodes other than QUERY get NOTIMP, a count
of questions other than one FORMERR. A UDP reply over 512 bytes is cut to the question with
TC set.

Prints "listening" once every socket is bound, then one line per query:
"query PROTO NAME TYPE" (PROTO udp|tcp; TYPE A, AAAA, ... or TYPEnnn), flushed.
"""

import argparse
import ipaddress
import socket
import struct
import sys
import threading

TTL = 60
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
              28: "AAAA", 33: "SRV", 41: "OPT", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_NOTIMP = 1, 3, 4
FLAG_QR, FLAG_AA, FLAG_TC, FLAG_RD = 0x8000, 0x0400, 0x0200, 0x0100
UDP_LIMIT = 512

records = {}            # lower-case name without the final dot -> {1: [packed], 28: [packed]}
log_lock = threading.Lock()


def log(line):
    with log_lock:
        print(line, flush=True)


def parse_question(message):
    """(name for display, lower-case name, qtype, qclass, end offset) of the question, or None."""
    labels, at = [], 12
    while True:
        if at >= len(message):
            return None
        length = message[at]
        if length == 0:
            at += 1
            break
        if length > 63 or at + 1 + length > len(message):
            return None                       # a pointer or an extended label: not in a query
        labels.append(message[at + 1:at + 1 + length])
        at += 1 + length
    if at + 4 > len(message) or at - 12 > 255:
        return None
    qtype, qclass = struct.unpack("!HH", message[at:at + 4])
    text = ".".join(label_text(label) for label in labels)
    return text, text.lower(), qtype, qclass, at + 4


def label_text(label):
    """A label as in a zone file: printable ASCII as is, others as \\DDD."""
    return "".join(chr(byte) if 0x21 <= byte <= 0x7e and chr(byte) not in ".\\"
                   else "\\%03d" % byte for byte in label)


def answer(message, protocol):
    """The reply to MESSAGE, or None to say nothing."""
    if len(message) < 12:
        return None
    query_id, flags, question_count = struct.unpack("!HHH", message[:6])
    if flags & FLAG_QR:
        return None
    opcode = (flags >> 11) & 0xF
    reply_flags = FLAG_QR | FLAG_AA | (flags & FLAG_RD) | (opcode << 11)
    if opcode != 0:
        return struct.pack("!HHHHHH", query_id, reply_flags | RCODE_NOTIMP, 0, 0, 0, 0)
    if question_count != 1:
        return struct.pack("!HHHHHH", query_id, reply_flags | RCODE_FORMERR, 0, 0, 0, 0)
    parsed = parse_question(message)
    if parsed is None:
        return None
    shown, name, qtype, qclass, end = parsed
    log("query %s %s %s" % (protocol, shown or ".", TYPE_NAMES.get(qtype, "TYPE%d" % qtype)))
    question = message[12:end]
    values = []
    if name not in records:
        reply_flags |= RCODE_NXDOMAIN
    elif qclass == CLASS_IN:
        values = records[name].get(qtype, [])
    body = b"".join(struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, TTL, len(value)) + value
                    for value in values)
    header = struct.pack("!HHHHHH", query_id, reply_flags, 1, len(values), 0, 0)
    reply = header + question + body
    if protocol == "udp" and len(reply) > UDP_LIMIT:
        reply = struct.pack("!HHHHHH", query_id, reply_flags | FLAG_TC, 1, 0, 0, 0) + question
    return reply


def serve_udp(sock):
    while True:
        try:
            message, source = sock.recvfrom(65535)
        except OSError:
            continue
        reply = answer(message, "udp")
        if reply is not None:
            try:
                sock.sendto(reply, source)
            except OSError:
                pass


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_tcp_connection(connection):
    with connection:
        connection.settimeout(30)
        try:
            while True:
                prefix = read_exactly(connection, 2)
                if prefix is None:
                    return
                message = read_exactly(connection, struct.unpack("!H", prefix)[0])
                if message is None:
                    return
                reply = answer(message, "tcp")
                if reply is not None:
                    connection.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass


def serve_tcp(sock):
    while True:
        try:
            connection, _ = sock.accept()
        except OSError:
            continue
        threading.Thread(target=serve_tcp_connection, args=(connection,), daemon=True).start()


def add_record(text):
    name, separator, value = text.partition("=")
    name = name.strip().rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected NAME=IP, got %r" % text)
    if not separator or not name:
        raise argparse.ArgumentTypeError("expected NAME=IP, got %r" % text)
    qtype = TYPE_A if ip.version == 4 else TYPE_AAAA
    records.setdefault(name, {}).setdefault(qtype, []).append(ip.packed)
    return text


def bound_socket(address, port, kind):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    return sock


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", action="append", required=True, metavar="ADDR")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--record", type=add_record, action="append", required=True,
                        metavar="NAME=IP")
    args = parser.parse_args()
    threads = []
    for address in args.bind:
        threads.append(threading.Thread(
            target=serve_udp, args=(bound_socket(address, args.port, socket.SOCK_DGRAM),),
            daemon=True))
        threads.append(threading.Thread(
            target=serve_tcp, args=(bound_socket(address, args.port, socket.SOCK_STREAM),),
            daemon=True))
    for thread in threads:
        thread.start()
    log("listening")
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    sys.exit(main())
