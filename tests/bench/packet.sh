#!/bin/bash
# Psiphon's packet tunnel against the SOCKS path and against Psiphon's own client, all through
# the real psiphond (make peer, RunPacketTunnel) over OSSH, measured in the same run from the
# client namespace to inet as uid 2000 through PsiphonTUN, with psi-fw and psi-tun up:
#   socks    psi-tun run into psi-connect's SOCKS5 proxy: a port forward per TCP connection
#   packet   psi-connect --tun: the TUN's packets over one tun@psiphon.ca channel
#   console  ConsoleClient -tunDevice PsiphonTUN, as the tunnel user (so the kill switch lets it
#            out) with the capabilities its TUN and bind-to-device code asks for
# Measured: one TCP stream up and down and 64-byte round trips (build/bench/rr), and the CPU of
# the clients, psi-tun run and psiphond. Rounds interleave the paths; medians and min-max. Needs
# root; the lab namespaces are always removed. PACKET_BENCH_ROUNDS, PACKET_BENCH_SECONDS and
# PACKET_BENCH_ITERATIONS (defaults 3, 3 and 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/fw.bash
source tests/lab/connect.bash
source tests/lab/peer.bash
source tests/bench/measure.bash
trap lab_down EXIT

ROUNDS=${PACKET_BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${PACKET_BENCH_SECONDS:-3}
ITERATIONS=${PACKET_BENCH_ITERATIONS:-2000}
RR=build/bench/rr
RR_PORT=7100
SOCKS=127.0.0.1:1090

for binary in build/psi-fw build/psi-tun build/psi-connect "$RR" "$PEER_PSIPHOND" "$PEER_CONSOLE_CLIENT"; do
    [ -x "$binary" ] || { echo "packet.sh: $binary missing (make all $RR; make peer)" >&2; exit 1; }
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
lab_client build/psi-fw --config "$LAB_DIR/psi.conf" up >/dev/null
lab_client build/psi-tun --config "$LAB_DIR/psi.conf" up >/dev/null

console_start() {
    local dir=$LAB_DIR/console-data
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '{"PropagationChannelId": "FFFFFFFFFFFFFFFF", "SponsorId": "FFFFFFFFFFFFFFFF", "LocalSocksProxyPort": 1093,
  "LocalHttpProxyPort": 0, "DisableRemoteServerListFetcher": true, "LimitTunnelProtocols": ["OSSH"],
  "DataRootDirectory": "%s"}\n' "$dir" >"$dir/config.json"
    chown -R psiphon-user "$dir"
    lab__spawn "$LAB_CLIENT" console setpriv --reuid=psiphon-user --regid=psiphon-group --clear-groups \
        --inh-caps=+net_admin,+net_raw,+dac_override --ambient-caps=+net_admin,+net_raw,+dac_override -- \
        "$PEER_CONSOLE_CLIENT" -config "$dir/config.json" -serverList "$LAB_DIR/psiphond.entry" \
        -tunDevice PsiphonTUN -tunBindInterface eth0 -tunDNSServers "$LAB_INET_IP4"
    CONNECT_PID=$LAB_LAST_PID
    peer_console_client_wait console 30 || fail "ConsoleClient did not come up"
    # Its Tunnels notice can come before its packet tunnel carries anything.
    lab__wait_for 10 lab_as "$DESKTOP_UID" timeout 3 "$RR" rr "$LAB_INET_IP4:$RR_PORT" --iterations 10 >/dev/null 2>&1 ||
        fail "ConsoleClient's packet tunnel carries nothing:" console.err
    WATCHED="connect=$CONNECT_PID server=$PEER_SERVER_PID"
}

# A fresh psiphond and a fresh PsiphonTUN for each path: a second ConsoleClient -tunDevice on
# the same TUN was seen to carry nothing.
server_start() {
    [ -z "${PEER_PID:-}" ] || lab__stop "$PEER_PID" TERM
    peer_start psiphond --dns "$LAB_INET_IP4" --packet-tunnel || fail "psiphond did not start"
    lab_client build/psi-tun --config "$LAB_DIR/psi.conf" down >/dev/null
    lab_client build/psi-tun --config "$LAB_DIR/psi.conf" up >/dev/null
}

