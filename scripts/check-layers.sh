#!/bin/sh
# check-layers.sh - the source tree is the process map (docs/ARCHITECTURE.md):
# each folder under src/ may include only its own headers and those of the
# folders below it. A wrong include fails the build (CMake runs this before
# compiling) and the test suite.
#
#   util                     buffers, IPC transport, logging, ASCII classes
#   config                   settings (util)
#   mail, tls                shared by several roles (util, config)
#   sandbox                  how every child is confined (util, config)
#   smtpd, queue, delivery,  the roles (util, config, mail, tls, sandbox)
#   local, metrics
#   lmtp                     the LMTP role; also delivery/smtp_reply.h, the
#                            pure (fuzzed) SMTP reply parser it reuses
#   milter                   the milter role (util, config, mail, sandbox)
#   master                   the supervisor (all of the above)
#   sendmail                 the local submission command (util, config, mail)
#   main.c                   subcommand dispatch (everything)
set -u
cd "$(dirname "$0")/../src" || exit 2

allowed() {
    case "$1" in
        util)     echo "util" ;;
        config)   echo "util config" ;;
        mail)     echo "util config mail" ;;
        tls)      echo "util config tls" ;;
        sandbox)  echo "util config sandbox" ;;
        smtpd)    echo "util config mail tls sandbox smtpd" ;;
        queue)    echo "util config mail sandbox queue" ;;
        delivery) echo "util config mail tls sandbox delivery" ;;
        local)    echo "util config mail sandbox local" ;;
        lmtp)     echo "util config mail sandbox delivery lmtp" ;;
        metrics)  echo "util config sandbox metrics" ;;
        milter)   echo "util config mail sandbox milter" ;;
        master)   echo "util config mail tls sandbox smtpd queue delivery local lmtp metrics milter master" ;;
        sendmail) echo "util config mail sendmail" ;;
        *)        echo "" ;;
    esac
}

status=0
for dir in */; do
    dir=${dir%/}
    ok=$(allowed "$dir")
    if [ -z "$ok" ]; then
        echo "check-layers: src/$dir/ is not in the layer map (scripts/check-layers.sh)" >&2
        status=1
        continue
    fi
    for f in "$dir"/*.[ch]; do
        [ -e "$f" ] || continue
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
        while IFS= read -r line; do
            target=$(printf '%s\n' "$line" | sed 's/.*#[[:space:]]*include[[:space:]]*"\([^"/]*\)\/.*/\1/')
            case " $ok " in
                *" $target "*) ;;
                *) echo "check-layers: src/$f:${line%%:*}: $dir/ may not include $target/ (${line#*:})"
                   echo x >&3 ;;
            esac
        done 3>>"${TMPDIR:-/tmp}/check-layers.$$"
    done
done
if [ -s "${TMPDIR:-/tmp}/check-layers.$$" ]; then
    status=1
fi
rm -f "${TMPDIR:-/tmp}/check-layers.$$"
[ $status -eq 0 ] && echo "check-layers: every include goes down the layer map"
exit $status
