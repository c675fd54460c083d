#!/bin/bash
# psi-servers: import of 100,000 entries (time, peak RSS), pick latency on that store, and
# verification of a 10 MB signed list; references: a plain Python decoder of the same lines,
# reading the store file, and openssl plus zlib on the same package.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tools=tests/tools
servers=(build/psi-servers --config "$work/psi.conf" --store "$work/servers")
echo '{}' >"$work/psi.conf"
chmod 600 "$work/psi.conf"

measure() { # prints "seconds peak-KiB" of CMD
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null
    cat "$work/time"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== psi-servers: import and pick"
"$tools/make_entries.py" --count 100000 --regions CA,US,DE,NL,GB,FR,JP,SG >"$work/entries.txt"
printf '%-48s %10s %12s\n' "" "seconds" "peak RSS MiB"
read -r seconds kib < <(measure "${servers[@]}" import "$work/entries.txt")
printf '%-48s %10s %12s\n' "psi-servers import, 100,000 entries ($(du -m "$work/entries.txt" | cut -f1) MiB)" "$seconds" "$((kib / 1024))"
read -r seconds kib < <(measure /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    json.loads(bytes.fromhex(line.strip()).decode().split(" ", 4)[4])' "$work/entries.txt")
printf '%-48s %10s %12s\n' "reference: Python hex + JSON decode, same lines" "$seconds" "$((kib / 1024))"
read -r seconds kib < <(measure "${servers[@]}" import "$work/entries.txt")
printf '%-48s %10s %12s\n' "psi-servers import again (all unchanged)" "$seconds" "$((kib / 1024))"

pick_ms=$(for _ in $(seq 30); do
    start=$(date +%s%N); "${servers[@]}" pick --region CA --count 10 >/dev/null; end=$(date +%s%N)
    echo $(((end - start) / 1000))
done | median)
read_ms=$(for _ in $(seq 30); do
    start=$(date +%s%N); cat "$work/servers" >/dev/null; end=$(date +%s%N)
    echo $(((end - start) / 1000))
done | median)
printf '%-48s %10s\n' "" "median ms"
printf '%-48s %10s\n' "psi-servers pick --region CA --count 10" "$(echo "scale=1; $pick_ms / 1000" | bc)"
printf '%-48s %10s\n' "reference: reading the store file ($(du -m "$work/servers" | cut -f1) MiB)" "$(echo "scale=1; $read_ms / 1000" | bc)"

echo
echo "== psi-servers: a 10 MB signed remote list"
"$tools/make_package.py" keygen --out-dir "$work/key" --bits 4096 >/dev/null
head -n 1000 "$work/entries.txt" >"$work/seed.txt"
"$tools/make_package.py" --key "$work/key/private.pem" --data "$work/seed.txt" --out "$work/list.package" \
    --pad-data 10000000 2>/dev/null
read -r verify_ms decode_ms count bytes < <(build/bench/servers_bench "$work/list.package" "$work/key/public.b64")
/usr/bin/python3 -c '
import json, sys, zlib
package = json.loads(zlib.decompress(open(sys.argv[1], "rb").read()))
open(sys.argv[2], "w").write(package["data"])
import base64; open(sys.argv[3], "wb").write(base64.b64decode(package["signature"]))' \
    "$work/list.package" "$work/data" "$work/signature"
base64 -d "$work/key/public.b64" | openssl pkey -pubin -inform DER -out "$work/public.pem"
start=$(date +%s%N)
/usr/bin/python3 -c 'import sys, zlib; zlib.decompress(open(sys.argv[1], "rb").read())' "$work/list.package"
openssl dgst -sha256 -verify "$work/public.pem" -signature "$work/signature" "$work/data" >/dev/null
end=$(date +%s%N)
printf '%-48s %10s\n' "" "ms"
printf '%-48s %10s\n' "psi: inflate + verify ($((bytes / 1000000)) MB, RSA-4096)" "$verify_ms"
printf '%-48s %10s\n' "psi: decode $count entries" "$decode_ms"
printf '%-48s %10s\n' "reference: python zlib + openssl dgst -verify" "$(((end - start) / 1000000))"