path_start() { # socks|packet|console
    local extra=()
    server_start
    [ "$1" != console ] || { console_start; return; }
    [ "$1" = socks ] || extra=(--tun PsiphonTUN)
    connect_start connect "$LAB_DIR/psiphond.entry" --socks "${SOCKS##*:}" --http 0 --protocols OSSH "${extra[@]}"
    connect_wait_tunnels connect 1 20 || fail "psi-connect did not come up:" connect.err
    WATCHED="connect=$CONNECT_PID server=$PEER_SERVER_PID"
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
    local direction mode
    for direction in up down; do
        # Uploads without a half-close: psiphond ends a port forward at the client's end of stream.
        mode=$direction
        [ "$direction" = down ] || mode=up-timed
        client "$mode" "$LAB_INET_IP4:$RR_PORT" --seconds "$SECONDS_PER_RUN" | result "stream-$1-$direction" ||
            echo "packet.sh: $1 $direction failed (left out)" >&2
    done
}

echo "== the packet tunnel: psi-connect --tun against psi-tun run into psi-connect's SOCKS proxy and ConsoleClient -tunDevice"
echo "machine:  $(nproc) cores, kernel $(uname -r)"
echo "server:   the real psiphond over OSSH, RunPacketTunnel"
echo "runs:     $ROUNDS interleaved rounds; streams ${SECONDS_PER_RUN}s each way; rr $ITERATIONS x 64 B"
for _ in $(seq "$ROUNDS"); do
    for path in socks packet console; do
        path_start "$path"
        with_cpu "stream-$path" "$WATCHED" streams "$path"
        for _ in 1 2 3; do client rr "$LAB_INET_IP4:$RR_PORT" --iterations "$ITERATIONS" | result "rr-$path"; done
        path_stop
    done
done

echo
printf '%-8s %22s %22s %10s %10s\n' path "up Gbit/s (min-max)" "down Gbit/s (min-max)" "rr p50 µs" "rr p99 µs"
for path in socks packet console; do
    printf '%-8s %10s (%9s) %10s (%9s) %10s %10s\n' "$path" \
        "$(number "$(median_of "stream-$path-up")")" "$(values "stream-$path-up" | spread)" \
        "$(number "$(median_of "stream-$path-down")")" "$(values "stream-$path-down" | spread)" \
        "$(number "$(median_of "rr-$path" 1)" 1)" "$(number "$(median_of "rr-$path" 2)" 1)"
done
echo "ratio packet / socks: up $(ratio "$(median_of stream-packet-up)" "$(median_of stream-socks-up)")," \
    "down $(ratio "$(median_of stream-packet-down)" "$(median_of stream-socks-down)");" \
    "rr p50 $(ratio "$(median_of rr-packet 1)" "$(median_of rr-socks 1)")"
echo "ratio psi-connect --tun / ConsoleClient -tunDevice: up $(ratio "$(median_of stream-packet-up)" "$(median_of stream-console-up)")," \
    "down $(ratio "$(median_of stream-packet-down)" "$(median_of stream-console-down)");" \
    "rr p50 $(ratio "$(median_of rr-packet 1)" "$(median_of rr-console 1)") (lower is better)"
echo
echo "CPU during the streams, % of one core (200 = both cores), medians, up and down together:"
printf '%-8s %8s %12s %12s %12s\n' path machine client "psi-tun run" psiphond
for path in socks packet console; do
    printf '%-8s %8s %12s %12s %12s\n' "$path" "$(cpu_of "stream-$path" machine)" "$(cpu_of "stream-$path" connect)" \
        "$(cpu_of "stream-$path" engine)" "$(cpu_of "stream-$path" server)"
done
