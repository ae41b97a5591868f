#!/bin/sh
# stackwalk.sh [BUILD_DIR] -- stackwalk timings:
#  (a) warm: bench_stackwalk, one process, one symbol store per corpus, every dump loaded and
#      analyzed again and again (load + analyze per dump, mean/median over the corpus), then
#      callgrind's instruction counts of one warm pass;
#  (b) one-shot: `triagectl stackwalk --json --symbols STORE CORE` beside `eu-stack` (exactly as
#      elfcores/README.md reproduces the reference backtraces) and `gdb -batch -ex bt` on the same
#      decompressed cores, timed with hyperfine per core for a sample (one core per program and
#      build), and by a careful loop over every core (bench/oneshot_loop.py: the tools
#      interleaved, wall and CPU time per invocation); then callgrind's instruction counts.
# Raw outputs go to $OUT/stackwalk-* and $OUT/oneshot/; tables go to stdout.
#
# Symbols come from the corpus stores only: eu-stack gets --debuginfo-path=STORE (which
# replaces its default :.debug:/usr/lib/debug); gdb gets debug-file-directory=STORE, a sysroot
# and solib-search-path holding only links into STORE (librec.so.1, libc.so.6,
# ld-linux-x86-64.so.2, by the build ids the core lists), no libthread_db search path,
# no auto-loaded scripts, debuginfod off. oneshot/paths.txt lists, from strace, the files each
# tool opened outside the store and its own libraries.
#
# Environment: CORPUS, OUT (see readers.sh), WALK_REPS (timed warm passes, default 20), HF_RUNS
# (hyperfine runs per sample core, default 10), LOOP_RUNS (whole-corpus loops, default 3),
# CALLGRIND=0 to skip valgrind, ONESHOT=0 to skip (b).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${BUILD:-$root/build-bench}}
corpus=${CORPUS:-$root/../shared/corpus}
corpus=$(cd "$corpus" && pwd)
out=${OUT:-$build/bench-out}
reps=${WALK_REPS:-20}
hf_runs=${HF_RUNS:-10}
loop_runs=${LOOP_RUNS:-3}
bench=$build/bench/bench_stackwalk
tctl=$build/bin/triagectl
bp_syms=$corpus/breakpad/testdata/symbols
ec_syms=$corpus/elfcores/symbols
for f in "$bench" "$tctl"; do
  [ -x "$f" ] || { echo "stackwalk.sh: $f missing: build with -DTRIAGE_BENCH=ON" >&2; exit 2; }
done
unset DEBUGINFOD_URLS || true  # no tool may fetch symbols from the network
mkdir -p "$out"

