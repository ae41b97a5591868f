#!/bin/sh
# run.sh [BUILD_DIR] -- every benchmark: builds BUILD_DIR (default build-bench beside the
# sources; RelWithDebInfo, TRIAGE_BENCH=ON) if its programs are missing, runs bench/readers.sh
# and bench/stackwalk.sh, and prints one Markdown report to paste into an issue note: the
# machine, the summary table with the targets, every detailed table, and the command lines.
# The environment knobs of readers.sh and stackwalk.sh apply (CORPUS, OUT, READER_REPS,
# WALK_REPS, HF_RUNS, LOOP_RUNS, CALLGRIND, ONESHOT). Takes 5 to 10 minutes.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${BUILD:-$root/build-bench}}
export OUT="${OUT:-$build/bench-out}"
if [ ! -x "$build/bench/bench_stackwalk" ] || [ ! -x "$build/bin/triagectl" ]; then
  "$root/scripts/build.sh" "$build" -DTRIAGE_BENCH=ON
fi
for tool in valgrind hyperfine eu-stack eu-unstrip gdb zstd python3; do
  command -v "$tool" >/dev/null || {
    echo "run.sh: $tool missing: run scripts/deps.sh" >&2
    exit 2
  }
done
mkdir -p "$OUT"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$root/bench/readers.sh" "$build" >"$OUT/readers.md"
"$root/bench/stackwalk.sh" "$build" >"$OUT/stackwalk.md"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain 2>/dev/null | grep -c . || true)
{
  echo "## bench/run.sh"
  echo
  eu_version=$(eu-stack --version | awk 'NR == 1 { print $NF }')
  gdb_version=$(gdb --version | awk 'NR == 1 { print $NF }')
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit (+$dirty files changed in the tree)," \
    "$(nproc) CPUs ($cpu), $(uname -sr), load average $load_before before, $load_after after;" \
    "build $(basename "$build") (RelWithDebInfo); eu-stack $eu_version, gdb $gdb_version," \
    "$(hyperfine --version), $(valgrind --version)."
  echo
  echo "### Summary"
  echo
  python3 "$root/bench/report.py" summary "$OUT"
  echo
  echo "### Readers (ana_load alone)"
  echo
  cat "$OUT/readers.md"
  echo
  echo "### Stackwalk"
  echo
  cat "$OUT/stackwalk.md"
  echo
  if [ -f "$OUT/oneshot/paths.txt" ]; then
    echo "### Where the one-shot tools read from (strace, first core)"
    echo
    echo '```'
    cat "$OUT/oneshot/paths.txt"
    echo '```'
    echo
  fi
  echo "### Commands (OUT=$OUT, CORPUS=the shared corpus)"
  echo
  echo '```'
  cat "$OUT/readers.cmd" "$OUT/stackwalk.cmd"
  echo '```'
} | tee "$OUT/report.md"
