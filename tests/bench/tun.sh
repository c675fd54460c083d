#!/bin/bash
# psi-tun (issue 5, docs/packet-engine.md §5): one TCP stream up and down, and 64-byte round trips, from the
# lab's client namespace to the inet namespace by three paths, all measured in the same run:
#   (a) wire   the tunnel user straight over the veths (it bypasses the TUN)
#   (b) socks  an application that speaks SOCKS5 itself to the proxy; no TUN
#   (c) tun    uid 2000 through PsiphonTUN, psi-tun run and the same proxy, with psi-fw up
#   (b+) hop   with ssh -D, iperf3 only: SOCKS through socks5_relay and then ssh -D, the one more
#              loopback TCP connection and splice relay that (c) has too, without a TUN: how much
#              of the TUN tax any TUN-to-SOCKS design that ends the application's TCP locally pays
#              (its psi-tun column is socks5_relay, which makes that hop)
# Three proxies, all run as the tunnel user: build/bench/socks5_relay (splice, isolates the TUN
# layer), OpenSSH ssh -N -D -c aes128-gcm to a real sshd in inet, and psi-connect to the same sshd
# (plain SSH, --no-handshake; the cipher libssh picks, chacha20-poly1305). Streams are measured with
# build/bench/rr (which speaks SOCKS5 itself) and with iperf3 (through proxychains4 for (b) and
# (b+), when it is installed). Configurations are interleaved round by round; medians and min-max.
# Needs root; the lab namespaces are always removed. TUN_BENCH_ROUNDS, TUN_BENCH_SECONDS and
# TUN_BENCH_ITERATIONS shorten or lengthen it (defaults 3, 3 and 5000: about 4 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/fw.bash
source tests/lab/sshd.bash
source tests/lab/connect.bash
source tests/bench/measure.bash
trap lab_down EXIT

