#!/usr/bin/env bash
# fuzz-ci.sh -- build the libFuzzer targets (clang, -DTRIAGE_FUZZ=ON) in their own folder and
# run each for FUZZ_SECONDS (default 60) from seeds taken from the shared corpus and from
# triage-fixgen samples. Any crash, leak, timeout or out-of-memory input is copied to
# tests/fuzz/crashers/<target>/ (replayed by ctest from then on) and fails the run.
#
#   scripts/fuzz-ci.sh [TARGET...]      targets: minidump elfcore kernel input symfile unwind
#                                       multipart (default: all)
#   env: FUZZ_SECONDS, FUZZ_BUILD_DIR (default build-fuzz), TRIAGE_CORPUS_DIR, FUZZ_JOBS,
#        FUZZ_PARALLEL (targets run at once; default: the number of cores)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
secs=${FUZZ_SECONDS:-60}
corpus=${TRIAGE_CORPUS_DIR:-$root/../shared/corpus}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(minidump elfcore kernel input symfile unwind multipart)
parallel=${FUZZ_PARALLEL:-$(nproc)}

for tool in clang cmake zstd gzip; do
    command -v "$tool" >/dev/null || { echo "fuzz-ci: $tool is missing" >&2; exit 1; }
done
for d in breakpad/testdata elfcores/dumps windows-kernel; do
    [ -d "$corpus/$d" ] || { echo "fuzz-ci: corpus folder $corpus/$d is missing" >&2; exit 1; }
done

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DTRIAGE_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fuzzers=()
for t in "${targets[@]}"; do fuzzers+=("fuzz_$t"); done
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target "${fuzzers[@]}" triage-fixgen

# Seeds, made fresh each run in the build folder (never in the repository).
seeds=$build/fuzz-seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{minidump,elfcore,kernel,input,symfile,unwind,multipart}
cp "$corpus"/breakpad/testdata/*.dmp "$seeds/minidump/"
cp "$corpus"/breakpad/testdata/*.dmp "$seeds/unwind/"
cp "$root"/tests/fixtures/upload/*.txt "$seeds/multipart/"
"$build/bin/triage-fixgen" samples "$build/fuzz-samples" --count 1 --seed 1 >/dev/null
cp "$build"/fuzz-samples/*.dmp "$seeds/minidump/"
n=0
for z in "$corpus"/elfcores/dumps/core.*.zst; do
    [ $n -lt 8 ] || break
    # Notes and program headers sit at the front of a core; 128 KiB keeps mutation fast.
    zstd -dc "$z" | head -c 131072 >"$seeds/elfcore/$(basename "$z" .zst)" || true
    cp "$z" "$seeds/input/"
    n=$((n + 1))
done
head -c 131072 "$corpus/windows-kernel/triage_x64.dmp" >"$seeds/kernel/triage_x64.head"
gzip -9c "$corpus/breakpad/testdata/minidump2.dmp" >"$seeds/input/minidump2.dmp.gz"
cp "$corpus"/breakpad/testdata/module*.out "$seeds/symfile/"
find "$corpus/breakpad/testdata/symbols" -name '*.sym' -size -256k -exec cp {} "$seeds/symfile/" \;

# One target: run it, report its figures, keep what it found. Prints "ok" or "FAILED".
run_target() {
    local t=$1
    local work=$build/fuzz-corpus/$t       # inputs libFuzzer finds; kept between runs
    local art=$build/fuzz-artifacts/$t
    local log=$build/fuzz-$t.log
    rm -rf "$art"
    mkdir -p "$work" "$art"
    local rc=0
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -max_len=262144 -print_final_stats=1 -artifact_prefix="$art/" \
        "$work" "$seeds/$t" >"$log" 2>&1 || rc=$?
    {
        grep -E "^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)" \
            "$log" | sed "s/^/fuzz-ci: $t: /" || true
        local found=0 f
        for f in "$art"/*; do
            [ -e "$f" ] || continue
            found=1
            cp "$f" "$root/tests/fuzz/crashers/$t/$(basename "$f")"
            echo "fuzz-ci: $t: FOUND $(basename "$f") -> tests/fuzz/crashers/$t/"
        done
        if [ $rc -ne 0 ] || [ $found -ne 0 ]; then
            echo "fuzz-ci: $t: FAILED (exit $rc); last lines of the log:"
            grep -E "ERROR|SUMMARY|==[0-9]+==|#[0-9]+ " "$log" | tail -15 || tail -15 "$log"
        else
            echo "fuzz-ci: $t: ok"
        fi
    } >"$build/fuzz-$t.result"
}

# Targets run $parallel at a time; each prints its result when its batch is done.
status=0
i=0
while [ $i -lt ${#targets[@]} ]; do
    batch=("${targets[@]:$i:$parallel}")
    echo "fuzz-ci: running ${batch[*]} for ${secs}s each"
    for t in "${batch[@]}"; do run_target "$t" & done
    wait
    for t in "${batch[@]}"; do
        cat "$build/fuzz-$t.result"
        grep -q "FAILED" "$build/fuzz-$t.result" && status=1
    done
    i=$((i + parallel))
done
exit $status