# ---- (a) warm ----
# Each family in a process of its own, so no family's allocations shape another's heap.
families="breakpad elfcores windows-kernel"
args_fam() {  # the --symbols and files of family $1, one per line
  case $1 in
    breakpad) printf '%s\n' --symbols "$bp_syms" "$corpus"/breakpad/testdata/*.dmp ;;
    elfcores) printf '%s\n' --symbols "$ec_syms" "$corpus"/elfcores/dumps/*.zst ;;
    windows-kernel) printf '%s\n' "$corpus"/windows-kernel/triage_x64.dmp ;;
  esac
}
: >"$out/stackwalk-warm.log"
set --
for fam in $families; do
  # shellcheck disable=SC2046
  "$bench" --reps "$reps" --warmup 2 --per-dump --family "$fam" $(args_fam "$fam") \
    >"$out/stackwalk-warm-$fam.txt" 2>>"$out/stackwalk-warm.log"
  set -- "$@" "$out/stackwalk-warm-$fam.txt"
done
python3 "$root/bench/report.py" merge "$out/stackwalk-warm.txt" "$@"
echo "$bench --reps $reps --warmup 2 --per-dump --family FAMILY [--symbols STORE] FILES..." \
  "(one process per family: breakpad --symbols CORPUS/breakpad/testdata/symbols" \
  "CORPUS/breakpad/testdata/*.dmp, elfcores --symbols CORPUS/elfcores/symbols" \
  "CORPUS/elfcores/dumps/*.zst, windows-kernel CORPUS/windows-kernel/triage_x64.dmp)" \
  >"$out/stackwalk.cmd"
awk '/^family\t/ { exit } { print }' "$out/stackwalk-warm.txt"

if [ "${CALLGRIND:-1}" != 0 ]; then
  rm -rf "$out/stackwalk-cg"
  mkdir -p "$out/stackwalk-cg"
  for fam in $families; do
    # shellcheck disable=SC2046
    valgrind --tool=callgrind --collect-atstart=no \
      --callgrind-out-file="$out/stackwalk-cg/$fam.out" \
      "$bench" --reps 1 --warmup 1 --family "$fam" $(args_fam "$fam") \
      >/dev/null 2>"$out/stackwalk-cg/$fam.log"
  done
  echo "valgrind --tool=callgrind --collect-atstart=no" \
    "--callgrind-out-file=OUT/stackwalk-cg/FAMILY.out $bench --reps 1 --warmup 1" \
    "--family FAMILY [--symbols STORE] FILES..." >>"$out/stackwalk.cmd"
  python3 "$root/bench/report.py" walk-cg "$out"
fi

[ "${ONESHOT:-1}" != 0 ] || exit 0

# ---- (b) one-shot ----
d=$out/oneshot
mkdir -p "$d/cores" "$d/solib" "$d/outputs"
rm -f "$d"/hf-*.json "$d/sample.tsv" "$d/hyperfine.log"
: >"$d/args.tsv"
: >"$d/cores.list"
# Decompressed once; the page cache keeps them warm for every tool alike.
for z in "$corpus"/elfcores/dumps/*.zst; do
  id=$(basename "$z" .zst)
  core=$d/cores/$id
  [ -s "$core" ] || zstd -q -d -c "$z" >"$core"
  echo "$core" >>"$d/cores.list"
done

# Build-id path in the store of a build id (xx/rest).
bid_path() { echo "$ec_syms/.build-id/$(echo "$1" | cut -c1-2)/$(echo "$1" | cut -c3-)"; }

# Per core: the unstripped executable for gdb, and a solib folder of links into the store.
while read -r core; do
  ids=$(eu-unstrip -n --core="$core" --debuginfo-path="$ec_syms")
  exe_id=$(echo "$ids" | awk '$NF ~ /^\/opt\/crashlab\/bin\// { sub(/@.*/, "", $2); print $2 }')
  # The shared libraries the core maps (not every program links librec), by build id.
  libs=$(echo "$ids" | awk '{ n = split($NF, p, "/"); sub(/@.*/, "", $2) }
    p[n] ~ /^(librec\.so\.1|libc\.so\.6|ld-linux-x86-64\.so\.2)$/ { print p[n], $2 }')
  echo "$libs" | grep -q '^libc\.so\.6 ' || { echo "stackwalk.sh: $core: no libc" >&2; exit 1; }
  sol=$d/solib/$(echo "$libs" | awk '{ printf "%s%s", (NR > 1 ? "-" : ""), substr($2, 1, 8) }')
  if [ ! -d "$sol" ]; then
    mkdir -p "$sol"
    echo "$libs" | while read -r lib id; do ln -s "$(bid_path "$id")" "$sol/$lib"; done
  fi
  exe=$(bid_path "$exe_id").debug
  [ -f "$exe" ] || { echo "stackwalk.sh: $core: $exe missing" >&2; exit 1; }
  printf '%s\t%s\t%s\n' "$core" "$exe" "$sol" >>"$d/args.tsv"
done <"$d/cores.list"

# The three commands (and the lean one) for one core; $1 core, $2 exe, $3 solib folder.
cmd_triagectl() { echo "$tctl stackwalk --json --symbols $ec_syms $1"; }
cmd_lean() { echo "$bench --once --family elfcores --symbols $ec_syms $1"; }
cmd_eu() { echo "eu-stack --core=$1 --debuginfo-path=$ec_syms -m -s"; }
cmd_gdb() {
  echo "gdb -nx -batch -iex 'set auto-load off' -iex 'set debuginfod enabled off'" \
    "-iex 'set libthread-db-search-path $3' -iex 'set debug-file-directory $ec_syms'" \
    "-iex 'set sysroot $3' -iex 'set solib-search-path $3' -ex bt $2 $1"
}
{
  echo "one-shot commands, for CORE (decompressed), EXE (its unstripped binary in the store)"
  echo "and SOLIB (links to librec.so.1, libc.so.6, ld-linux-x86-64.so.2 in the store):"
  echo "  $(cmd_triagectl CORE)"
  echo "  $(cmd_lean CORE)"
  echo "  $(cmd_eu CORE)"
  echo "  $(cmd_gdb CORE EXE SOLIB)"
} >>"$out/stackwalk.cmd"

# Sanity: every tool on every core once; exit status and whether a backtrace came out.
printf 'tool\tcores\texit 0\tbacktrace\n' >"$d/sanity.tsv"
for tool in triagectl lean eu gdb; do
  mkdir -p "$d/outputs/$tool"
  n=0 ok=0 bt=0
  while IFS="$(printf '\t')" read -r core exe sol; do
    o=$d/outputs/$tool/$(basename "$core").txt
    n=$((n + 1))
    if eval "$(cmd_$tool "$core" "$exe" "$sol")" <"/dev/null" >"$o" 2>&1; then ok=$((ok + 1)); fi
    case $tool in
      triagectl | lean) grep -q '"frames":\[{' "$o" && bt=$((bt + 1)) ;;
      *) grep -q '^#0 ' "$o" && bt=$((bt + 1)) ;;
    esac
  done <"$d/args.tsv"
  printf '%s\t%d\t%d\t%d\n' "$tool" "$n" "$ok" "$bt" >>"$d/sanity.tsv"
