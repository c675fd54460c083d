# shellcheck shell=bash
# What the lab benchmarks share: CPU and memory of processes while a command runs, and medians,
# spreads and ratios of the results each run appends to $LAB_DIR/results/NAME. Source after
# tests/lab/lab.bash; LAB_DIR must be set before any of it is called.

CLOCK_TICKS=$(getconf CLK_TCK)
cpu_ticks() { # PID: utime + stime
    local stat
    stat=$(cat "/proc/$1/stat")
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}
machine_busy_ticks() { # all cores: everything but idle and iowait
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
memory() { # PID: "VmHWM-KiB VmRSS-KiB"
    awk '/^VmHWM/ { hwm = $2 } /^VmRSS/ { rss = $2 } END { print hwm, rss }' "/proc/$1/status"
}

# Runs CMD while counting the CPU of processes given as ROLE=PID, and of the whole machine
# (role "machine"); appends "NAME ROLE percent" (of one core) to $LAB_DIR/cpu.
with_cpu() { # NAME "ROLE=PID ..." CMD...
    local name=$1 watched=$2 entry start end ticks busy_before
    local -A before=()
    shift 2
    for entry in $watched; do before[$entry]=$(cpu_ticks "${entry#*=}"); done
    busy_before=$(machine_busy_ticks)
    start=$(date +%s%N)
    "$@"
    end=$(date +%s%N)
    ticks=$(($(machine_busy_ticks) - busy_before))
    echo "$name machine $(echo "scale=1; $ticks * 100 * 1000000000 / $CLOCK_TICKS / ($end - $start)" | bc)" >>"$LAB_DIR/cpu"
    for entry in $watched; do
        ticks=$(($(cpu_ticks "${entry#*=}") - before[$entry]))
        echo "$name ${entry%%=*} $(echo "scale=1; $ticks * 100 * 1000000000 / $CLOCK_TICKS / ($end - $start)" | bc)" \
            >>"$LAB_DIR/cpu"
    done
}

# Every result is a line appended to $LAB_DIR/results/NAME.
result() { mkdir -p "$LAB_DIR/results" && cat >>"$LAB_DIR/results/$1"; }

values() { # RESULT [FIELD]
    [ -s "$LAB_DIR/results/$1" ] || return 0
    awk -v field="${2:-1}" '{ print $field }' "$LAB_DIR/results/$1"
}
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                                         else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
spread() { sort -g | awk 'NR == 1 { low = $1 } { high = $1 } END { if (NR) printf "%.2f-%.2f", low, high; else print "-" }'; }
median_of() { values "$@" | median; }
number() { # VALUE [DIGITS]: VALUE with DIGITS decimals (2), or - when there is none
    if [ -z "$1" ] || [ "$1" = - ]; then echo -; else printf "%.${2:-2}f" "$1"; fi
}
ratio() { # A B: A/B, or - when either is missing (or B is 0)
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'
}

cpu_of() { # NAME ROLE: the median of with_cpu's percentages
    number "$(awk -v name="$1" -v role="$2" '$1 == name && $2 == role { print $3 }' "$LAB_DIR/cpu" | median)" 0
}
