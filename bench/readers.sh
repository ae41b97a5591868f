#!/bin/sh
# readers.sh [BUILD_DIR] -- the dump readers alone (ana_load: decompression + parsing, no
# unwinding) over every corpus dump, per family: dumps/s and MB/s timed in process
# (bench_readers), then callgrind's instruction counts per dump, which no other process on the
# machine can disturb. Writes its raw outputs to $OUT and prints Markdown tables.
#
# Environment: CORPUS (default ../shared/corpus beside the repository), OUT (default
# BUILD_DIR/bench-out), READER_REPS (timed passes, default 50), CALLGRIND=0 to skip valgrind.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${BUILD:-$root/build-bench}}
corpus=${CORPUS:-$root/../shared/corpus}
corpus=$(cd "$corpus" && pwd)
out=${OUT:-$build/bench-out}
reps=${READER_REPS:-50}
bin=$build/bench/bench_readers
[ -x "$bin" ] || { echo "readers.sh: $bin missing: build with -DTRIAGE_BENCH=ON" >&2; exit 2; }
mkdir -p "$out"

# The families, in the order the tables list them (microdumps are text: rejected, still timed).
# Each family runs in a process of its own, so no family's allocations shape another's heap.
families="breakpad elfcores windows-kernel"
files_of() {
  case $1 in
    breakpad) echo "$corpus/breakpad/testdata/*.dmp" ;;
    elfcores) echo "$corpus/elfcores/dumps/*.zst" ;;
    windows-kernel) echo "$corpus/windows-kernel/triage_x64.dmp" ;;
  esac
}
set --
for fam in $families; do
  # shellcheck disable=SC2046
  "$bin" --reps "$reps" --warmup 2 --per-dump --family "$fam" $(files_of "$fam") \
    >"$out/readers-$fam.txt"
  set -- "$@" "$out/readers-$fam.txt"
done
python3 "$root/bench/report.py" merge "$out/readers.txt" "$@"
echo "$bin --reps $reps --warmup 2 --per-dump --family FAMILY FILES...  (one process per" \
  "family: breakpad CORPUS/breakpad/testdata/*.dmp, elfcores CORPUS/elfcores/dumps/*.zst," \
  "windows-kernel CORPUS/windows-kernel/triage_x64.dmp)" >"$out/readers.cmd"
awk '/^family\t/ { exit } { print }' "$out/readers.txt"  # the tables, not the per-dump lines

if [ "${CALLGRIND:-1}" != 0 ]; then
  # One warm-up pass outside the count, then one counted pass: callgrind counts only inside
  # ana_load and writes one part per call (parts 1..N: warm-up, N+1..2N: counted).
  rm -rf "$out/readers-cg"
  mkdir -p "$out/readers-cg"
  for fam in $families; do
    # shellcheck disable=SC2046
    valgrind --tool=callgrind --toggle-collect=ana_load --dump-after=ana_load \
      --callgrind-out-file="$out/readers-cg/$fam.out" \
      "$bin" --reps 1 --warmup 1 --family "$fam" $(files_of "$fam") \
      >/dev/null 2>"$out/readers-cg/$fam.log"
  done
  echo "valgrind --tool=callgrind --toggle-collect=ana_load --dump-after=ana_load" \
    "--callgrind-out-file=OUT/readers-cg/FAMILY.out $bin --reps 1 --warmup 1 --family FAMILY" \
    "FILES..." >>"$out/readers.cmd"
  python3 "$root/bench/report.py" readers-cg "$out"
fi