done

# Which files each tool opens beyond the store, its own shared libraries and locale data.
if command -v strace >/dev/null; then
  IFS="$(printf '\t')" read -r core exe sol <"$d/args.tsv"
  : >"$d/paths.txt"
  for tool in triagectl eu gdb; do
    eval "strace -f -e trace=open,openat -o $d/strace-$tool.txt" \
      "$(cmd_$tool "$core" "$exe" "$sol")" </dev/null >/dev/null 2>&1 || true
    echo "$tool: files opened outside the store and the core (not counting the shared" \
      "libraries the dynamic loader maps, locale data, and gdb's own Python):" >>"$d/paths.txt"
    # The loader opens a program's libraries with O_CLOEXEC; a debugger opening a module of the
    # core does not, so a library opened without it is listed.
    grep -v ENOENT "$d/strace-$tool.txt" |
      awk -F'"' '/open/ && !($2 ~ /\.so[.0-9]*$/ && /O_CLOEXEC/) { print $2 }' | sort -u |
      grep -v -e "^$ec_syms" -e "^$d" -e '^/proc' -e '^/sys' -e '^/dev' -e '^/etc' \
        -e '^/usr/lib/locale' -e '^/usr/share' -e '/gconv/' -e '/lib/terminfo' -e '^$' \
        -e '^/usr/lib/python3' -e '^/usr/local/lib/python3' |
      sed 's/^/  /' >>"$d/paths.txt" || true
    echo "  (under /usr/lib/debug: $(grep -v ENOENT "$d/strace-$tool.txt" |
      grep -c '"/usr/lib/debug' || true) opens)" >>"$d/paths.txt"
  done
  # The host's libc.so.6 / ld.so that eu-stack may open by the path in the core: same build id?
  for f in /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2; do
    echo "host $f build id: $(eu-readelf -n "$f" 2>/dev/null | awk '/Build ID:/ { print $3 }')" \
      >>"$d/paths.txt"
  done
