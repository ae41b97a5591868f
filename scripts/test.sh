#!/bin/sh
# test.sh -- sets up a fresh Debian 12 machine and runs every test: the unit, replay and
# database suites (ctest) with warnings as errors under gcc, a clang build, the whole suite again
# under AddressSanitizer + UndefinedBehaviorSanitizer, and each fuzz target for 60 s.
# A missing PostgreSQL, tool or corpus folder is a failure, never a skip.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    gcc build and ctest only
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
[ "${1:-}" = "--quick" ] && quick=1
corpus="$root/../shared/corpus"
if [ ! -d "$corpus/breakpad" ] || [ ! -d "$corpus/elfcores" ] || [ ! -d "$corpus/windows-kernel" ]; then
  echo "test: the shared corpus is missing at $corpus (breakpad/, elfcores/, windows-kernel/)" >&2
  exit 1
fi
"$root/scripts/deps.sh"
jobs=$(nproc)

step() { printf '\n== %s\n' "$*"; }

step "gcc build, warnings as errors"
"$root/scripts/build.sh" "$root/build" -DTRIAGE_WERROR=ON
step "ctest (gcc build)"
ctest --test-dir "$root/build" --output-on-failure -j"$jobs" --timeout 1200
[ $quick -eq 1 ] && exit 0

step "clang build, warnings as errors"
CC=clang "$root/scripts/build.sh" "$root/build-clang" -DTRIAGE_WERROR=ON

step "sanitizer build (ASan + UBSan): the unit, replay and database suites under it"
# The end-to-end tests (label e2e) run the same code with real daemons and take many times
# longer under the sanitizers, so they run in the plain build only.
CC=clang "$root/scripts/build.sh" "$root/build-asan" -DTRIAGE_WERROR=ON -DTRIAGE_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j"$jobs" --timeout 2400 -LE e2e

step "fuzz targets, 60 s each"
"$root/scripts/fuzz-ci.sh"
step "all tests passed"