ROUNDS=${TUN_BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${TUN_BENCH_SECONDS:-3}
ITERATIONS=${TUN_BENCH_ITERATIONS:-5000}
RR=build/bench/rr
RELAY=build/bench/socks5_relay
RR_PORT=7100
IPERF_PORT=5201
RELAY_SOCKS=127.0.0.1:1080
SSH_SOCKS=127.0.0.1:1081
CONNECT_SOCKS=127.0.0.1:1082
SSH_CIPHER=aes128-gcm@openssh.com
PROXYCHAINS=$(command -v proxychains4 || true)

for binary in build/psi-fw build/psi-tun build/psi-connect "$RR" "$RELAY"; do
    [ -x "$binary" ] || { echo "tun.sh: $binary missing (make all $RR $RELAY)" >&2; exit 1; }
done

share/create-users share/sysusers.d/psi.conf >/dev/null
lab_up
mkdir -p "$LAB_DIR/run"
printf '{\n  "TunnelUser": "%s",\n  "RunDirectory": "%s"\n}\n' "$TUNNEL_USER" "$LAB_DIR/run" >"$LAB_DIR/psi.conf"
chmod 600 "$LAB_DIR/psi.conf"
chmod o+x "$LAB_DIR"
psi_fw() { lab_client build/psi-fw --config "$LAB_DIR/psi.conf" "$@"; }
psi_tun() { lab_client build/psi-tun --config "$LAB_DIR/psi.conf" "$@"; }

# --- the lab: servers in inet, both proxies in the client, psi-fw and psi-tun up --------------

fail() { echo "tun.sh: $1" >&2; [ -z "${2:-}" ] || cat "$LAB_DIR/$2" >&2; exit 1; }
inet_listening() { [ -n "$(lab_inet ss -Hltn "sport = :$1")" ]; }

lab__spawn "$LAB_INET" rr-server "$RR" server "$LAB_INET_IP4:$RR_PORT"
lab__wait_for 5 inet_listening "$RR_PORT" || fail "rr server did not start:" rr-server.err
lab__spawn "$LAB_INET" iperf3-server iperf3 -s -B "$LAB_INET_IP4" -p "$IPERF_PORT"
lab__wait_for 5 inet_listening "$IPERF_PORT" || fail "iperf3 -s did not start:" iperf3-server.err
lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 22

lab__spawn "$LAB_CLIENT" relay setpriv --reuid="$TUNNEL_USER" --regid=psiphon-group --clear-groups \
    --inh-caps=-all --bounding-set=-all -- "$RELAY" "$RELAY_SOCKS"
RELAY_PID=$LAB_LAST_PID
lab__wait_for 5 lab__socks_listening "$LAB_CLIENT" "${RELAY_SOCKS##*:}" || fail "socks5_relay did not start:" relay.err

# ssh -N -D as the tunnel user, as lab_ssh_socks_start starts it, with the cipher pinned.
ssh_socks_start() {
    local dir=$LAB_DIR/sshd home=$LAB_DIR/sshd/user-$TUNNEL_USER
    chmod o+x "$dir"
    mkdir -p "$home"
    cp "$dir/client_key" "$dir/known_hosts" "$home/"
    chown -R "$TUNNEL_USER:psiphon-group" "$home"
    chmod 700 "$home"
    chmod 600 "$home/client_key" "$home/known_hosts"
    lab__spawn "$LAB_CLIENT" ssh-socks setpriv --reuid="$TUNNEL_USER" --regid=psiphon-group --clear-groups \
        --inh-caps=-all --bounding-set=-all -- \
        /usr/bin/ssh -F none -N -D "$SSH_SOCKS" -c "$SSH_CIPHER" \
        -i "$home/client_key" -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$home/known_hosts" \
        -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no \
        -o BatchMode=yes -o ExitOnForwardFailure=yes -o ConnectTimeout=5 \
        -p "$LAB_SSHD_PORT" "root@$LAB_SSHD_ADDR"
    SSH_PID=$LAB_LAST_PID
    lab__wait_for 10 lab__socks_listening "$LAB_CLIENT" "${SSH_SOCKS##*:}" || fail "ssh -D did not come up:" ssh-socks.err
}
ssh_socks_start

connect_sshd_entry >"$LAB_DIR/sshd.entries"
chmod 644 "$LAB_DIR/sshd.entries"
connect_start psi-connect "$LAB_DIR/sshd.entries" --socks "${CONNECT_SOCKS##*:}" --http 0 --no-handshake \
    --identity "$(connect_user_key)"
connect_wait_tunnels psi-connect 1 20 || fail "psi-connect did not come up"

for socks in "$RELAY_SOCKS" "$SSH_SOCKS" "$CONNECT_SOCKS"; do
    printf 'strict_chain\nquiet_mode\n[ProxyList]\nsocks5 %s %s\n' "${socks%:*}" "${socks##*:}" \
        >"$LAB_DIR/proxychains-${socks##*:}.conf"
done
printf 'strict_chain\nquiet_mode\n[ProxyList]\nsocks5 %s %s\nsocks5 %s %s\n' "${RELAY_SOCKS%:*}" "${RELAY_SOCKS##*:}" \
    "${SSH_SOCKS%:*}" "${SSH_SOCKS##*:}" >"$LAB_DIR/proxychains-hop.conf"

psi_fw up >/dev/null
psi_tun up >/dev/null

# One engine at a time owns the TUN: started per proxy, stopped after that proxy's runs.
engine_start() { # SOCKS
    lab__spawn "$LAB_CLIENT" engine build/psi-tun --config "$LAB_DIR/psi.conf" run --no-udp --socks "$1"
    ENGINE_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q "carried into" "$LAB_DIR/engine.out" || fail "psi-tun run did not start:" engine.err
}
engine_stop() {
    # The counters as psi-tun stats shows them, kept in case something looks wrong.
    psi_tun --json stats >>"$LAB_DIR/engine-stats.json" 2>&1 || true
    memory "$ENGINE_PID" >>"$LAB_DIR/engine-memory"
    lab__stop "$ENGINE_PID" TERM
    [ ! -s "$LAB_DIR/engine.err" ] || cat "$LAB_DIR/engine.err" >>"$LAB_DIR/engine-errors"
}

# --- measuring ---------------------------------------------------------------------------------

# Runs a client as the tunnel user (by name) or as a uid. A client that hangs (a stalled engine)
# is stopped after a minute, and the engine's counters are shown.
as_client() { # WHO CMD...
    local who=$1 status=0
    shift
    if [ "$who" = "$TUNNEL_USER" ]; then
        lab_as_user "$who" timeout $((SECONDS_PER_RUN + 60)) "$@" || status=$?
    else
        lab_as "$who" timeout $((SECONDS_PER_RUN + 60)) "$@" || status=$?
    fi
    if [ "$status" = 124 ]; then
        echo "tun.sh: timed out as $who: $*; psi-tun stats:" >&2
        psi_tun stats >&2 || true
    fi
    return "$status"
}

# Results go to $LAB_DIR/results/TOOL-PATH-MEASURE (result, in measure.bash).
rr_streams() { # PATH WHO [--socks S]: up and down, "Gbit/s bytes seconds"
    local path=$1 who=$2 direction
    shift 2
    for direction in up down; do
        as_client "$who" "$RR" "$direction" "$LAB_INET_IP4:$RR_PORT" --seconds "$SECONDS_PER_RUN" "$@" |
            result "rr-$path-$direction"
    done
}
rr_round_trips() { # PATH WHO [--socks S]: "p50 p99"
    local path=$1 who=$2
    shift 2
    as_client "$who" "$RR" rr "$LAB_INET_IP4:$RR_PORT" --iterations "$ITERATIONS" "$@" | result "rr-$path-rr"
}
iperf_streams() { # PATH WHO [PROXYCHAINS-CONFIG]: up and down, "Gbit/s retransmissions"
    local path=$1 who=$2 config=${3:-} direction reverse prefix=()
    [ -z "$config" ] || prefix=("$PROXYCHAINS" -q -f "$config")
    for direction in up down; do
        reverse=()
        [ "$direction" = up ] || reverse=(-R)
        as_client "$who" "${prefix[@]}" iperf3 -J -c "$LAB_INET_IP4" -p "$IPERF_PORT" -t "$SECONDS_PER_RUN" \
            "${reverse[@]}" >"$LAB_DIR/iperf.json" || fail "iperf3 $path $direction failed:" iperf.json
        jq -r '"\(.end.sum_received.bits_per_second / 1e9) \(.end.sum_sent.retransmits)"' "$LAB_DIR/iperf.json" |
            result "iperf3-$path-$direction"
    done
}

# Read while an engine is attached: IFF_VNET_HDR (0x4000) in tun_flags, and TSO.
read_device_features() {
    TUN_FLAGS=$(lab_client cat /sys/class/net/PsiphonTUN/tun_flags)
    TSO="unknown (no ethtool)"
    if command -v ethtool >/dev/null; then
        TSO=$(lab_client ethtool -k PsiphonTUN | awk -F': ' '/^tcp-segmentation-offload/ { print $2 }')
    fi
}

# One proxy's round: socks then tun (and the wire first, with the relay), rr then iperf3.
proxy_round() { # NAME SOCKS PROXY-PID
    local name=$1 socks=$2 proxy_pid=$3
    engine_start "$socks"
    [ -n "${TUN_FLAGS:-}" ] || read_device_features
    if [ "$name" = relay ]; then with_cpu rr-wire "" rr_streams wire "$TUNNEL_USER"; fi
    with_cpu "rr-socks-$name" "proxy=$proxy_pid" rr_streams "socks-$name" "$DESKTOP_UID" --socks "$socks"
    with_cpu "rr-tun-$name" "engine=$ENGINE_PID proxy=$proxy_pid" rr_streams "tun-$name" "$DESKTOP_UID"
    # Round trips are cheap and noisy: several interleaved runs per round.
    for _ in 1 2 3; do
        [ "$name" != relay ] || rr_round_trips wire "$TUNNEL_USER"
        rr_round_trips "socks-$name" "$DESKTOP_UID" --socks "$socks"
        rr_round_trips "tun-$name" "$DESKTOP_UID"
    done
    if [ "$name" = relay ]; then with_cpu iperf3-wire "" iperf_streams wire "$TUNNEL_USER"; fi
    if [ -n "$PROXYCHAINS" ]; then
        with_cpu "iperf3-socks-$name" "proxy=$proxy_pid" \
            iperf_streams "socks-$name" "$DESKTOP_UID" "$LAB_DIR/proxychains-${socks##*:}.conf"
        if [ "$name" = ssh ]; then
            with_cpu iperf3-hop-ssh "engine=$RELAY_PID proxy=$proxy_pid" \
                iperf_streams hop-ssh "$DESKTOP_UID" "$LAB_DIR/proxychains-hop.conf"
        fi
    fi
    with_cpu "iperf3-tun-$name" "engine=$ENGINE_PID proxy=$proxy_pid" iperf_streams "tun-$name" "$DESKTOP_UID"
    engine_stop
}

# --- the run -------------------------------------------------------------------------------------

read -r tun_mtu tun_queue < <(lab_client ip -j link show PsiphonTUN | jq -r '.[0] | "\(.mtu) \(.txqlen)"')
echo "== psi-tun: TUN -> psi-tun run -> SOCKS5, against SOCKS alone and the wire"
echo "machine:  $(nproc) cores, kernel $(uname -r), before the run: $(uptime | sed 's/.*load average/load average/')"
echo "proxies:  socks5_relay on $RELAY_SOCKS; ssh -N -D $SSH_SOCKS -c $SSH_CIPHER and psi-connect on $CONNECT_SOCKS to sshd in inet; all as $TUNNEL_USER"
echo "runs:     $ROUNDS interleaved rounds; streams ${SECONDS_PER_RUN}s each way; rr $ITERATIONS x 64 B"
[ -n "$PROXYCHAINS" ] || echo "note:     proxychains4 is not installed: no iperf3 for (b), SOCKS alone, nor (b+)"
for _ in $(seq "$ROUNDS"); do
    proxy_round relay "$RELAY_SOCKS" "$RELAY_PID"
    proxy_round ssh "$SSH_SOCKS" "$SSH_PID"
    proxy_round connect "$CONNECT_SOCKS" "$CONNECT_PID"
done
vnet=off
((TUN_FLAGS & 0x4000)) && vnet=on
echo "TUN:      MTU $tun_mtu, txqueuelen $tun_queue, IFF_VNET_HDR $vnet (tun_flags $TUN_FLAGS), TSO $TSO"

# --- the report ----------------------------------------------------------------------------------

LABELS=(
    "wire|(a) wire: veth, as the tunnel user"
    "socks-relay|(b) SOCKS alone: socks5_relay"
    "tun-relay|(c) TUN -> psi-tun -> socks5_relay"
    "socks-ssh|(b) SOCKS alone: ssh -D"
    "hop-ssh|(b+) socks5_relay, then ssh -D"
    "tun-ssh|(c) TUN -> psi-tun -> ssh -D"
    "socks-connect|(b) SOCKS alone: psi-connect"
    "tun-connect|(c) TUN -> psi-tun -> psi-connect"
)
stream_table() { # TOOL
    local entry path
    printf '%-38s %7s %12s %7s %12s\n' "" up min-max down min-max
    for entry in "${LABELS[@]}"; do
        path=${entry%%|*}
        [ -s "$LAB_DIR/results/$1-$path-up" ] || continue
        printf '%-38s %7s %12s %7s %12s' "${entry#*|}" "$(number "$(median_of "$1-$path-up")")" \
            "$(values "$1-$path-up" | spread)" "$(number "$(median_of "$1-$path-down")")" "$(values "$1-$path-down" | spread)"
        [ "$1" != iperf3 ] || printf '   retr %s / %s' "$(median_of "$1-$path-up" 2)" "$(median_of "$1-$path-down" 2)"
        echo
    done
}
ratio_of_medians() { # TOOL NUMERATOR DENOMINATOR DIRECTION
    ratio "$(median_of "$1-$2-$4")" "$(median_of "$1-$3-$4")"
}
# Each round's ratio (its two runs were taken one after the other), over both tools.
paired_ratio() { # NUMERATOR DENOMINATOR DIRECTION
    local tool
    number "$(for tool in rr iperf3; do
        if [ -s "$LAB_DIR/results/$tool-$1-$3" ] && [ -s "$LAB_DIR/results/$tool-$2-$3" ]; then
            paste -d' ' <(values "$tool-$1-$3") <(values "$tool-$2-$3")
        fi
    done | awk '{ printf "%.3f\n", $1 / $2 }' | median)"
}
ratio_row() { # LABEL NUMERATOR DENOMINATOR [TARGET]
    printf '%-42s %5s %5s   %5s %5s   %5s %5s   %s\n' "$1" \
        "$(ratio_of_medians rr "$2" "$3" up)" "$(ratio_of_medians rr "$2" "$3" down)" \
        "$(ratio_of_medians iperf3 "$2" "$3" up)" "$(ratio_of_medians iperf3 "$2" "$3" down)" \
        "$(paired_ratio "$2" "$3" up)" "$(paired_ratio "$2" "$3" down)" "${4:-}"
}

