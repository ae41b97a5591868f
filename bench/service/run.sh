#!/bin/sh
# run.sh [BUILD_DIR] -- the service benchmarks of issue 4 (bench/README.md, "The service"):
#   ingest   uploads/s and ack latency, ~50 KB minidumps (native zstd envelope; Breakpad
#            multipart) and tiny bodies (native; multipart), at several client concurrencies,
#            against triage-ingest on its embedded PostgreSQL with fsync on, side by side with
#            nginx-light writing each body to a file (without and with fsync), same generator;
#            and triage-ingest with its spool's fsyncs turned off, to show what they cost
#   analyze  analyzed dumps/s: N dumps uploaded, then triage-analyzer (1 and 2 workers, with and
#            without symbols) drains the queue; and end to end, uploads and analysis together
#   db       rows/s into PostgreSQL: db_crash_insert and db_result_write against raw COPY of the
#            same rows into tables with the same indexes
# then prints report.md: machine, summary table, details, where the time goes, commands.
#
# Knobs (environment): OUT (BUILD_DIR/bench-out/service), PARTS ("ingest analyze db"),
# CONC (1,4,16,64), REPS (3), DURATION (6 s measured per run), WARMUP (1 s), POOL (30000
# requests prepared per ingest run), ANALYZE_N (3000 dumps per drain), DB_CRASHES (4000),
# DB_REPS (3), PERF (1: profile with perf where it exists), KEEP (0: remove the work folder).
# Needs nginx-light, wrk and perf (scripts/deps.sh) and the shared corpus (CORPUS=...).
# Takes about 30 minutes. Loopback only.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD:-$root/build-bench}}
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")
OUT=${OUT:-$build/bench-out/service}
CORPUS=${CORPUS:-$root/../shared/corpus}
PARTS=${PARTS:-"ingest analyze db"}
CONC=${CONC:-1,4,16,64}
REPS=${REPS:-3}
DURATION=${DURATION:-6}
WARMUP=${WARMUP:-1}
POOL=${POOL:-30000}
ANALYZE_N=${ANALYZE_N:-3000}
DB_CRASHES=${DB_CRASHES:-4000}
DB_REPS=${DB_REPS:-3}
PERF=${PERF:-1}
KEEP=${KEEP:-0}

if [ ! -x "$build/bench/service/bench_load" ] || [ ! -x "$build/bin/triage-ingest" ]; then
  "$root/scripts/build.sh" "$build" -DTRIAGE_BENCH=ON
