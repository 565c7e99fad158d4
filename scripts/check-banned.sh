#!/bin/sh
# Fail if src/ calls an unbounded or shell-spawning function
# (strcpy strcat sprintf vsprintf gets system popen). Comments are ignored.
set -eu
cd "$(dirname "$0")/.."
hits=$(grep -rnE '(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|vsprintf|gets|system|popen)[[:space:]]*\(' src \
       | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(//|/?\*)' || true)
if [ -n "$hits" ]; then
    echo "banned calls in src/:"
    echo "$hits"
    exit 1
fi
echo "no banned calls in src/"
