#!/bin/bash
# Psiphon's packet tunnel (issue 7) against the SOCKS path, both through the lab's Psiphon test
# server over OSSH, measured in the same run from the client namespace to inet as uid 2000
# through PsiphonTUN, with psi-fw and psi-tun up:
#   socks   psi-tun run into psi-connect's SOCKS5 proxy: a port forward per TCP connection
#   packet  psi-connect --tun: the TUN's packets over one tun@psiphon.ca channel
# Measured: one TCP stream up and down and 64-byte round trips (build/bench/rr), and the CPU of
# psi-connect, psi-tun run and the test server. The test server is Python (paramiko): its speed
# bounds both paths, so the absolute numbers are its; the ratio compares the two client paths
# through the same server. Rounds interleave the paths; medians and min-max. Needs root; the lab
# namespaces are always removed. PACKET_BENCH_ROUNDS, PACKET_BENCH_SECONDS and
# PACKET_BENCH_ITERATIONS (defaults 3, 3 and 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/fw.bash
source tests/lab/connect.bash
source tests/bench/measure.bash
trap lab_down EXIT

ROUNDS=${PACKET_BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${PACKET_BENCH_SECONDS:-3}
ITERATIONS=${PACKET_BENCH_ITERATIONS:-2000}
RR=build/bench/rr
RR_PORT=7100
SOCKS=127.0.0.1:1090

for binary in build/psi-fw build/psi-tun build/psi-connect "$RR"; do
    [ -x "$binary" ] || { echo "packet.sh: $binary missing (make all $RR)" >&2; exit 1; }
done
share/create-users share/sysusers.d/psi.conf >/dev/null
lab_up
mkdir -p "$LAB_DIR/run"
printf '{\n  "RunDirectory": "%s",\n  "TunDnsResolver": "%s"\n}\n' "$LAB_DIR/run" "$LAB_INET_IP4" >"$LAB_DIR/psi.conf"
chmod 600 "$LAB_DIR/psi.conf"
chmod o+x "$LAB_DIR"

fail() { echo "packet.sh: $1" >&2; [ -z "${2:-}" ] || cat "$LAB_DIR/$2" >&2; exit 1; }
inet_listening() { [ -n "$(lab_inet ss -Hltn "sport = :$1")" ]; }

lab__spawn "$LAB_INET" rr-server "$RR" server "$LAB_INET_IP4:$RR_PORT"
lab__wait_for 5 inet_listening "$RR_PORT" || fail "rr server did not start:" rr-server.err
psiphond_start psiphond --dns-resolver "$LAB_INET_IP4:53" --packet-tunnel
lab_client build/psi-fw --config "$LAB_DIR/psi.conf" up >/dev/null
lab_client build/psi-tun --config "$LAB_DIR/psi.conf" up >/dev/null

path_start() { # socks|packet
    local extra=()
    [ "$1" = socks ] || extra=(--tun PsiphonTUN)
    connect_start connect "$LAB_DIR/psiphond.entry" --socks "${SOCKS##*:}" --http 0 --protocols OSSH "${extra[@]}"
    connect_wait_tunnels connect 1 20 || fail "psi-connect did not come up:" connect.err
    WATCHED="connect=$CONNECT_PID server=$PSIPHOND_PID"
    [ "$1" = socks ] || return 0
    lab__spawn "$LAB_CLIENT" engine build/psi-tun --config "$LAB_DIR/psi.conf" run --socks "$SOCKS"
    ENGINE_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q "carried into" "$LAB_DIR/engine.out" || fail "psi-tun run did not start:" engine.err
    WATCHED+=" engine=$ENGINE_PID"
}
path_stop() {
    [ -z "${ENGINE_PID:-}" ] || lab__stop "$ENGINE_PID" TERM
    lab__stop "$CONNECT_PID" TERM
    ENGINE_PID= CONNECT_PID=
}

client() { lab_as "$DESKTOP_UID" timeout $((SECONDS_PER_RUN + 60)) "$RR" "$@"; }
streams() { # PATH
    local direction
    for direction in up down; do
        client "$direction" "$LAB_INET_IP4:$RR_PORT" --seconds "$SECONDS_PER_RUN" | result "stream-$1-$direction" ||
            echo "packet.sh: $1 $direction failed (left out)" >&2
    done
}

echo "== the packet tunnel: psi-connect --tun against psi-tun run into psi-connect's SOCKS proxy"
echo "machine:  $(nproc) cores, kernel $(uname -r)"
echo "server:   the lab's Psiphon test server (Python) over OSSH, with --packet-tunnel"
echo "runs:     $ROUNDS interleaved rounds; streams ${SECONDS_PER_RUN}s each way; rr $ITERATIONS x 64 B"
for _ in $(seq "$ROUNDS"); do
    for path in socks packet; do
        path_start "$path"
        with_cpu "stream-$path" "$WATCHED" streams "$path"
        for _ in 1 2 3; do client rr "$LAB_INET_IP4:$RR_PORT" --iterations "$ITERATIONS" | result "rr-$path"; done
        path_stop
    done
done

echo
printf '%-8s %22s %22s %10s %10s\n' path "up Gbit/s (min-max)" "down Gbit/s (min-max)" "rr p50 µs" "rr p99 µs"
for path in socks packet; do
    printf '%-8s %10s (%9s) %10s (%9s) %10s %10s\n' "$path" \
        "$(number "$(median_of "stream-$path-up")")" "$(values "stream-$path-up" | spread)" \
        "$(number "$(median_of "stream-$path-down")")" "$(values "stream-$path-down" | spread)" \
        "$(number "$(median_of "rr-$path" 1)" 1)" "$(number "$(median_of "rr-$path" 2)" 1)"
done
echo "ratio packet / socks: up $(ratio "$(median_of stream-packet-up)" "$(median_of stream-socks-up)")," \
    "down $(ratio "$(median_of stream-packet-down)" "$(median_of stream-socks-down)");" \
    "rr p50 $(ratio "$(median_of rr-packet 1)" "$(median_of rr-socks 1)")"
echo
echo "CPU during the streams, % of one core (200 = both cores), medians, up and down together:"
printf '%-8s %8s %12s %12s %12s\n' path machine psi-connect "psi-tun run" "test server"
for path in socks packet; do
    printf '%-8s %8s %12s %12s %12s\n' "$path" "$(cpu_of "stream-$path" machine)" "$(cpu_of "stream-$path" connect)" \
        "$(cpu_of "stream-$path" engine)" "$(cpu_of "stream-$path" server)"
done
