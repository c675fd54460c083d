#!/bin/bash
# psi benchmarks: numbers printed, never asserted. Each is compared with a reference measured
# in the same run. Needs root; runs in lab namespaces it creates and always removes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/fw.bash
trap lab_down EXIT

share/create-users share/sysusers.d/psi.conf >/dev/null
fw_lab_up
flood_sink_start

median_and_p95() { # reads numbers, prints "median p95"
    sort -n | awk '{ v[NR] = $1 } END { printf "%.1f %.1f", v[int((NR + 1) / 2)], v[int(NR * 0.95 + 0.5)] }'
}

milliseconds() { # CMD...: wall time of one run in ms
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    echo "scale=2; ($end - $start) / 1000000" | bc
}

echo "== psi-fw: time per change (100 runs each)"
psi_fw up >/dev/null
replace_times=$(for _ in $(seq 50); do
    milliseconds psi_fw boot
    milliseconds psi_fw up
done | median_and_p95)
noop_times=$(for _ in $(seq 100); do milliseconds psi_fw up; done | median_and_p95)
transaction_times=$(for _ in $(seq 50); do
    lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" -v boot 2>&1 >/dev/null | sed -n 's/.*transaction (\([0-9.]*\) ms).*/\1/p'
    lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" -v up 2>&1 >/dev/null | sed -n 's/.*transaction (\([0-9.]*\) ms).*/\1/p'
done | median_and_p95)
reference_times=$(for _ in $(seq 100); do milliseconds lab_client nft -f - < <(psi_fw print); done | median_and_p95)
printf '%-44s %10s %10s\n' "" "median ms" "p95 ms"
printf '%-44s %10s %10s\n' "psi-fw up, replacing the table" $replace_times
printf '%-44s %10s %10s\n' "  of which the libnftables transaction" $transaction_times
printf '%-44s %10s %10s\n' "psi-fw up, already up (read back, no change)" $noop_times
printf '%-44s %10s %10s\n' "reference: nft -f of the same script" $reference_times

# Packets that leave the client from uid 2000 while the table is replaced under a flood.
leak_run() { # NAME CMD...: 100 changes under a flood, prints "leaked sent"
    local name=$1 i
    shift
    psi_fw up >/dev/null
    lab_capture_start "udp and dst port $FLOOD_PORT and src host $LAB_CLIENT_IP4"
    flood_start 600
    sleep 0.5
    for i in $(seq 50); do "$@"; done
    sleep 0.2
    kill -TERM "$FLOOD_PID"
    flood_wait
    lab_capture_stop
    printf '%-44s %10s %14s\n' "$name" "$(lab_capture_count)" "$(awk -F'[= ]' '/^sent=/ { print $2 + $4 }' "$LAB_DIR/flood.out")"
}
swap_in_one_transaction() { psi_fw boot >/dev/null; psi_fw up >/dev/null; }
delete_then_load() { psi_fw down >/dev/null; psi_fw up >/dev/null; }

echo
echo "== psi-fw: packets leaked by 100 table changes under a UDP flood from uid $DESKTOP_UID"
printf '%-44s %10s %14s\n' "" "leaked" "datagrams tried"
leak_run "psi-fw (one transaction per change)" swap_in_one_transaction
leak_run "reference: delete, then load (two steps)" delete_then_load
