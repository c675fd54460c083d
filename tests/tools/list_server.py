#!/usr/bin/python3
"""HTTPS server for one file, standing in for Psiphon's remote server list.

    list_server.py --cert CERT --key KEY --file PATH --port P
                   [--bind 127.0.0.1] [--mode MODE] [--log FILE]

GET (and HEAD) of any path returns the file.  The file is read again on
every request, so a test may replace it while the server runs.

  ETag           strong: "<hex SHA-256 of the content>"
  If-None-Match  304 when one of the listed tags (or "*") matches; W/ is
                 ignored (weak comparison, as RFC 9110 says)
  Range          "bytes=N-" and "bytes=N-M": 206 with Content-Range;
                 416 (Content-Range: bytes */LEN) when N >= LEN.  Any other
                 form (suffix, several ranges) is ignored: 200 full.
  If-Range       with Range: the range is honoured only when it equals the
                 current ETag (strong comparison); otherwise 200 full.

Modes:
  normal         the above
  cut-after:N    the first 200 (full) response sends the full Content-Length
                 but only N bytes of body, then closes the connection; every
                 later request is normal, so a client can resume with Range
  slow           every GET: 200 with no Content-Length, then one byte every
                 2 seconds (the file's bytes, then zeros) until the client
                 gives up; conditional and Range headers are ignored
  huge           every GET: 200 with Content-Length 2 GiB, zeros streamed
                 as fast as the client reads; conditionals/Range ignored
  no-length-huge every GET: 200 without Content-Length, zeros forever
                 (the body ends only when the client closes)

--log FILE appends one JSON line per request, written when the status is
chosen (before the body):
  {"method","path","range","if_none_match","if_range","status"}
(headers that were not sent are null).

Prints "listening" on stdout once the socket is bound and listening.
Exit status 2 when the port cannot be bound (e.g. in use), so a caller can
pick another port.
"""

import argparse
import hashlib
import http.server
import json
import re
import socket
import ssl
import sys
import threading
import time

HUGE = 2 * 1024 ** 3
CHUNK = 64 * 1024


class State:
    def __init__(self, path, mode, cut, log_path):
        self.path = path
        self.mode = mode
        self.cut = cut           # bytes of body for the first full response
        self.cut_done = False
        self.log_path = log_path
        self.lock = threading.Lock()

    def log(self, rec):
        if not self.log_path:
            return
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self.lock:
            with open(self.log_path, "a") as f:
                f.write(line)

    def take_cut(self):
        """True exactly once: for the first full response in cut mode."""
        with self.lock:
            if self.mode != "cut-after" or self.cut_done:
                return False
            self.cut_done = True
            return True


def etag_list(value):
    return [t.strip() for t in value.split(",") if t.strip()]


def weak_strip(tag):
    return tag[2:] if tag.startswith("W/") else tag


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "psi-list-server/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def do_HEAD(self):
        self.handle_get(head=True)

    def do_GET(self):
        self.handle_get(head=False)

    def record(self, status):
        h = self.headers
        self.server.state.log({
            "method": self.command, "path": self.path,
            "range": h.get("Range"), "if_none_match": h.get("If-None-Match"),
            "if_range": h.get("If-Range"), "status": status})

    def handle_get(self, head):
        st = self.server.state
        if st.mode in ("slow", "huge", "no-length-huge"):
            return self.stream(st.mode, head)
        try:
            with open(st.path, "rb") as f:
                body = f.read()
        except OSError as e:
            self.record(500)
            self.send_error(500, "cannot read file: %s" % e.strerror)
            return
        etag = '"%s"' % hashlib.sha256(body).hexdigest()
        total = len(body)

        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tags = [weak_strip(t) for t in etag_list(inm)]
            if "*" in tags or etag in tags:
                self.record(304)
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return

        start = end = None
        rng = self.headers.get("Range")
        if rng is not None:
            m = re.fullmatch(r"\s*bytes\s*=\s*(\d+)\s*-\s*(\d*)\s*", rng)
            if_range = self.headers.get("If-Range")
            if m and (if_range is None or if_range.strip() == etag):
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else total - 1
                if m.group(2) and end < start:
                    start = end = None       # invalid: ignore the header
                else:
                    end = min(end, total - 1)

        if start is not None and start >= total:
            self.record(416)
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % total)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return

        if start is not None:
            part = body[start:end + 1]
            self.record(206)
            self.send_response(206)
            self.send_header("Content-Range",
                             "bytes %d-%d/%d" % (start, end, total))
        else:
            part = body
            self.record(200)
            self.send_response(200)
        cut = start is None and not head and st.take_cut()
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(part)))
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        if cut:
            self.wfile.write(part[:st.cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(part)

    def stream(self, mode, head):
        self.record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode == "huge":
            self.send_header("Content-Length", str(HUGE))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if head:
            return
        self.wfile.flush()
        try:
            if mode == "slow":
                try:
                    with open(self.server.state.path, "rb") as f:
                        data = f.read()
                except OSError:
                    data = b""
                i = 0
                while True:
                    self.wfile.write(data[i:i + 1] if i < len(data) else b"\0")
                    self.wfile.flush()
                    i += 1
                    time.sleep(2)
            zeros = bytes(CHUNK)
            left = HUGE if mode == "huge" else None
            while left is None or left > 0:
                n = CHUNK if left is None else min(CHUNK, left)
                self.wfile.write(zeros[:n])
                if left is not None:
                    left -= n
            self.wfile.flush()
        except (OSError, ValueError):
            pass       # the client went away: that is the point


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, (ssl.SSLError, ConnectionError, TimeoutError)):
            return      # a client that rejected our certificate, etc.
        sys.stderr.write("list_server: %s: %r\n" % (client_address, e))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--mode", default="normal")
    p.add_argument("--log")
    a = p.parse_args(argv)

    mode, cut = a.mode, None
    if mode.startswith("cut-after:"):
        try:
            cut = int(mode.split(":", 1)[1])
        except ValueError:
            cut = -1
        if cut < 0:
            p.error("cut-after:N needs N >= 0")
        mode = "cut-after"
    elif mode not in ("normal", "slow", "huge", "no-length-huge"):
        p.error("unknown --mode %r" % a.mode)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)

    Server.address_family = socket.AF_INET6 if ":" in a.bind \
        else socket.AF_INET
    try:
        httpd = Server((a.bind, a.port), Handler)
    except OSError as e:
        sys.stderr.write("list_server: cannot bind %s:%d: %s\n"
                         % (a.bind, a.port, e.strerror))
        return 2
    # The TLS handshake happens lazily, in the handler thread, so a slow or
    # broken client cannot stall accept().
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                   do_handshake_on_connect=False)
    httpd.state = State(a.file, mode, cut, a.log)
    port = httpd.server_address[1]
    sys.stderr.write("list_server: https://%s:%d/ mode=%s\n"
                     % (a.bind, port, a.mode))
    print("listening", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
