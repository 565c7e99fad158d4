#!/bin/bash
# bench/run.sh - `make bench`: sealpost and Postfix side by side.
#
# Installs what the benchmark needs and the project's deps script does
# not (Debian's postfix for smtp-source, smtp-sink and the Postfix under
# test; gnuplot for the plot), stops and disables any system Postfix the
# package started, raises the open-file limit, and runs bench/bench.py.
# Whatever bench.py started is stopped again on exit, even when it dies
# (the EXIT trap below reads the state file bench.py keeps).
#
#   make bench                 full run (~15 min on 2 cores), into docs/
#   BENCH_QUICK=1 make bench   a much shorter run, into build/bench/
#   BENCH_SMOKE=1 bench/run.sh a few seconds, end to end (ctest bench_smoke)
# See bench/bench.py for the other BENCH_* variables.
set -eu
cd "$(dirname "$0")/.."

ROOT=0
[ "$(id -u)" -eq 0 ] && ROOT=1
if [ "$ROOT" = 0 ] && [ "${BENCH_SMOKE:-}" != 1 ]; then
    echo "bench: must run as root (a private Postfix instance needs it)" >&2
    exit 1
fi

# --- packages -------------------------------------------------------------
missing=""
for p in postfix gnuplot-nox; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    if [ "${BENCH_NO_INSTALL:-}" = 1 ] || [ "$ROOT" = 0 ]; then
        echo "bench: not installing:$missing (BENCH_NO_INSTALL=1 or not root)"
    else
        echo "bench: installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
fi

# --- no system Postfix on port 25 ----------------------------------------
# The package may have started /etc/postfix's instance; the benchmark runs
# its own private instance only. (Not in the smoke run: `make test` must
# not touch a Postfix the machine's owner runs; the smoke uses high ports.)
if [ "$ROOT" = 1 ] && [ "${BENCH_SMOKE:-}" != 1 ] && command -v postfix >/dev/null 2>&1; then
    if postfix status >/dev/null 2>&1; then
        echo "bench: stopping the system Postfix (/etc/postfix)"
        postfix stop >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl disable --now postfix >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d postfix disable >/dev/null 2>&1 || true
    fi
fi

# --- limits ---------------------------------------------------------------
# 10,000 idle connections: the client and each MTA need as many descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- run, and clean up whatever is left whatever happens ------------------
BENCH_STATE=$(mktemp /tmp/sealpost-bench-state.XXXXXX)
export BENCH_STATE

# BENCH_FS=journal: the work folder (both queues) on a fresh, journaled
# ext4 in a loop-mounted image file, instead of wherever /var/tmp is (see
# docs/BENCHMARKS.md, "Where the time goes": this VM's root ext4 has no
# journal, and ext4 without one makes every file creation scan the inodes
# deleted in the last minute). fsync on the loop device reaches the image
# file's own fsync, so the durability of both sides is unchanged.
FS_IMG=""
FS_MNT=""
if [ "${BENCH_FS:-}" = journal ]; then
    FS_IMG=$(mktemp /var/tmp/sealpost-bench-fs.XXXXXX)
    FS_MNT=$FS_IMG.mnt
    truncate -s 8G "$FS_IMG"
    mkfs.ext4 -q -F "$FS_IMG"
    mkdir -p "$FS_MNT"
    mount -o loop "$FS_IMG" "$FS_MNT"
    BENCH_DIR=$FS_MNT/work
    export BENCH_DIR
    echo "bench: work folder on a journaled ext4 image, $FS_IMG on $FS_MNT"
fi

# Stop what bench.py recorded in the state file: private Postfix instances
# (by their config directory) and processes by pid, only while the pid
# still runs the program we started.
cleanup() {
    status=$?
    trap - EXIT INT TERM
    workdir=""
    if [ -f "$BENCH_STATE" ]; then
        while read -r kind value; do
            case "$kind" in
            postfix-conf)
                if [ -f "$value/main.cf" ] && postfix -c "$value" status >/dev/null 2>&1; then
                    postfix -c "$value" stop >/dev/null 2>&1 ||
                        postfix -c "$value" abort >/dev/null 2>&1 || true
                fi ;;
            sealpost|sink|client|opendkim)
                if [ -r "/proc/$value/cmdline" ] &&
                   tr '\0' ' ' <"/proc/$value/cmdline" |
                       grep -Eq 'sealpost|smtp-sink|smtpload|opendkim'; then
                    kill -TERM "$value" 2>/dev/null || true
                    sleep 1
                    kill -KILL "$value" 2>/dev/null || true
                fi ;;
            workdir)
                workdir=$value ;;
            esac
        done <"$BENCH_STATE"
        # last: the Postfix instance's config lives in the work folder
        case "$workdir" in
        /var/tmp/sealpost-bench.*) rm -rf "$workdir" ;;
        esac
        rm -f "$BENCH_STATE"
    fi
    if [ -n "$FS_MNT" ]; then
        umount "$FS_MNT" 2>/dev/null || umount -l "$FS_MNT" 2>/dev/null || true
        rmdir "$FS_MNT" 2>/dev/null || true
        rm -f "$FS_IMG"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

/usr/bin/python3 bench/bench.py
