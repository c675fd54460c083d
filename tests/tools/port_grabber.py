#!/usr/bin/python3
"""A local user trying to take psi's proxy ports: loops on bind() and listen() (with SO_REUSEADDR
and SO_REUSEPORT) on each
ADDR:PORT given, about every millisecond, for as long as it runs. A port it gets is held, and
every connection to it is accepted and counted (what an attacker would read and answer).

    port_grabber.py --port 127.0.0.1:1081 --port [::1]:1081 ... [--control 127.0.0.1:1099]

--control is a port nobody holds: binding it first proves that this user can bind at all.
Prints "control bound ADDR:PORT" once, "grabbing" when the loop starts, then
"got ADDR:PORT" for each port taken and "connection ADDR:PORT" for each connection, flushed.
"""

import argparse
import select
import socket
import sys
import time


def parse(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), host, int(port)


def try_bind(family, host, port):
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As an attacker would: past TIME_WAIT leftovers, and into a port group if one is open.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
        return sock
    except OSError:
        sock.close()
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", action="append", required=True)
    parser.add_argument("--control")
    args = parser.parse_args()
    if args.control:
        held = try_bind(*parse(args.control))
        if held is None:
            sys.exit("cannot bind the control port " + args.control)
        print("control bound " + args.control, flush=True)
        held.close()
    wanted = {text: parse(text) for text in args.port}
    taken = {}
    print("grabbing", flush=True)
    while True:
        for text, target in wanted.items():
            if text not in taken:
                sock = try_bind(*target)
                if sock is not None:
                    taken[text] = sock
                    print("got " + text, flush=True)
        if taken:
            readable, _, _ = select.select(list(taken.values()), [], [], 0.001)
            for sock in readable:
                text = next(name for name, held in taken.items() if held is sock)
                try:
                    conn, _ = sock.accept()
                    conn.close()
                    print("connection " + text, flush=True)
                except OSError:
                    pass
        else:
            time.sleep(0.001)


if __name__ == "__main__":
    main()
