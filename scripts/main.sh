#!/bin/sh
# main.sh -- sets up a fresh Debian 12 machine and runs the main job: builds the project and runs
# `triagectl demo`: the service on its own embedded PostgreSQL, fed through both upload routes
# with the sample dumps the project makes itself (triage-fixgen) and the shared corpus where it
# exists, then the bucket table. `scripts/main.sh --serve` keeps the service running afterwards.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$root/build"
corpus="$root/../shared/corpus"
if [ -d "$corpus" ]; then
  set -- --corpus "$(cd "$corpus" && pwd)" "$@"
fi
cd "$root"
exec "$root/build/bin/triagectl" demo "$@"