echo
echo "-- one TCP stream, Gbit/s at the receiver; median and min-max of $ROUNDS rounds"
echo "rr (speaks SOCKS5 itself):"
stream_table rr
echo "iperf3 (sender retransmissions, median; (b) through proxychains4):"
stream_table iperf3

echo
echo "-- ratios (issue 5): of each tool's medians, and the median of the per-round ratios of both tools"
printf '%-42s %11s   %11s   %11s\n' "" "rr" "iperf3" "per round"
printf '%-42s %5s %5s   %5s %5s   %5s %5s   %s\n' "" up down up down up down target
ratio_row "(c)/(b) with ssh -D: the TUN tax" tun-ssh socks-ssh ">= 0.85"
ratio_row "(b+)/(b) with ssh -D: a hop, no TUN" hop-ssh socks-ssh
ratio_row "(c)/(b+) with ssh -D: the TUN beyond it" tun-ssh hop-ssh
ratio_row "(c)/(b) with psi-connect: the TUN tax" tun-connect socks-connect ">= 0.85"
ratio_row "(c)/(a) with socks5_relay" tun-relay wire ">= 0.5"
ratio_row "(c)/(b) with socks5_relay" tun-relay socks-relay
ratio_row "(b)/(a) with ssh -D: the SSH tax" socks-ssh wire

