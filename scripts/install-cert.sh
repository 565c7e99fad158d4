#!/bin/sh
# `make install` helper: generate a self-signed certificate and key in
# DIR (cert.pem, key.pem mode 0600) when neither exists, so that the
# installed example config works at once. Says what it did; never touches
# existing files. The certificate names NAME (default: this machine's
# fully qualified host name) and carries O=sealpost self-signed, by which
# `make uninstall` recognises it. Trusts only openssl(1).
#
#   scripts/install-cert.sh DIR [NAME]
set -eu
DIR=$1
NAME=${2:-$(hostname -f 2>/dev/null || hostname)}
case $NAME in
    *.*) ;;
    *) NAME=localhost ;;
esac
if [ -e "$DIR/cert.pem" ] || [ -e "$DIR/key.pem" ]; then
    echo "install: keeping the existing $DIR/cert.pem and key.pem"
    exit 0
fi
mkdir -p "$DIR"
chmod 0700 "$DIR"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" -days 825 \
    -subj "/O=sealpost self-signed/CN=$NAME" -addext "subjectAltName=DNS:$NAME" \
    2>/dev/null
chmod 0600 "$DIR/key.pem"
chmod 0644 "$DIR/cert.pem"
echo "install: generated a self-signed certificate for $NAME in $DIR (key mode 0600);"
echo "install: replace it with a real one before going live (see sealpost.conf(5), [tls])"
