#!/bin/sh
# profile.sh - where sealpost spends its CPU (docs/BENCHMARKS.md, "Where
# the time goes"). Needs root, perf, valgrind and Postfix's smtp-source and
# smtp-sink (bench/run.sh installs Postfix).
#
#   bench/profile.sh            # into build/profile/
#
# 1. perf, accept: smtp-source sends 5,000 1 KB messages from 50 sessions to
#    sealpost with [queue] hold = yes; perf samples every sealpost process
#    (call graphs) for the whole run; bench/perf_summary.py charges each
#    sample to its process and to the system call it was in.
# 2. perf, relay: the same with 4 KB messages relayed to smtp-sink.
# 3. callgrind, accept: 1,000 1 KB messages from 10 sessions under
#    valgrind --tool=callgrind; callgrind_annotate per process, and the
#    instructions per message.
# The binary is a profiling build (cmake -DSEALPOST_PROFILE=ON: frame
# pointers, and no seccomp filter or chroot, which valgrind cannot run
# under); everything else is the normal code.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${PROFILE_OUT:-$ROOT/build/profile}
BUILD=$ROOT/build-prof
PORT=${PROFILE_PORT:-27125}
SINK_PORT=$((PORT + 1))
for tool in perf valgrind callgrind_annotate smtp-source smtp-sink; do
    command -v $tool >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
    command -v $tool >/dev/null 2>&1 || { echo "profile: $tool is missing" >&2; exit 1; }
done
cmake -S "$ROOT" -B "$BUILD" -DSEALPOST_PROFILE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target sealpost >/dev/null
BIN=$BUILD/sealpost
rm -rf "$OUT"
mkdir -p "$OUT"
WORK=$(mktemp -d /var/tmp/sealpost-profile.XXXXXX)
SINK=""
cleanup() {
    pkill -f "sealpost serve -c $WORK/" 2>/dev/null || true
    [ -n "$SINK" ] && kill "$SINK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

config() {   # config HOLD [RELAY]
    cat <<CONF
[server]
hostname = sealpost.profile.test
spool = $WORK/spool
user =
queue_user =
delivery_user =
max_connections = 1000
max_connections_per_ip = 1000
shutdown_timeout = 2s
[listener mx]
address = 127.0.0.1:$PORT
role = mx
[domain bench.test]
maildir = $WORK/mail/{domain}/{local}
[queue]
hold = $1
CONF
    if [ -n "${2:-}" ]; then
        printf '[relay]\ntrusted_networks = 127.0.0.0/8\nrelayhost = [127.0.0.1]:%s\n' "$SINK_PORT"
    fi
}

wait_port() {
    i=0
    until smtp-source -s 1 -m 1 -l 100 -c -f a@client.test -t b@bench.test \
            127.0.0.1:$PORT >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "profile: no greeting" >&2; exit 1; }
        sleep 0.1
    done
}

perf_run() {   # perf_run NAME SIZE COUNT HOLD [RELAY]
    name=$1 size=$2 count=$3
    rcpt=u@bench.test
    [ -z "${5:-}" ] || rcpt=u@relay.test
    rm -rf "$WORK/spool" "$WORK/mail"
    config "$4" "${5:-}" >"$WORK/$name.conf"
    "$BIN" serve -c "$WORK/$name.conf" 2>"$WORK/$name.log" &
    master=$!
    wait_port
    smtp-source -s 50 -m 500 -l "$size" -c -f load@client.test -t $rcpt \
        127.0.0.1:$PORT >/dev/null
    sleep 1
    pids=$(echo $master $(pgrep -P $master) | tr ' ' ',')
    perf record -q -g -F 999 -o "$WORK/$name.data" -p "$pids" >/dev/null 2>&1 &
    perf=$!
    sleep 0.5
    start=$(date +%s.%N)
    smtp-source -s 50 -m "$count" -l "$size" -c -f load@client.test \
        -t $rcpt 127.0.0.1:$PORT >/dev/null
    if [ -n "${5:-}" ]; then      # relay: until the queue is empty
        i=0
        while [ "$(ls "$WORK/spool/queue" | wc -l)" -gt 0 ]; do
            i=$((i + 1)); [ $i -lt 12000 ] || { echo "profile: relay did not finish" >&2; exit 1; }
            sleep 0.01
        done
    fi
    end=$(date +%s.%N)
    kill -INT $perf; wait $perf || true
    kill $master; wait $master || true
    {
        echo "### perf: $name ($count messages of $size octets, 50 sessions," \
             "$(echo "$count / ($end - $start)" | bc) msgs/s under perf)"
        echo
        perf script -F pid,ip,sym -i "$WORK/$name.data" 2>/dev/null |
            /usr/bin/python3 "$ROOT/bench/perf_summary.py" "$WORK/$name.log" "$master"
        echo
    } >"$OUT/perf-$name.md"
    cat "$OUT/perf-$name.md"
}

perf_run accept 1024 5000 yes
smtp-sink -u nobody -c 127.0.0.1:$SINK_PORT 1024 >/dev/null 2>&1 &
SINK=$!
perf_run relay 4096 3000 no relay

# callgrind: instructions per message, by process and function
rm -rf "$WORK/spool" "$WORK/mail" "$WORK/cg"
mkdir -p "$WORK/cg"
config yes >"$WORK/cg.conf"
valgrind --tool=callgrind --trace-children=yes \
    --callgrind-out-file="$WORK/cg/callgrind.out.%p" "$BIN" serve -c "$WORK/cg.conf" \
    2>"$WORK/cg.log" &
vg=$!
wait_port
smtp-source -s 10 -m 1000 -l 1024 -c -f load@client.test -t u@bench.test 127.0.0.1:$PORT >/dev/null
kill $vg; wait $vg || true
sleep 2
{
    echo "### callgrind: accept, 1,000 messages of 1 KB, 10 sessions (+ 1 to connect)"
    echo
    echo "| process | instructions (Ir) | per message | top functions (self, share of the process) |"
    echo "|---|---:|---:|---|"
    for f in "$WORK"/cg/callgrind.out.*; do
        pid=${f##*.}
        role=$(grep -o "role=[a-z]* slot=[0-9]* pid=$pid\$\|role=[a-z]* slot=[0-9]* pid=$pid " \
                   "$WORK/cg.log" | head -n 1 | cut -d' ' -f1 | cut -d= -f2)
        [ -n "$role" ] || role=master
        callgrind_annotate --inclusive=no "$f" 2>/dev/null >"$WORK/cg/ann.$pid"
        total=$(grep -m1 "PROGRAM TOTALS" "$WORK/cg/ann.$pid" | awk '{gsub(",","",$1); print $1}')
        [ -n "$total" ] && [ "$total" -gt 0 ] || continue
        top=$(awk '/^-+$/{n++} n>=3 && /^ *[0-9,]+ .*:/' "$WORK/cg/ann.$pid" | head -n 6 |
              awk -v t="$total" '{v=$1; gsub(",","",v); sub(/^ *[0-9,]+ +\([^)]*\) +/, ""); sub(/^ *[0-9,]+ +/, "");
                                  f=$0; sub(/ \[.*$/, "", f); n=split(f, p, ":"); printf "%s%s %.0f%%", (NR>1?", ":""), p[n], 100*v/t}')
        echo "| $role ($pid) | $total | $((total / 1001)) | $top |"
    done
    echo
} >"$OUT/callgrind-accept.md"
cat "$OUT/callgrind-accept.md"
cp "$WORK"/cg/ann.* "$OUT/" 2>/dev/null || true
echo "profile: reports in $OUT"
