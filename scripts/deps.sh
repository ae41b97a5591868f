#!/bin/sh
# deps.sh -- installs everything the project builds, runs and tests with, from Debian 12's
# packages. Safe to run again; needs root (uses sudo when not root).
set -eu
PACKAGES="
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libelf-dev libdw-dev elfutils zstd libzstd-dev zlib1g-dev
  libprotobuf-c-dev protobuf-c-compiler
  libpq-dev postgresql
  libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libjansson-dev libcmocka-dev
  python3 util-linux gdb nginx-light
  hyperfine valgrind strace
  wrk linux-perf
"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing:$missing" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
# Debian's package starts a cluster on 5432; the project never uses it (its tests and the
# embedded default run their own clusters on private unix sockets), so it may stay or go.
