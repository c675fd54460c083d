#!/usr/bin/python3
"""Many TCP connections at once, for the psi test lab.

    many_connections.py serve --bind ADDR [--bind ADDR ...] --port P
        answers every line with the same line; prints "listening" once bound
    many_connections.py connect ADDR PORT --count N [--timeout S]
        opens N connections at the same time, then on each sends a line of its own and
        waits for it back; prints "ok=<N> failed=<M>" and exits 0 when every one came back
"""

import argparse
import asyncio
import resource
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


async def connect(address, port, count, timeout):
    opened = []

    async def open_one(index):
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
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.bind, args.port))
        return 0
    return asyncio.run(connect(args.address, args.port, args.count, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
