#!/bin/sh
# Build the libFuzzer targets in tests/fuzz/ with clang, AddressSanitizer
# and UBSan, then run each for a set time. See docs/FUZZING.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default: $FUZZ_SECONDS, else 60); no TARGET = all.
# The targets are compiled straight from the src/ files they need (not
# from the gcc-built library) into build-fuzz/. Each run starts from a
# copy of tests/fuzz/corpus/TARGET/ in a temporary folder, so the
# committed corpus stays small; crashing inputs go to build-fuzz/crashes/,
# logs to build-fuzz/logs/. Exits non-zero if clang is missing, a target
# does not build, or any target crashes, leaks or breaks an invariant.
#
# Environment: FUZZ_SECONDS, FUZZ_JOBS (targets run at once, default the
# number of cores), FUZZ_OUT (default build-fuzz), CC (default clang).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF=$ROOT/scripts/fuzz.sh
cd "$ROOT"
OUT=${FUZZ_OUT:-build-fuzz}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
CC=${CC:-clang}
# `make` exports CC=cc; only a clang can build libFuzzer targets.
case $("$CC" --version 2>/dev/null | head -n 1) in *clang*) ;; *) CC=clang ;; esac

ALL_TARGETS="command address data_decoder line_reader config received dns_name smtp_reply envelope queue_request ipc remote_codec sts_policy sts_txt tlsa sasl sts_codec sts_response tlsrpt auth header_fields queue_command maildrop alias milter_apply milter_codec milter_reply milter_check"

# The src/ files (and libraries) each target links. src/util/ is taken
# whole: small self-contained helpers that other files come to rely on.
target_sources() {
    case $1 in
    command)      echo "src/smtpd/command.c src/mail/address.c" ;;
    address)      echo "src/mail/address.c" ;;
    data_decoder) echo "src/smtpd/data_decoder.c" ;;
    line_reader)  echo "src/smtpd/line_reader.c" ;;
    config)       echo "src/config/*.c src/util/*.c -linih -levent_core" ;;
    received)     echo "src/mail/received.c src/smtpd/command.c src/mail/address.c" \
                       "src/mail/maildir.c src/mail/recipient.c src/mail/senders.c src/mail/alias.c" \
                       "src/mail/relay_recipients.c" \
                       "src/config/*.c" \
                       "src/util/*.c -linih -levent_core" ;;
    # dns_mx.c is #included by the target (its rdata parsers are static).
    dns_name)     echo "src/delivery/dns_name.c src/delivery/dns.c src/delivery/dns_probe.c" \
                       "src/util/*.c" \
                       "-lunbound -levent_core" ;;
    smtp_reply)   echo "src/delivery/smtp_reply.c src/smtpd/data_decoder.c" ;;
    envelope)     echo "src/mail/envelope.c src/util/*.c -levent_core" ;;
    queue_request) echo "src/mail/queue_request.c src/mail/envelope.c src/mail/auth_codec.c src/util/*.c -levent_core" ;;
    ipc)          echo "src/util/ipc.c" ;;
    remote_codec) echo "src/mail/remote_codec.c src/mail/envelope.c src/util/*.c -levent_core" ;;
    sts_policy)   echo "src/mail/sts_policy.c" ;;
    sts_txt)      echo "src/delivery/sts_txt.c" ;;
    tlsa)         echo "src/delivery/tlsa.c" ;;
    sasl)         echo "src/mail/sasl.c" ;;
    auth)         echo "src/mail/auth_codec.c src/mail/credentials.c src/mail/senders.c" \
                       "src/mail/relay_credentials.c" \
                       "src/mail/sasl.c src/util/xalloc.c src/util/log.c -lcrypt" ;;
    sts_codec)    echo "src/mail/sts_codec.c src/mail/sts_policy.c" ;;
    sts_response) echo "src/delivery/sts_response.c src/mail/sts_policy.c src/mail/tls_required.c" ;;
    tlsrpt)       echo "src/mail/tlsrpt_codec.c src/queue/tlsrpt_report.c" \
                       "src/queue/tlsrpt_store.c src/util/*.c -levent_core" ;;
    header_fields) echo "src/mail/header_fields.c src/mail/mailbox_list.c src/mail/received.c" ;;
    queue_command) echo "src/queue/queue_command.c src/mail/envelope.c src/util/*.c -levent_core" ;;
    maildrop)     echo "src/mail/maildrop_format.c src/mail/address.c src/mail/mailbox_list.c" \
                       "src/sendmail/sendmail_headers.c src/util/xalloc.c src/util/log.c" ;;
    alias)        echo "src/mail/alias.c src/mail/relay_recipients.c src/mail/address.c" \
                       "src/util/*.c -levent_core" ;;
    milter_apply) echo "src/milter/milter_apply.c src/milter/milter_types.c src/util/*.c -levent_core" ;;
    milter_codec) echo "src/mail/milter_codec.c src/mail/auth_codec.c src/util/errbuf.c" ;;
    milter_reply) echo "src/milter/milter_proto.c" ;;
    milter_check) echo "src/mail/milter_check.c src/mail/queue_request.c src/mail/envelope.c" \
                       "src/mail/auth_codec.c src/mail/address.c src/util/*.c -levent_core" ;;
    *)            return 1 ;;
    esac
}

