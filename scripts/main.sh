#!/bin/sh
# main.sh -- sets up a fresh Debian 12 machine and runs the main job: builds the project, writes
# the sample dumps the project makes itself, and reads them (plus the shared corpus where it
# exists) with `triagectl stackwalk`, one summary line per dump.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$root/build"
samples="$root/build/samples"
rm -rf "$samples"
"$root/build/bin/triage-fixgen" samples "$samples" >/dev/null
set -- "$samples"/*
corpus="$root/../shared/corpus"
if [ -d "$corpus" ]; then
  set -- "$@" "$corpus"/breakpad/testdata/*.dmp "$corpus"/elfcores/dumps/*.zst \
    "$corpus"/windows-kernel/*.dmp
fi
symbols=""
[ -d "$corpus" ] && symbols="--symbols $corpus/breakpad/testdata/symbols --symbols $corpus/elfcores/symbols"
# shellcheck disable=SC2086
"$root/build/bin/triagectl" stackwalk --summary $symbols "$@" || true
