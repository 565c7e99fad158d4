#!/bin/sh
# `make run`: start sealpost in the foreground on loopback with the
# development config (etc/sealpost.dev.conf): spool in var/spool, mail
# delivered to var/mail/<domain>/<local>/ (Maildir). Ctrl-C stops it.
set -eu
BIN=${1:-build/sealpost}
cd "$(dirname "$0")/.."
mkdir -p var/spool var/mail
echo "sealpost: listening on 127.0.0.1:2525 (try: swaks --server 127.0.0.1:2525 --to alice@example.test)"
echo "sealpost: mail goes to var/mail/example.test/<user>/new/"
exec "$BIN" serve -c etc/sealpost.dev.conf