fi
for tool in nginx python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool missing: run scripts/deps.sh" >&2; exit 2; }
done
[ -d "$CORPUS/breakpad/testdata" ] || { echo "run.sh: no corpus at $CORPUS" >&2; exit 2; }
CORPUS=$(cd "$CORPUS" && pwd)
command -v perf >/dev/null || PERF=0
svc=$build/bench/service
bin=$build/bin
mkdir -p "$OUT"
rm -f "$OUT"/*.tsv "$OUT"/*.txt "$OUT"/*.md

# The work folder: the cluster, the spools, nginx. PostgreSQL runs as the postgres user when
# we are root, so the folder must be searchable by it.
work=$(mktemp -d /tmp/triage-bench-service-XXXXXX)
chmod 755 "$work"
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$p" 2>/dev/null || true
  done
  [ -n "${pg_started:-}" ] && "$svc/bench_pg" stop "$work/data" >/dev/null 2>&1 || true
  [ "$KEEP" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cmds=$OUT/commands.txt
# Runs a command, recording its line in commands.txt.
logged() {
  printf '%s\n' "$*" | sed -e "s|$work|\$WORK|g; s|$build|\$BUILD|g; s|$CORPUS|\$CORPUS|g" \
    -e "s|${DB:-@none@}|\$DB|g" \
    -E -e 's#(\$CORPUS/elfcores/dumps/core\.[0-9a-f]+\.zst ?)+#$CORPUS/elfcores/dumps/*.zst #g' >>"$cmds"
  "$@"
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
stop_pid() { # stop_pid PID: SIGTERM, wait, forget
  kill "$1" 2>/dev/null || true
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  pids=$(echo "$pids" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}

# ---- PostgreSQL, as `triagectl up` makes it ----
mkdir -p "$work/data"
"$svc/bench_pg" start "$work/data" >"$work/pg.txt"
pg_started=1
DB=$(sed -n 1p "$work/pg.txt")
PGPID=$(sed -n 2p "$work/pg.txt")
echo "bench_pg start \$WORK/data   # PostgreSQL as triagectl up starts it" >>"$cmds"

# ---- the machine ----
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "dirty=$(git -C "$root" status --porcelain 2>/dev/null | grep -c . || true)"
  echo "cpus=$(nproc)"
  echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "kernel=$(uname -sr)"
  echo "fs=$(df -T "$work" | awk 'NR == 2 { print $2 }') $(findmnt -no OPTIONS -T "$work" 2>/dev/null || true)"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')"
  echo "postgres=$("$svc/bench_pg" sql --db "$DB" "SELECT split_part(version(), ' ', 2)")"
  echo "pg_settings=$("$svc/bench_pg" sql --db "$DB" "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'max_wal_size')")"
  echo "wrk=$(command -v wrk >/dev/null && wrk -v 2>&1 | head -1 | awk '{print $2}' || echo none)"
} >"$OUT/machine.txt"

# ---- the services ----
start_ingest() { # start_ingest NAME SPOOL [ENV...]: sets ING_PID, ING_PORT
  name=$1 spool=$2
  shift 2
  env "$@" "$bin/triage-ingest" --listen=127.0.0.1:0 --spool_dir="$spool" --db_url="$DB" \
    >"$work/$name.log" 2>&1 &
  ING_PID=$!
  pids="$pids $ING_PID"
  ING_PORT=""
  i=0
  while [ -z "$ING_PORT" ] && [ $i -lt 600 ]; do
    sleep 0.1
    ING_PORT=$(sed -n 's/^listening on port \([0-9]*\).*/\1/p' "$work/$name.log" | head -1)
    i=$((i + 1))
  done
  [ -n "$ING_PORT" ] || { echo "run.sh: $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
  echo "triage-ingest --listen=127.0.0.1:0 --spool_dir=$spool --db_url=\$DB   # $name $*" |
    sed "s|$work|\$WORK|g" >>"$cmds"
}
start_nginx() { # start_nginx NAME [ENV...]: sets NG_PID, NG_PORT
  name=$1
  shift
  NG_PORT=$(free_port)
  mkdir -p "$work/$name"
  user=""
  [ "$(id -u)" = 0 ] && user="user root root;"
  sed -e "s|@DIR@|$work/$name|g" -e "s|@PORT@|$NG_PORT|" -e "s|@USER@|$user|" \
    "$root/bench/service/nginx.conf.in" >"$work/$name/nginx.conf"
  env "$@" nginx -c "$work/$name/nginx.conf" -p "$work/$name" -e "$work/$name/nginx-error.log" \
    >"$work/$name/out.log" 2>&1 &
  NG_PID=$!
  pids="$pids $NG_PID"
  i=0
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $NG_PORT), 1)" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "run.sh: nginx $name did not start" >&2; cat "$work/$name/out.log" >&2; exit 1; }
  done
  echo "nginx -c \$WORK/$name/nginx.conf   # from bench/service/nginx.conf.in; $*" | sed "s|$work|\$WORK|g" >>"$cmds"
}

# Empties the database and moves the spools' dumps aside: renaming frees no inode, whereas
# deleting thousands of files would make ext4 without a journal skip the recently freed inodes
# at every later create (recently_deleted() in fs/ext4/ialloc.c), a cost of the benchmark's
# reset that no service pays.
cat >"$work/reset.sh" <<EOF
#!/bin/sh
set -e
"$svc/bench_pg" reset --db "$DB"
d=$work/graveyard/\$(date +%s%N)
mkdir -p "\$d"
for s in $work/data/spool $work/spool-nofsync; do
  [ -d "\$s/dumps" ] && find "\$s/dumps" -maxdepth 1 -type f -exec mv -t "\$d" {} +
done
true
EOF
chmod +x "$work/reset.sh"

minidumps="$CORPUS/breakpad/testdata/linux_raise_sigabrt.dmp
$CORPUS/breakpad/testdata/linux_inside_module_exe_region1.dmp
$CORPUS/breakpad/testdata/linux_inside_module_exe_region2.dmp
$CORPUS/breakpad/testdata/linux_write_to_outside_module.dmp"
with_symbols="$CORPUS/breakpad/testdata/linux_null_read_av.dmp
$CORPUS/breakpad/testdata/linux_overflow.dmp
$CORPUS/breakpad/testdata/linux_stacksmash.dmp
$CORPUS/breakpad/testdata/minidump2.dmp
$CORPUS/breakpad/testdata/minidump_32bit_crash_addr.dmp"

