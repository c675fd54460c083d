#!/usr/bin/python3
"""Fake but well-formed Psiphon server entry lines (docs/protocol.md section 1.1).

    make_entries.py --count N [--seed S] [--regions CA,US,DE]
                    [--start-ip 10.77.0.1] [--protocols OSSH,SSH]
                    [--version V] [--host-key-file FILE]
                    [--bad-lines K] [--bad-kinds KIND,...]

Each line on stdout is the lowercase hex of "0 0 0 0 " + compact JSON, with
ipAddress counting up from --start-ip (data only, never dialled), region
cycled from --regions, capabilities ["handshake","ssh-api-requests"] + the
protocols, an unknown field "futureField" that a client must keep, and random
secrets drawn from a PRNG seeded with --seed: the same arguments always give
the same bytes.

sshHostKey is the base64 of an SSH public-key blob: by default a fixed
ssh-ed25519 blob (a real Ed25519 point), or the base64 field of the
OpenSSH .pub file given with --host-key-file.

--bad-lines K appends K bad lines after the good ones, cycling through the
kinds below (or only those named in --bad-kinds), and prints "KIND=COUNT" for
every kind on stderr, one per line:

    not-hex       text that is not hex at all
    odd-hex       a good line with its last hex digit removed
    no-json       hex of "0 0 0 0" (four parts, no JSON part)
    invalid-json  hex of "0 0 0 0 " + JSON cut in the middle
    bad-ip        a good entry whose ipAddress is "not-an-ip"
    bad-hostkey   a good entry whose sshHostKey is not base64

Bad lines that still carry an address use the addresses after the good ones.
The module is imported by make_package.py (make_lines / entry_line).
"""

import argparse
import base64
import ipaddress
import json
import random
import struct
import sys

BAD_KINDS = ["not-hex", "odd-hex", "no-json", "invalid-json", "bad-ip",
             "bad-hostkey"]

# A fixed Ed25519 public key (generated once with openssl genpkey).
DEFAULT_ED25519 = bytes.fromhex(
    "deff59a799ab1864eecc23c5f90fa760c21705233564b0b075d4fe41900c7bff")


def ssh_string(b):
    return struct.pack(">I", len(b)) + b


def default_host_key():
    """base64 of the SSH wire blob: string "ssh-ed25519", string key[32]."""
    blob = ssh_string(b"ssh-ed25519") + ssh_string(DEFAULT_ED25519)
    return base64.b64encode(blob).decode("ascii")


def host_key_from_pub(path):
    """The base64 field of an OpenSSH public key file ("TYPE B64 [comment])."""
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                blob = base64.b64decode(parts[1], validate=True)
                (n,) = struct.unpack(">I", blob[:4])
                if blob[4:4 + n].decode("ascii", "replace") != parts[0]:
                    raise ValueError("%s: key type %r does not match the blob"
                                     % (path, parts[0]))
                return parts[1]
    raise ValueError("%s: no public key line" % path)


def rand_hex(rng, nchars):
    return "%0*x" % (nchars, rng.getrandbits(nchars * 4))


def entry_fields(rng, ip, region, protocols, version, host_key):
    """The JSON object of one entry, keys in a fixed order."""
    return {
        "ipAddress": ip,
        "webServerPort": "8080",
        "webServerSecret": rand_hex(rng, 64),
        "sshPort": 22,
        "sshUsername": "psiphon_" + rand_hex(rng, 16),
        "sshPassword": rand_hex(rng, 64),
        "sshHostKey": host_key,
        "sshObfuscatedPort": 443,
        "sshObfuscatedKey": rand_hex(rng, 64),
        "capabilities": ["handshake", "ssh-api-requests"] + list(protocols),
        "region": region,
        "configurationVersion": version,
        "futureField": {"note": "kept as is"},
    }


def encode_text(text):
    return text.encode("utf-8").hex()


def encode_fields(fields):
    return encode_text("0 0 0 0 " + json.dumps(fields, separators=(",", ":")))


class Generator:
    """Produces good and bad lines; one PRNG so output depends on the seed."""

    def __init__(self, seed=1, regions=("CA", "US", "DE"),
                 start_ip="10.77.0.1", protocols=("OSSH", "SSH"), version=1,
                 host_key=None):
        self.rng = random.Random(seed)
        self.regions = list(regions) or ["CA"]
        self.next_ip = ipaddress.ip_address(start_ip)
        self.protocols = list(protocols)
        self.version = version
        self.host_key = host_key or default_host_key()
        self.index = 0

    def _fields(self):
        ip = str(self.next_ip)
        self.next_ip += 1
        region = self.regions[self.index % len(self.regions)]
        self.index += 1
        return entry_fields(self.rng, ip, region, self.protocols,
                            self.version, self.host_key)

    def good(self):
        return encode_fields(self._fields())

    def bad(self, kind):
        if kind == "not-hex":
            return "this is not hex " + rand_hex(self.rng, 8)
        if kind == "odd-hex":
            return self.good()[:-1]
        if kind == "no-json":
            return encode_text("0 0 0 0")
        if kind == "invalid-json":
            text = json.dumps(self._fields(), separators=(",", ":"))
            return encode_text("0 0 0 0 " + text[:len(text) // 2])
        if kind == "bad-ip":
            fields = self._fields()
            fields["ipAddress"] = "not-an-ip"
            return encode_fields(fields)
        if kind == "bad-hostkey":
            fields = self._fields()
            fields["sshHostKey"] = "!!not*base64!!"
            return encode_fields(fields)
        raise ValueError("unknown bad kind %r" % kind)


def make_lines(count, bad_lines=0, bad_kinds=BAD_KINDS, **kw):
    """Returns (lines, {kind: count}) without newlines."""
    gen = Generator(**kw)
    lines = [gen.good() for _ in range(count)]
    counts = {k: 0 for k in bad_kinds}
    for i in range(bad_lines):
        kind = bad_kinds[i % len(bad_kinds)]
        lines.append(gen.bad(kind))
        counts[kind] += 1
    return lines, counts


def csv(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Print fake Psiphon server entry lines.")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", default="1")
    p.add_argument("--regions", default="CA,US,DE")
    p.add_argument("--start-ip", default="10.77.0.1")
    p.add_argument("--protocols", default="OSSH,SSH")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--host-key-file")
    p.add_argument("--bad-lines", type=int, default=0)
    p.add_argument("--bad-kinds", default=",".join(BAD_KINDS))
    a = p.parse_args(argv)
    if a.count < 0 or a.bad_lines < 0:
        p.error("counts must be >= 0")
    kinds = csv(a.bad_kinds)
    unknown = [k for k in kinds if k not in BAD_KINDS]
    if unknown or not kinds:
        p.error("--bad-kinds: choose from " + ",".join(BAD_KINDS))
    try:
        ipaddress.ip_address(a.start_ip)
        host_key = host_key_from_pub(a.host_key_file) if a.host_key_file \
            else None
    except ValueError as e:
        p.error(str(e))
    lines, counts = make_lines(
        a.count, a.bad_lines, kinds, seed=a.seed, regions=csv(a.regions),
        start_ip=a.start_ip, protocols=csv(a.protocols), version=a.version,
        host_key=host_key)
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()
    if a.bad_lines:
        for kind in kinds:
            sys.stderr.write("%s=%d\n" % (kind, counts[kind]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
