#!/bin/bash
# psi-connect (issue 4): SOCKS5 over an SSH tunnel, against OpenSSH's ssh -N -D with the same
# cipher to the same sshd, all in the same run, from the lab's client namespace to inet:
#   ssh-D      OpenSSH ssh -D -c aes128-gcm (the cipher psi-connect prefers on a CPU with AES
#              instructions; chacha20-poly1305 otherwise, as psi-connect)
#   connect    psi-connect --no-handshake to that sshd (plain SSH)
#   ossh       psi-connect over OSSH to the lab's Psiphon test server (Python: its numbers
#              show the test server's speed more than psi-connect's; printed, never compared)
# Measured: one stream up and down (build/bench/rr), a new flow's CONNECT and first round trip,
# 1,000 flows at once (success count, psi-connect's peak RSS), RSS when idle, and the time from
# start to "Tunnels count 1" (against ssh -D's time until it listens). Rounds are interleaved;
# medians and min-max. Needs root; the lab namespaces are always removed. CONNECT_BENCH_ROUNDS
# and CONNECT_BENCH_SECONDS (defaults 3 and 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/fw.bash
source tests/lab/sshd.bash
source tests/lab/connect.bash
source tests/bench/measure.bash
trap lab_down EXIT

ROUNDS=${CONNECT_BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${CONNECT_BENCH_SECONDS:-3}
RR=build/bench/rr
RR_PORT=7100
LINES_PORT=7300
CIPHER=chacha20-poly1305@openssh.com
grep -qw aes /proc/cpuinfo && CIPHER=aes128-gcm@openssh.com
SSH_SOCKS=127.0.0.1:1081
CONNECT_SOCKS=127.0.0.1:1082
OSSH_SOCKS=127.0.0.1:1083

for binary in build/psi-connect "$RR"; do
    [ -x "$binary" ] || { echo "connect.sh: $binary missing (make all $RR)" >&2; exit 1; }
done
share/create-users share/sysusers.d/psi.conf >/dev/null
lab_up
chmod o+x "$LAB_DIR"

fail() { echo "connect.sh: $1" >&2; [ -z "${2:-}" ] || cat "$LAB_DIR/$2" >&2; exit 1; }
inet_listening() { [ -n "$(lab_inet ss -Hltn "sport = :$1")" ]; }
milliseconds() { echo $(($(date +%s%N) / 1000000)); }

lab__spawn "$LAB_INET" rr-server "$RR" server "$LAB_INET_IP4:$RR_PORT"
lab__wait_for 5 inet_listening "$RR_PORT" || fail "rr server did not start:" rr-server.err
lab__spawn "$LAB_INET" lines /usr/bin/python3 tests/tools/many_connections.py serve --bind "$LAB_INET_IP4" \
    --port "$LINES_PORT"
lab__wait_for 5 grep -q listening "$LAB_DIR/lines.out" || fail "the line server did not start:" lines.err
lab_sshd_start "$LAB_INET" "$LAB_INET_IP4" 22
connect_sshd_entry >"$LAB_DIR/sshd.entries"
chmod 644 "$LAB_DIR/sshd.entries"
KEY=$(connect_user_key)
psiphond_start psiphond

# Each proxy as the tunnel user; a start returns once the proxy serves, its time in ms appended
# to results/start-NAME.

ssh_start() {
    local dir=$LAB_DIR/sshd home=$LAB_DIR/sshd/user-$TUNNEL_USER start
    chmod o+x "$dir"
    mkdir -p "$home"
    cp "$dir/client_key" "$dir/known_hosts" "$home/"
    chown -R "$TUNNEL_USER:psiphon-group" "$home"
    chmod 700 "$home"
    chmod 600 "$home/client_key" "$home/known_hosts"
    start=$(milliseconds)
    lab__spawn "$LAB_CLIENT" ssh-socks setpriv --reuid="$TUNNEL_USER" --regid=psiphon-group --clear-groups \
        --inh-caps=-all --bounding-set=-all -- \
        /usr/bin/ssh -F none -N -D "$SSH_SOCKS" -c "$CIPHER" -i "$home/client_key" -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$home/known_hosts" -o GlobalKnownHostsFile=/dev/null \
        -o UpdateHostKeys=no -o BatchMode=yes -o ExitOnForwardFailure=yes -o ConnectTimeout=5 \
        -p "$LAB_SSHD_PORT" "root@$LAB_SSHD_ADDR"
    SSH_PID=$LAB_LAST_PID
    lab__wait_for 10 lab__socks_listening "$LAB_CLIENT" "${SSH_SOCKS##*:}" || fail "ssh -D did not come up:" ssh-socks.err
    echo $(($(milliseconds) - start)) | result start-ssh-D
}

connect_up() { # NAME SOCKS ENTRIES ARGS...
    local name=$1 socks=$2 entries=$3 start
    shift 3
    start=$(milliseconds)
    connect_start "$name" "$entries" --socks "${socks##*:}" --http 0 "$@"
    connect_wait_tunnels "$name" 1 20 || fail "psi-connect ($name) did not come up"
    echo $(($(milliseconds) - start)) | result "start-$name"
}

stop() { lab__stop "$1" TERM; }

streams() { # NAME SOCKS
    local direction
    for direction in up down; do
        lab_as_user "$TUNNEL_USER" timeout $((SECONDS_PER_RUN + 60)) "$RR" "$direction" "$LAB_INET_IP4:$RR_PORT" \
            --seconds "$SECONDS_PER_RUN" --socks "$2" | result "stream-$1-$direction" ||
            echo "connect.sh: rr $direction through $1 failed (left out)" >&2
    done
}

new_flows() { # NAME SOCKS
    lab_as_user "$TUNNEL_USER" timeout 120 "$RR" connects "$LAB_INET_IP4:$RR_PORT" --iterations 300 --socks "$2" |
        result "connects-$1" || echo "connect.sh: new flows through $1 failed (left out)" >&2
}

thousand_flows() { # NAME SOCKS PID
    local outcome
    outcome=$(lab_as_user "$TUNNEL_USER" /usr/bin/python3 tests/tools/many_connections.py connect "$LAB_INET_IP4" \
        "$LINES_PORT" --count 1000 --timeout 60 --socks "$2" 2>/dev/null || true)
    echo "${outcome:-ok=0 failed=1000} $(memory "$3")" | result "thousand-$1"
}

echo "== psi-connect: SOCKS5 over SSH, against OpenSSH ssh -D ($CIPHER) to the same sshd"
echo "machine:  $(nproc) cores, kernel $(uname -r), before the run: $(uptime | sed 's/.*load average/load average/')"
echo "runs:     $ROUNDS interleaved rounds; streams ${SECONDS_PER_RUN}s each way; 300 new flows; 1,000 at once"
for _ in $(seq "$ROUNDS"); do
    ssh_start
    streams ssh-D "$SSH_SOCKS"
    new_flows ssh-D "$SSH_SOCKS"
    thousand_flows ssh-D "$SSH_SOCKS" "$SSH_PID"
    stop "$SSH_PID"

    connect_up connect "$CONNECT_SOCKS" "$LAB_DIR/sshd.entries" --no-handshake --identity "$KEY"
    sleep 0.5
    memory "$CONNECT_PID" | result idle-connect
    streams connect "$CONNECT_SOCKS"
    new_flows connect "$CONNECT_SOCKS"
    thousand_flows connect "$CONNECT_SOCKS" "$CONNECT_PID"
    stop "$CONNECT_PID"

    connect_up ossh "$OSSH_SOCKS" "$LAB_DIR/psiphond.entry" --protocols OSSH
    streams ossh "$OSSH_SOCKS"
    new_flows ossh "$OSSH_SOCKS"
    stop "$CONNECT_PID"
done
CONNECT_PID=

# --- the report ----------------------------------------------------------------------------------

printf '\n%-9s %22s %22s %16s %16s %10s\n' path "up Gbit/s (min-max)" "down Gbit/s (min-max)" "new flow p50 µs" "new flow p99 µs" "start ms"
for name in ssh-D connect ossh; do
    printf '%-9s %10s (%9s) %10s (%9s) %16s %16s %10s\n' "$name" \
        "$(number "$(median_of "stream-$name-up")" 2)" "$(values "stream-$name-up" | spread)" \
        "$(number "$(median_of "stream-$name-down")" 2)" "$(values "stream-$name-down" | spread)" \
        "$(number "$(median_of "connects-$name" 1)" 0)" "$(number "$(median_of "connects-$name" 2)" 0)" \
        "$(number "$(median_of "start-$name")" 0)"
done
echo
echo "ratio psi-connect / ssh -D, same sshd and cipher (target >= 0.9):" \
    "up $(ratio "$(median_of stream-connect-up)" "$(median_of stream-ssh-D-up)")," \
    "down $(ratio "$(median_of stream-connect-down)" "$(median_of stream-ssh-D-down)")"
echo "new flow added by psi-connect over ssh -D, p50: $(awk -v a="$(median_of connects-connect 1)" \
    -v b="$(median_of connects-ssh-D 1)" 'BEGIN { printf "%.0f µs", a - b }')"
for name in ssh-D connect; do
    echo "1,000 flows at once through $name: $(tail -n 1 "$LAB_DIR/results/thousand-$name" | awk '{ print $1, $2 }')," \
        "peak RSS $(values "thousand-$name" 3 | sort -n | tail -n 1 | awk '{ printf "%.1f MiB", $1 / 1024 }')" \
        "(target for psi-connect: all, under 32 MiB)"
done
echo "psi-connect idle after the tunnel is up: RSS $(values idle-connect 2 | median | awk '{ printf "%.1f MiB", $1 / 1024 }')" \
    "(target under 8 MiB)"
echo "start to Tunnels count 1: SSH $(median_of start-connect) ms, OSSH with the handshake $(median_of start-ossh) ms;" \
    "ssh -D until it listens: $(median_of start-ssh-D) ms"