# ---- 1. ingest ----
if echo "$PARTS" | grep -qw ingest; then
  start_ingest ingest "$work/data/spool"
  OURS_PID=$ING_PID OURS_PORT=$ING_PORT
  start_ingest ingest-nofsync "$work/spool-nofsync" LD_PRELOAD="$svc/fsync_shim.so" BENCH_FSYNC_SHIM=off
  NOF_PID=$ING_PID NOF_PORT=$ING_PORT
  start_nginx nginx
  NGX_PID=$NG_PID NGX_PORT=$NG_PORT
  start_nginx nginx-fsync LD_PRELOAD="$svc/fsync_shim.so" BENCH_FSYNC_SHIM="writes:$work/nginx-fsync/body/"
  NGF_PID=$NG_PID NGF_PORT=$NG_PORT
  tsv=$OUT/ingest.tsv
  common="--concurrency $CONC --reps $REPS --duration $DURATION --warmup $WARMUP"
  seed=0
  for kind in zstd50k submit50k tiny-native tiny-submit; do
    case $kind in
      zstd50k) args="--kind native --dump $(echo $minidumps)"; path=/api/v1/crashes ;;
      submit50k) args="--kind submit --dump $(echo $minidumps)"; path=/submit ;;
      tiny-native) args="--kind native --tiny"; path=/api/v1/crashes ;;
      tiny-submit) args="--kind submit --tiny"; path=/submit ;;
    esac
    targets="ours nginx nginx-fsync"
    case $kind in zstd50k | tiny-native) targets="$targets ours-nofsync" ;; esac
    for target in $targets; do
      seed=$((seed + 1000000))
      case $target in
        ours) t="--url http://127.0.0.1:$OURS_PORT$path --pool $POOL --seed $seed --between $work/reset.sh --cpu ingest=$OURS_PID --cpu postgres=$PGPID" ;;
        ours-nofsync) t="--url http://127.0.0.1:$NOF_PORT$path --pool $POOL --seed $seed --between $work/reset.sh --cpu ingest=$NOF_PID --cpu postgres=$PGPID" ;;
        nginx) t="--url http://127.0.0.1:$NGX_PORT$path --expect 200 --pool 2000 --cycle --cpu nginx=$NGX_PID" ;;
        nginx-fsync) t="--url http://127.0.0.1:$NGF_PORT$path --expect 200 --pool 2000 --cycle --cpu nginx=$NGF_PID" ;;
      esac
      # shellcheck disable=SC2086
      logged "$svc/bench_load" $args $t $common --label "$kind/$target" --header >>"$tsv"
    done
  done
  # The generator against wrk: nginx at c=16, the same bodies' sizes.
  if command -v wrk >/dev/null; then
    cat >"$work/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
EOF
    head -c 670 /dev/urandom >"$work/tiny.bin"
    head -c 51194 /dev/urandom >"$work/50k.bin"
    for b in tiny 50k; do
      echo "BODY=\$WORK/$b.bin wrk -t1 -c16 -d${DURATION}s --latency -s \$WORK/post.lua http://127.0.0.1:PORT/submit" >>"$cmds"
      BODY="$work/$b.bin" wrk -t1 -c16 -d"${DURATION}s" --latency -s "$work/post.lua" \
        "http://127.0.0.1:$NGX_PORT/submit" >"$OUT/wrk-$b.txt" 2>&1 || true
    done
  fi
  # Where the collector's time goes: perf on one extra run of each kind at c=1 and c=16.
  if [ "$PERF" = 1 ]; then
    for kind in zstd50k submit50k tiny-native; do
      case $kind in
        zstd50k) args="--kind native --dump $(echo $minidumps)"; path=/api/v1/crashes ;;
        submit50k) args="--kind submit --dump $(echo $minidumps)"; path=/submit ;;
        tiny-native) args="--kind native --tiny"; path=/api/v1/crashes ;;
      esac
      for c in 1 16; do
        "$work/reset.sh"
        perf record -F 499 -g -p "$OURS_PID" -o "$work/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
        perfpid=$!
        # shellcheck disable=SC2086
        "$svc/bench_load" $args --url "http://127.0.0.1:$OURS_PORT$path" --pool "$POOL" \
          --seed 90000000 --concurrency $c --duration "$DURATION" --warmup 0 \
          --label "perf/$kind" >/dev/null 2>&1 || true
        wait $perfpid || true
        { perf report -i "$work/perf.data" --no-children -g none --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -12
          echo
          perf report -i "$work/perf.data" --no-children -g none --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -30
        } >"$OUT/perf-ingest-$kind-c$c.txt"
      done
    done
    echo "perf record -F 499 -g -p INGEST_PID -- sleep $DURATION; perf report --no-children --sort dso,symbol" >>"$cmds"
  fi
  for p in $OURS_PID $NOF_PID $NGX_PID $NGF_PID; do stop_pid "$p"; done
fi

