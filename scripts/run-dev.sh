#!/bin/sh
# `make run`: start sealpost in the foreground on loopback with the
# development config (etc/sealpost.dev.conf): spool in var/spool, mail
# delivered to var/mail/<domain>/<local>/ (Maildir), and a self-signed
# certificate for mx.example.test generated into var/tls/ on first start.
# Ctrl-C stops it.
set -eu
BIN=$(realpath "${1:-build/sealpost}")
cd "$(dirname "$0")/.."
mkdir -p var/spool var/mail var/tls
if [ ! -s var/tls/cert.pem ] || [ ! -s var/tls/key.pem ]; then
    echo "sealpost: generating a self-signed development certificate in var/tls/"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout var/tls/key.pem -out var/tls/cert.pem -days 825 \
        -subj "/CN=mx.example.test" -addext "subjectAltName=DNS:mx.example.test" \
        2>/dev/null
    chmod 600 var/tls/key.pem
    umask 022
fi
"$BIN" check -c etc/sealpost.dev.conf >/dev/null
cat <<MSG
sealpost: MX with STARTTLS on 127.0.0.1:2525 (cleartext only for postmaster@, abuse@),
          implicit TLS on 127.0.0.1:4650. Try:
  swaks --server 127.0.0.1:2525 --tls --to alice@example.test
  swaks --server 127.0.0.1:2525 --to postmaster@example.test
  swaks --server 127.0.0.1:4650 --tls-on-connect --to bob@example.test
sealpost: mail is delivered to var/mail/example.test/<user>/new/
MSG
exec "$BIN" serve -c etc/sealpost.dev.conf
