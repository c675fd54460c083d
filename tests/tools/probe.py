#!/usr/bin/python3
"""Network probe for the psi test lab.

Prints exactly one word on stdout and exits 0, so tests can compare the
outcome of a connection attempt:

    probe.py tcp ADDR PORT [--bind-dev IF] [--timeout S]
        connected | refused | unreachable | prohibited | timeout | error:<ERRNO>
    probe.py udp ADDR PORT [--bind-dev IF] [--timeout S]
        reply | eperm | refused | unreachable | prohibited | timeout | error:<ERRNO>
    probe.py dns ADDR [--tcp] [--bind-dev IF] [--timeout S]
        same words as udp (tcp when --tcp), "reply" when any answer comes
    probe.py flood ADDR PORT --seconds S [--pps N] [--bind-dev IF]
        sent=<ok sends> failed=<failed sends>

Diagnostics (elapsed milliseconds, data received) go to stderr.
"""

import argparse
import errno
import ipaddress
import random
import signal
import socket
import struct
import sys
import time

# "eperm" is only used for a failed send(): the local firewall dropped it.
ERRNO_WORDS = {
    errno.ECONNREFUSED: "refused",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.EACCES: "prohibited",
    errno.EPERM: "prohibited",
}


class Outcome(Exception):
    """Raised to end a probe with a given word."""

    def __init__(self, word):
        super().__init__(word)
        self.word = word


def errno_word(err):
    if err.errno in ERRNO_WORDS:
        return ERRNO_WORDS[err.errno]
    return "error:" + errno.errorcode.get(err.errno, str(err.errno))


def open_socket(addr, port, sock_type, bind_dev, timeout):
    """Return an unconnected socket of the right family and the peer address."""
    # Strict check first: getaddrinfo would accept shorthand like "10.1".
    ipaddress.ip_address(addr.split("%")[0])
    family, _, _, _, sockaddr = socket.getaddrinfo(
        addr, port, type=sock_type, flags=socket.AI_NUMERICHOST)[0]
    sock = socket.socket(family, sock_type)
    if bind_dev:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                            bind_dev.encode())
        except OSError as err:
            sock.close()
            raise Outcome(errno_word(err))
    sock.settimeout(timeout)
    return sock, sockaddr


def connect(sock, sockaddr):
    try:
        sock.connect(sockaddr)
    except TimeoutError:
        raise Outcome("timeout")
    except OSError as err:
        raise Outcome(errno_word(err))


def send(sock, data):
    try:
        sock.send(data)
    except OSError as err:
        raise Outcome("eperm" if err.errno == errno.EPERM else errno_word(err))


def receive(sock, size=4096):
    try:
        return sock.recv(size)
    except TimeoutError:
        raise Outcome("timeout")
    except OSError as err:
        raise Outcome(errno_word(err))


def read_until_eof(sock):
    """Read what a TCP server sends; stop at EOF, error or timeout."""
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def probe_tcp(args):
    sock, sockaddr = open_socket(args.addr, args.port, socket.SOCK_STREAM,
                                 args.bind_dev, args.timeout)
    with sock:
        connect(sock, sockaddr)
        data = read_until_eof(sock)
    print("received=%r" % data, file=sys.stderr)
    return "connected"


def probe_udp(args):
    sock, sockaddr = open_socket(args.addr, args.port, socket.SOCK_DGRAM,
                                 args.bind_dev, args.timeout)
    with sock:
        connect(sock, sockaddr)
        send(sock, b"psi-probe\n")
        data = receive(sock)
    print("received=%r" % data, file=sys.stderr)
    return "reply"


def dns_query(name="example.com"):
    """A standard recursive query for NAME, type A, class IN."""
    header = struct.pack("!HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(label)]) + label.encode()
                     for label in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)


def probe_dns(args):
    sock_type = socket.SOCK_STREAM if args.tcp else socket.SOCK_DGRAM
    sock, sockaddr = open_socket(args.addr, 53, sock_type,
                                 args.bind_dev, args.timeout)
    query = dns_query()
    with sock:
        connect(sock, sockaddr)
        if args.tcp:
            send(sock, struct.pack("!H", len(query)) + query)
        else:
            send(sock, query)
        data = receive(sock)
    if not data:
        # TCP server closed the connection without answering.
        return "error:EOF"
    print("received %d bytes" % len(data), file=sys.stderr)
    return "reply"


class Stop(Exception):
    """SIGTERM ends a flood early; it still reports what it sent."""


def stop_on_sigterm():
    def handler(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, handler)


def probe_flood(args):
    stop_on_sigterm()
    sock, sockaddr = open_socket(args.addr, args.port, socket.SOCK_DGRAM,
                                 args.bind_dev, None)
    with sock:
        connect(sock, sockaddr)
        # Non-blocking: a full send queue counts as a failed send, not a stall.
        sock.setblocking(False)
        interval = 1.0 / args.pps if args.pps else 0.0
        sent = failed = 0
        start = time.monotonic()
        deadline = start + args.seconds
        next_send = start
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if interval and now < next_send:
                    time.sleep(min(next_send - now, deadline - now))
                    continue
                next_send += interval
                try:
                    sock.send(b"psi-flood")
                    sent += 1
                except OSError:
                    failed += 1
        except Stop:
            pass
    return "sent=%d failed=%d" % (sent, failed)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)

    def common(p, timeout=True):
        p.add_argument("--bind-dev", metavar="IF",
                       help="bind to this interface (SO_BINDTODEVICE)")
        if timeout:
            p.add_argument("--timeout", type=float, default=3.0,
                           metavar="SECONDS")

    for mode in ("tcp", "udp"):
        p = sub.add_parser(mode)
        p.add_argument("addr")
        p.add_argument("port", type=int)
        common(p)

    p = sub.add_parser("dns")
    p.add_argument("addr")
    p.add_argument("--tcp", action="store_true")
    common(p)

    p = sub.add_parser("flood")
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--pps", type=float, default=0,
                   help="datagrams per second (default: as fast as possible)")
    common(p, timeout=False)

    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    run = {"tcp": probe_tcp, "udp": probe_udp,
           "dns": probe_dns, "flood": probe_flood}[args.mode]
    start = time.monotonic()
    try:
        word = run(args)
    except Outcome as outcome:
        word = outcome.word
    elapsed_ms = int((time.monotonic() - start) * 1000)
    print(word)
    print("elapsed_ms=%d" % elapsed_ms, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
