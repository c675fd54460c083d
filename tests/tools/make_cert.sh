#!/bin/sh
# make_cert.sh DIR NAME...
#
# Throwaway TLS material for test servers, RSA 2048, valid 2 days:
#   DIR/ca.pem, DIR/ca.key          a fresh CA (give ca.pem to curl --cacert)
#   DIR/server.pem, DIR/server.key  a server certificate signed by that CA,
#                                   subjectAltName = every NAME: IPv4/IPv6
#                                   addresses as IP:, anything else as DNS:
# The first NAME is also the subject CN.  Existing files are overwritten.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 DIR NAME..." >&2
    exit 2
fi
dir=$1
shift
mkdir -p "$dir"

san=
for name in "$@"; do
    case $name in
        *:*) kind=IP ;;                                # IPv6
        *[!0-9.]*) kind=DNS ;;
        *.*.*.*) kind=IP ;;                            # IPv4
        *) kind=DNS ;;
    esac
    san="${san:+$san,}$kind:$name"
done
cn=$(printf '%.64s' "$1")

ext=$(mktemp)
csr=$(mktemp)
trap 'rm -f "$ext" "$csr"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -subj "/CN=psi test CA $$" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

cat >"$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF

openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/server.key" \
    -out "$csr" -subj "/CN=$cn" 2>/dev/null
openssl x509 -req -in "$csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 \
    -extfile "$ext" -out "$dir/server.pem" 2>/dev/null

openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null