# ---- 2. analysis ----
if echo "$PARTS" | grep -qw analyze; then
  start_ingest ingest "$work/data/spool"
  OURS_PID=$ING_PID OURS_PORT=$ING_PORT
  tsv=$OUT/analyze.tsv
  up=$OUT/analyze-upload.tsv
  seed=500000000
  first=--header
  analyze() { # analyze LABEL WORKERS SYMBOLS(dir or -) E2E(0|1) DUMPS...
    label=$1 workers=$2 sym=$3 e2e=$4
    shift 4
    seed=$((seed + 1000000))
    "$work/reset.sh"
    symflag=""
    [ "$sym" != - ] && symflag="--symbols=$sym"
    load="$svc/bench_load --url http://127.0.0.1:$OURS_PORT/api/v1/crashes --kind native --concurrency 16 --requests $ANALYZE_N --seed $seed --label $label --header --dump $*"
    if [ "$e2e" = 0 ]; then
      # shellcheck disable=SC2086
      logged $load >>"$up"
    fi
    # shellcheck disable=SC2086
    "$bin/triage-analyzer" --db_url="$DB" --workers="$workers" $symflag >"$work/analyzer.log" 2>&1 &
    ana=$!
    pids="$pids $ana"
    echo "triage-analyzer --db_url=\$DB --workers=$workers $symflag" | sed "s|$CORPUS|\$CORPUS|g" >>"$cmds"
    if [ "$e2e" = 0 ]; then
      logged "$svc/bench_pg" drain --db "$DB" --expect "$ANALYZE_N" --timeout 1800 --label "$label" \
        --cpu analyzer=$ana --cpu postgres="$PGPID" $first >>"$tsv"
    else
      # upload and analysis together: the clock starts with the first upload
      logged "$svc/bench_pg" drain --db "$DB" --expect "$ANALYZE_N" --timeout 1800 --label "$label" \
        --cpu analyzer=$ana --cpu postgres="$PGPID" --cpu ingest="$OURS_PID" $first >"$work/e2e.tsv" &
      drain=$!
      # shellcheck disable=SC2086
      logged $load >>"$up"
      wait $drain
      cat "$work/e2e.tsv" >>"$OUT/analyze-e2e.tsv"
    fi
    first=""
    stop_pid $ana
  }
  # shellcheck disable=SC2086
  for w in 1 2; do analyze "minidump-50k/no-symbols/w$w" $w - 0 $minidumps; done
  for s in - "$CORPUS/breakpad/testdata/symbols"; do
    tag=symbols; [ "$s" = - ] && tag=no-symbols
    # shellcheck disable=SC2086
    for w in 1 2; do analyze "breakpad-symbolized/$tag/w$w" $w "$s" 0 $with_symbols; done
  done
  for s in - "$CORPUS/elfcores/symbols"; do
    tag=symbols; [ "$s" = - ] && tag=no-symbols
    # shellcheck disable=SC2086
    for w in 1 2; do analyze "elfcore/$tag/w$w" $w "$s" 0 "$CORPUS"/elfcores/dumps/*.zst; done
  done
  first=--header
  # shellcheck disable=SC2086
  analyze "e2e/minidump-50k/no-symbols/w2" 2 - 1 $minidumps
  analyze "e2e/elfcore/symbols/w2" 2 "$CORPUS/elfcores/symbols" 1 "$CORPUS"/elfcores/dumps/*.zst
  stop_pid "$OURS_PID"
fi

# ---- 3. PostgreSQL write paths ----
if echo "$PARTS" | grep -qw db; then
  prof=$work/profiles.jsonl
  (cd "$CORPUS/breakpad/testdata" &&
    "$bin/triagectl" stackwalk --json --dwarf-inlines --symbols symbols $(ls ./*.dmp | grep -v microdump) \
      2>/dev/null) >"$prof" || true
  (cd "$CORPUS/elfcores" && "$bin/triagectl" stackwalk --json --dwarf-inlines --symbols symbols dumps/*.zst \
    2>/dev/null) >>"$prof" || true
  echo "triagectl stackwalk --json --dwarf-inlines --symbols symbols ...   # profiles: breakpad/testdata/*.dmp but microdumps, elfcores/dumps/*.zst" >>"$cmds"
  "$svc/bench_pg" reset --db "$DB"
  logged "$svc/bench_db" --db "$DB" --profiles "$prof" --crashes "$DB_CRASHES" --reps "$DB_REPS" \
    --pg-pid "$PGPID" --header >"$OUT/db.tsv"
  if [ "$PERF" = 1 ]; then
    # PostgreSQL's backends during one more round of the analyzer's write path
    perf record -F 499 -g -a -o "$work/perf-pg.data" -- \
      "$svc/bench_db" --db "$DB" --profiles "$prof" --crashes "$DB_CRASHES" --reps 1 \
      --writers 1 --parts results >/dev/null 2>&1 || true
    perf report -i "$work/perf-pg.data" --comm postgres --no-children -g none --sort symbol --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -40 >"$OUT/perf-postgres.txt" || true
    echo "perf record -F 499 -g -a -- bench_db ... --reps 1 --writers 1 --parts results; perf report --comm postgres --no-children --sort symbol" >>"$cmds"
  fi
fi

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
python3 "$root/bench/service/report.py" "$OUT" | tee "$OUT/report.md"
