#!/bin/bash
# psi-connect against Psiphon's own client (ConsoleClient) on the same real psiphond (make peer),
# over OSSH, in the same run, from the lab's client namespace to inet, both as the tunnel user:
#   console   ConsoleClient, LimitTunnelProtocols OSSH, the entry as its embedded server list
#   psi       psi-connect --protocols OSSH, the same entry
# Measured: one stream up and down through each SOCKS5 proxy (build/bench/rr), the time from
# start to "Tunnels count 1", and the RSS once the tunnel is up and at its peak after the streams.
# Rounds interleave the two; medians and min-max; ratios psi / ConsoleClient. Needs root; the
# lab namespaces are always removed. PEER_BENCH_ROUNDS and PEER_BENCH_SECONDS (3 and 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/lab.bash
source tests/lab/connect.bash
source tests/lab/peer.bash
source tests/bench/measure.bash
trap lab_down EXIT

ROUNDS=${PEER_BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${PEER_BENCH_SECONDS:-3}
RR=build/bench/rr
RR_PORT=7100
PSI_SOCKS=1083
CONSOLE_SOCKS=1093

for binary in build/psi-connect "$RR" "$PEER_PSIPHOND" "$PEER_CONSOLE_CLIENT"; do
    [ -x "$binary" ] || { echo "peer.sh: $binary missing (make all $RR; make peer)" >&2; exit 1; }
done
share/create-users share/sysusers.d/psi.conf >/dev/null
lab_up
chmod o+x "$LAB_DIR"

fail() { echo "peer.sh: $1" >&2; [ -z "${2:-}" ] || tail -n 20 "$LAB_DIR/$2" >&2; exit 1; }
inet_listening() { [ -n "$(lab_inet ss -Hltn "sport = :$1")" ]; }
milliseconds() { echo $(($(date +%s%N) / 1000000)); }

lab__spawn "$LAB_INET" rr-server "$RR" server "$LAB_INET_IP4:$RR_PORT"
lab__wait_for 5 inet_listening "$RR_PORT" || fail "rr server did not start:" rr-server.err
peer_start psiphond || fail "psiphond did not start"

psi_up() {
    local start
    start=$(milliseconds)
    connect_start psi "$LAB_DIR/psiphond.entry" --socks "$PSI_SOCKS" --http 0 --protocols OSSH
    connect_wait_tunnels psi 1 30 || fail "psi-connect did not come up"
    echo $(($(milliseconds) - start)) | result start-psi
    CLIENT_PID=$CONNECT_PID
}

console_up() {
    local start
    rm -rf "$LAB_DIR/console-data"
    start=$(milliseconds)
    peer_console_client_start console "$LAB_DIR/psiphond.entry" "$CONSOLE_SOCKS"
    peer_console_client_wait console 30 || fail "ConsoleClient did not come up"
    echo $(($(milliseconds) - start)) | result start-console
    CLIENT_PID=$PEER_CLIENT_PID
}

streams() { # NAME PORT
    local direction mode
    for direction in up down; do
        mode=$direction
        [ "$direction" = down ] || mode=up-timed  # psiphond ends a port forward at a half-close
        lab_as_user psiphon-user timeout $((SECONDS_PER_RUN + 60)) "$RR" "$mode" "$LAB_INET_IP4:$RR_PORT" \
            --seconds "$SECONDS_PER_RUN" --socks "127.0.0.1:$2" | result "stream-$1-$direction" ||
            echo "peer.sh: rr $direction through $1 failed (left out)" >&2
    done
}

measure() { # NAME PORT
    sleep 0.5
    memory "$CLIENT_PID" | result "idle-$1"
    streams "$1" "$2"
    memory "$CLIENT_PID" | result "peak-$1"
    lab__stop "$CLIENT_PID" TERM
}

echo "== psi-connect against Psiphon's ConsoleClient, OSSH, the same real psiphond"
echo "machine:  $(nproc) cores, kernel $(uname -r), before the run: $(uptime | sed 's/.*load average/load average/')"
echo "runs:     $ROUNDS interleaved rounds; streams ${SECONDS_PER_RUN}s each way"
for _ in $(seq "$ROUNDS"); do
    console_up
    measure console "$CONSOLE_SOCKS"
    psi_up
    measure psi "$PSI_SOCKS"
done
CONNECT_PID=

mib() { awk '{ printf "%.1f", $1 / 1024 }'; }
printf '\n%-9s %22s %22s %10s %10s %10s\n' client "up Gbit/s (min-max)" "down Gbit/s (min-max)" "start ms" "idle MiB" "peak MiB"
for name in console psi; do
    printf '%-9s %10s (%9s) %10s (%9s) %10s %10s %10s\n' "$name" \
        "$(number "$(median_of "stream-$name-up")" 2)" "$(values "stream-$name-up" | spread)" \
        "$(number "$(median_of "stream-$name-down")" 2)" "$(values "stream-$name-down" | spread)" \
        "$(number "$(median_of "start-$name")" 0)" \
        "$(values "idle-$name" 2 | median | mib)" "$(values "peak-$name" 1 | median | mib)"
done
echo
echo "ratio psi-connect / ConsoleClient, same psiphond, OSSH SOCKS5:" \
    "up $(ratio "$(median_of stream-psi-up)" "$(median_of stream-console-up)")," \
    "down $(ratio "$(median_of stream-psi-down)" "$(median_of stream-console-down)");" \
    "time to Tunnels 1 $(ratio "$(median_of start-psi)" "$(median_of start-console)") (lower is better);" \
    "idle RSS $(ratio "$(values idle-psi 2 | median)" "$(values idle-console 2 | median)")," \
    "peak RSS $(ratio "$(values peak-psi 1 | median)" "$(values peak-console 1 | median)") (lower is better)"