fi

# The sample: one core per program and build configuration (labels.tsv order).
awk -F'\t' 'NR > 1 && !seen[$4 FS $5]++ { print $1 "\t" $4 " " $5 " " $6 }' \
  "$corpus/elfcores/labels.tsv" | while IFS="$(printf '\t')" read -r dump label; do
  printf '%s\t%s\n' "$(basename "$dump" .zst)" "$label" >>"$d/sample.tsv"
done
# The args.tsv line of core ID.
args_of() { awk -F'\t' -v id="$1" '$1 ~ ("/" id "$")' "$d/args.tsv"; }
while IFS="$(printf '\t')" read -r id label; do
  line=$(args_of "$id")
  core=$(echo "$line" | cut -f1)
  exe=$(echo "$line" | cut -f2)
  sol=$(echo "$line" | cut -f3)
  hyperfine -N -i --style none --warmup 2 --runs "$hf_runs" --export-json "$d/hf-$id.json" \
    -n triagectl "$(cmd_triagectl "$core")" -n lean "$(cmd_lean "$core")" \
    -n eu-stack "$(cmd_eu "$core")" -n gdb "$(cmd_gdb "$core" "$exe" "$sol")" \
    </dev/null >/dev/null 2>>"$d/hyperfine.log"
done <"$d/sample.tsv"
echo "hyperfine -N -i --warmup 2 --runs $hf_runs --export-json OUT/oneshot/hf-CORE.json" \
  "-n triagectl ... -n lean ... -n eu-stack ... -n gdb ...  (per sample core)" \
  >>"$out/stackwalk.cmd"

# The whole corpus: the careful loop (bench/oneshot_loop.py) runs every tool on every core,
# interleaved, LOOP_RUNS times, and records wall and CPU time of each invocation.
: >"$d/commands.tsv"
while IFS="$(printf '\t')" read -r core exe sol; do
  for tool in triagectl lean eu gdb; do
    name=$tool
    [ "$tool" = eu ] && name=eu-stack
    printf '%s\t%s\t%s\n' "$(basename "$core")" "$name" "$(cmd_$tool "$core" "$exe" "$sol")" \
      >>"$d/commands.tsv"
  done
done <"$d/args.tsv"
python3 "$root/bench/oneshot_loop.py" "$d/commands.tsv" "$loop_runs" "$d/loop.json"
echo "python3 bench/oneshot_loop.py OUT/oneshot/commands.tsv $loop_runs OUT/oneshot/loop.json" \
  "(every core, the four commands above interleaved, order rotating per run)" \
  >>"$out/stackwalk.cmd"

# Instruction counts of one whole run, per tool, for one core of each build configuration.
if [ "${CALLGRIND:-1}" != 0 ]; then
  rm -rf "$d/cg"
  mkdir -p "$d/cg"
  awk '!seen[$3]++ { print $1 }' "$d/sample.tsv" | while read -r id; do
    core=$(args_of "$id" | cut -f1)
    for tool in triagectl lean eu; do
      name=$tool
      [ "$tool" = eu ] && name=eu-stack
      eval "valgrind --tool=callgrind --callgrind-out-file=$d/cg/$name@$id.out" \
        "$(cmd_$tool "$core" "" "")" </dev/null >/dev/null 2>&1 || true
    done
  done
  echo "valgrind --tool=callgrind --callgrind-out-file=OUT/oneshot/cg/TOOL@CORE.out COMMAND" \
    "(one core per build configuration)" >>"$out/stackwalk.cmd"
fi

echo
echo "one-shot sanity (every core once per tool):"
sed 's/^/    /' "$d/sanity.tsv"
echo
python3 "$root/bench/report.py" oneshot "$out"