echo
echo "-- 64-byte request/response (rr, TCP_NODELAY), µs: medians of $((ROUNDS * 3)) runs' p50 and p99"
printf '%-38s %7s %14s %7s\n' "" p50 min-max p99
for entry in "${LABELS[@]}"; do
    path=${entry%%|*}
    [ -s "$LAB_DIR/results/rr-$path-rr" ] || continue
    printf '%-38s %7s %14s %7s\n' "${entry#*|}" "$(number "$(median_of "rr-$path-rr" 1)" 1)" \
        "$(values "rr-$path-rr" 1 | spread)" "$(number "$(median_of "rr-$path-rr" 2)" 1)"
done
added() { awk -v c="$(median_of "rr-tun-$1-rr")" -v b="$(median_of "rr-socks-$1-rr")" 'BEGIN { printf "%.1f", c - b }'; }
printf '%-50s %6s µs   target <= 50 µs\n' "p50 added by the TUN layer, socks5_relay" "$(added relay)"
printf '%-50s %6s µs\n' "p50 added by the TUN layer, ssh -D" "$(added ssh)"
printf '%-50s %6s µs\n' "p50 added by the TUN layer, psi-connect" "$(added connect)"

echo
echo "-- CPU during the streams, % of one core (the machine: 200 = both cores busy); medians, up and down together"
printf '%-38s %14s %14s %14s\n' "" machine "psi-tun run" proxy
printf '%-38s %7s%7s %7s%7s %7s%7s\n' "" rr iperf3 rr iperf3 rr iperf3
for entry in "${LABELS[@]}"; do
    path=${entry%%|*}
    grep -q -e "^rr-$path " -e "^iperf3-$path " "$LAB_DIR/cpu" || continue
    printf '%-38s %7s%7s %7s%7s %7s%7s\n' "${entry#*|}" \
        "$(cpu_of "rr-$path" machine)" "$(cpu_of "iperf3-$path" machine)" \
        "$(cpu_of "rr-$path" engine)" "$(cpu_of "iperf3-$path" engine)" \
        "$(cpu_of "rr-$path" proxy)" "$(cpu_of "iperf3-$path" proxy)"
