#!/bin/sh
# Install the Debian 12 packages sealpost needs to build and test, only
# when some are missing. Idempotent; silent when everything is present.
set -eu

PACKAGES="build-essential cmake pkg-config
libssl-dev libevent-dev libunbound-dev libcurl4-openssl-dev libinih-dev
libseccomp-dev libcmocka-dev zlib1g-dev
clang libclang-rt-14-dev
openssl python3 python3-pytest python3-aiosmtpd swaks libnet-ssleay-perl nsd ldnsutils
systemd man-db groff-base procps util-linux
dovecot-imapd dovecot-lmtpd
python3-prometheus-client prometheus"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Another apt or dpkg (an unattended upgrade, a second terminal) may hold
# the locks: wait for it, up to 10 minutes, instead of failing at once.
LOCK_WAIT="-o DPkg::Lock::Timeout=600"
# shellcheck disable=SC2086
$SUDO apt-get $LOCK_WAIT update -qq
# shellcheck disable=SC2086
$SUDO apt-get $LOCK_WAIT install -y -qq --no-install-recommends $missing >/dev/null
