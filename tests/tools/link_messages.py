#!/usr/bin/python3
"""DHCP- and NDP-shaped messages for the kill switch tests, sent to any address, and a
receiver that counts the NDP ones, so a test can see whether the kill switch keeps them on
the link.

    link_messages.py dhcp ADDR --count N
        N datagrams from port 68 to ADDR port 67 (broadcast allowed), each one line;
        prints sent=<ok sends> failed=<failed sends>
    link_messages.py solicit ADDR[%IF] --count N
        N neighbour solicitations and N advertisements, hop limit 255, to ADDR (needs root);
        prints sent=<ok sends> failed=<failed sends>
    link_messages.py count-ndp --seconds S
        prints "listening", then after S seconds the number of the messages above received
"""

import argparse
import select
import socket
import sys
import time

MARK = b"psi-link-message"
NEIGHBOUR_SOLICIT, NEIGHBOUR_ADVERT = 135, 136


def send_all(sock, messages, address):
    sent = failed = 0
    for message in messages:
        try:
            sock.sendto(message, address)
            sent += 1
        except OSError:
            failed += 1
    return "sent=%d failed=%d" % (sent, failed)


def send_dhcp(args):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 68))
        messages = [MARK + b" dhcp %d\n" % number for number in range(args.count)]
        return send_all(sock, messages, (args.addr, 67))


# Type, code, checksum (the kernel fills it in), reserved, target, then the mark as payload.
def ndp_message(kind, target):
    return bytes([kind, 0, 0, 0, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, target) + MARK


def send_solicit(args):
    address = socket.getaddrinfo(args.addr, None, socket.AF_INET6, flags=socket.AI_NUMERICHOST)[0][4]
    target = args.addr.split("%")[0]
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        messages = [ndp_message(kind, target)
                    for _ in range(args.count) for kind in (NEIGHBOUR_SOLICIT, NEIGHBOUR_ADVERT)]
        return send_all(sock, messages, address)


def count_ndp(args):
    received = 0
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        print("listening", flush=True)
        deadline = time.monotonic() + args.seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            message = sock.recv(4096)
            if message[0] in (NEIGHBOUR_SOLICIT, NEIGHBOUR_ADVERT) and message.endswith(MARK):
                received += 1
    return str(received)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("dhcp", "solicit"):
        p = sub.add_parser(mode)
        p.add_argument("addr")
        p.add_argument("--count", type=int, required=True)
    p = sub.add_parser("count-ndp")
    p.add_argument("--seconds", type=float, required=True)
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    run = {"dhcp": send_dhcp, "solicit": send_solicit, "count-ndp": count_ndp}[args.mode]
    print(run(args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