done
[ ! -s "$LAB_DIR/results/iperf3-hop-ssh-up" ] || echo "(b+): its psi-tun run column is socks5_relay, which makes that hop"
read -r hwm rss < <(sort -n "$LAB_DIR/engine-memory" | tail -n 1)
printf '%-50s %s\n' "psi-tun run memory (largest of $((ROUNDS * 2)) engines)" \
    "VmHWM $((hwm / 1024)) MiB, VmRSS $((rss / 1024)) MiB when stopped"
# TCP payload per TUN packet far above the MSS: the kernel hands over TSO/GRO super-packets.
jq -rs '(map(.stats) | {flows: (map(.tcp.flowsOpened) | add),
    packets: (map(.packets.read + .packets.written) | add), bytes: (map(.tcp.bytesUp + .tcp.bytesDown) | add),
    kernel: (map(.fastPath.packets // 0) | add),
    dropped: ([.[].dropped | to_entries[] | select(.value > 0)] | group_by(.key) |
              map("\(map(.value) | add) \(.[0].key)") | join(", "))}) |
    "psi-tun stats, all engines: \(.flows) TCP flows, \(.packets) TUN packets through the engine, \(.kernel) TCP " +
    "segments NATed by the kernel fast path, \(.bytes / ([.packets + .kernel, 1] | max) | floor) payload bytes per packet; " +
    "dropped: \(if .dropped == "" then "none" else .dropped end)"' \
    "$LAB_DIR/engine-stats.json" || echo "psi-tun stats: none read"
if [ -s "$LAB_DIR/engine-errors" ]; then
    echo "psi-tun run wrote to stderr:"
    sort "$LAB_DIR/engine-errors" | uniq -c | sort -rn | head -n 5
fi