build_one() {
    name=$1
    srcs=$(target_sources "$name") || { echo "fuzz: unknown target '$name'" >&2; return 1; }
    # shellcheck disable=SC2086  # word splitting and globbing wanted
    if ! "$CC" -std=gnu17 -g -O1 -fno-omit-frame-pointer \
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -Wall -Wextra -Wno-unused-function -DSEALPOST_VERSION='"fuzz"' \
            -Isrc -Itests/fuzz -o "$OUT/fuzz_$name" "tests/fuzz/fuzz_$name.c" $srcs \
            >"$OUT/logs/build_$name.log" 2>&1; then
        cat "$OUT/logs/build_$name.log" >&2
        echo "fuzz: $name: BUILD FAILED" >&2
        return 1
    fi
    if [ -s "$OUT/logs/build_$name.log" ]; then
        cat "$OUT/logs/build_$name.log" >&2
    fi
}

run_one() {
    name=$1
    secs=$2
    work=$(mktemp -d "${TMPDIR:-/tmp}/sealpost-fuzz-$name.XXXXXX")
    mkdir -p "$work/corpus" "$work/tmp"
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp -R "tests/fuzz/corpus/$name/." "$work/corpus/"
    fi
    dict=""
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    log="$OUT/logs/$name.log"
    rc=0
    # shellcheck disable=SC2086
    TMPDIR="$work/tmp" \
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
        "$OUT/fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$OUT/crashes/$name-" $dict \
            "$work/corpus" >"$log" 2>&1 || rc=$?
    rm -rf "$work"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $name: FAILED (exit $rc) after ${runs:-?} runs; log: $log" >&2
        # The sanitizer or invariant report, and the saved input.
        grep -E 'ERROR: |runtime error|invariant broken|SUMMARY|Test unit written|^    #[0-9] ' \
            "$log" | head -n 40 >&2 || true
        crash=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
        echo "fuzz: $name: reproduce with: $OUT/fuzz_$name ${crash:-<file in $OUT/crashes/>}" >&2
        return 1
    fi
    echo "fuzz: $name: ok, ${runs:-?} runs in ${secs}s, coverage ${cov:-?}"
}

case ${1:-} in
--build-one) build_one "$2"; exit ;;
--run-one)   run_one "$2" "$3"; exit ;;
esac

SECS=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ] && [ "${1#*[!0-9]}" = "$1" ]; then
    SECS=$1
    shift
fi
TARGETS=${*:-$ALL_TARGETS}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: clang not found: the fuzz targets need clang and libFuzzer" >&2
    echo "fuzz: (Debian packages clang and libclang-rt-14-dev; run scripts/deps.sh or make deps)" >&2
    exit 1
fi

mkdir -p "$OUT/logs" "$OUT/crashes"
FUZZ_OUT=$OUT
export FUZZ_OUT CC
echo "fuzz: building $(echo "$TARGETS" | wc -w) targets with $("$CC" --version | head -n 1)"
# shellcheck disable=SC2086
if ! printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} "$SELF" --build-one {}; then
    echo "fuzz: build failed; if the linker cannot find libFuzzer, install" \
         "libclang-rt-14-dev (scripts/deps.sh); if a src/ file now needs another" \
         "one, add it to target_sources in scripts/fuzz.sh" >&2
    exit 1
fi

echo "fuzz: running each target for ${SECS}s, $JOBS at a time"
failed=0
# shellcheck disable=SC2086
printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} "$SELF" --run-one {} "$SECS" || failed=1
total=$(echo "$TARGETS" | wc -w)
if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED; inputs that crash are in $OUT/crashes/ (see docs/FUZZING.md)" >&2
    exit 1
fi
echo "fuzz: all $total targets ran ${SECS}s each without a crash"
