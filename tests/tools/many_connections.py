#!/usr/bin/python3
"""Many TCP connections at once, for the psi test lab.

    many_connections.py serve --bind ADDR [--bind ADDR ...] --port P
        answers every line with the same line; prints "listening" once bound
    many_connections.py connect ADDR PORT --count N [--timeout S] [--socks HOST:PORT]
        opens N connections at the same time (through a SOCKS5 proxy's CONNECT when given),
        then on each sends a line of its own and waits for it back; prints "ok=<N> failed=<M>"
        and exits 0 when every one came back
"""

import argparse
import asyncio
import ipaddress
import resource
import struct
import sys


async def serve(binds, port):
    async def answer(reader, writer):
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(answer, bind, port, backlog=4096) for bind in binds]
    print("listening", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


async def socks_connect(proxy, address, port):
    host, _, proxy_port = proxy.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(proxy_port))
    packed = ipaddress.ip_address(address).packed
    kind = b"\x01" if len(packed) == 4 else b"\x04"
    writer.write(b"\x05\x01\x00" + b"\x05\x01\x00" + kind + packed + struct.pack(">H", port))
    await writer.drain()
    if await reader.readexactly(2) != b"\x05\x00":
        raise ConnectionError("the proxy refused the greeting")
    reply = await reader.readexactly(4)
    if reply[1] != 0:
        raise ConnectionError("socks reply %d" % reply[1])
    await reader.readexactly({1: 4, 4: 16}[reply[3]] + 2)
    return reader, writer


async def connect(address, port, count, timeout, proxy=None):
    opened = []

    async def open_one(index):
        if proxy:
            reader, writer = await socks_connect(proxy, address, port)
        else:
            reader, writer = await asyncio.open_connection(address, port)
        opened.append((index, reader, writer))

    async def exchange(index, reader, writer):
        line = b"connection %d\n" % index
        writer.write(line)
        await writer.drain()
        ok = await reader.readline() == line
        writer.close()
        return ok

    # First all of them open at once, then every one exchanges a line.
    results = await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(count)), return_exceptions=True),
                                     timeout)
    failures = [r for r in results if isinstance(r, BaseException)]
    exchanged = await asyncio.wait_for(
        asyncio.gather(*(exchange(*entry) for entry in opened), return_exceptions=True), timeout)
    ok = sum(1 for r in exchanged if r is True)
    print("ok=%d failed=%d" % (ok, count - ok), flush=True)
    if failures:
        print("first failure: %r" % failures[0], file=sys.stderr)
    return 0 if ok == count else 1


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("--bind", action="append", required=True)
    server.add_argument("--port", type=int, required=True)
    client = commands.add_parser("connect")
    client.add_argument("address")
    client.add_argument("port", type=int)
    client.add_argument("--count", type=int, required=True)
    client.add_argument("--timeout", type=float, default=60)
    client.add_argument("--socks", metavar="HOST:PORT")
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.bind, args.port))
        return 0
    return asyncio.run(connect(args.address, args.port, args.count, args.timeout, args.socks))


if __name__ == "__main__":
    sys.exit(main())
