#!/usr/bin/env python3
"""report.py OUT -- the Markdown report of bench/service/run.sh from the raw files in OUT:

  machine.txt          key=value lines about the machine, the build and the servers
  ingest.tsv           bench_load lines (a '#' line names the columns of the lines after it)
  analyze.tsv          bench_pg drain lines, one per drain (dumps uploaded first)
  analyze-upload.tsv   the bench_load lines of those uploads
  analyze-e2e.tsv      bench_pg drain lines of uploads and analysis together
  db.tsv               bench_db lines
  wrk-*.txt            wrk's own report against nginx, to check the generator
  perf-*.txt           perf report excerpts
  commands.txt         the command lines as run

Figures over repeated runs are medians (the fastest and slowest run in brackets where it
matters); ratios are ours / theirs of those medians.
"""
import os
import re
import statistics
import sys

KINDS = [
    ("zstd50k", "~50 KB minidump, native protobuf envelope, zstd"),
    ("submit50k", "~50 KB minidump, Breakpad multipart, raw"),
    ("tiny-native", "tiny (32-byte minidump), native protobuf"),
    ("tiny-submit", "tiny (32-byte minidump), Breakpad multipart"),
]


def read_tsv(path):
    """Rows as dicts; a line starting with '#' is the header of the lines after it."""
    rows, header = [], None
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("#"):
                header = line[1:].split("\t")
                continue
            if header:
                rows.append(dict(zip(header, line.split("\t"))))
    return rows


def num(x, default=0.0):
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def f0(x):
    return "–" if x is None else f"{x:,.0f}"


def f1(x):
    return "–" if x is None else f"{x:,.1f}"


def f2(x):
    return "–" if x is None else f"{x:,.2f}"


def f3(x):
    return "–" if x is None else f"{x:.3f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def machine(out):
    m = {}
    path = os.path.join(out, "machine.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                m[k] = v
    return m


# ---- ingest ----

def ingest_groups(rows):
    """(kind, target, conc) -> aggregated figures over the reps."""
    groups = {}
    for r in rows:
        kind, _, target = r["label"].partition("/")
        groups.setdefault((kind, target, int(r["conc"])), []).append(r)
    agg = {}
    for key, rs in groups.items():
        cpu_cols = [c for c in rs[0] if c.startswith("cpu_us_")]
        rates = [num(r["per_s"]) for r in rs]
        agg[key] = {
            "reps": len(rs),
            "rate": med(rates),
            "rate_min": min(rates),
            "rate_max": max(rates),
            "p50": med([num(r["p50_ms"]) for r in rs]),
            "p99": med([num(r["p99_ms"]) for r in rs]),
            "cpu": med([sum(num(r[c]) for c in cpu_cols) for r in rs]),
            "cpu_parts": {c[7:]: med([num(r[c]) for r in rs]) for c in cpu_cols},
            "client": med([num(r["client_cpu_pct"]) for r in rs]),
            "busy": med([num(r["machine_busy_pct"]) for r in rs]),
            "other": med([num(r["other_busy_pct"]) for r in rs]),
            "fail": sum(int(num(r["dup"]) + num(r["bad"]) + num(r["errors"])) for r in rs),
            "bad": ",".join(sorted({r["bad_statuses"] for r in rs if r["bad_statuses"] != "-"})),
            "used_up": sum(int(num(r["pool_used_up"])) for r in rs),
            "body": num(rs[0]["body_bytes"]),
        }
    return agg


def ingest_report(out, lines, summary):
    rows = read_tsv(os.path.join(out, "ingest.tsv"))
    if not rows:
        return
    agg = ingest_groups(rows)
    concs = sorted({k[2] for k in agg})
    lines.append("### Ingest: uploads/s and ack latency\n")
    lines.append(
        "bench_load: closed loop, N keep-alive connections with one request each, every request a "
        "new crash (distinct dump, idempotency key), bodies prepared before the clock; a run = "
        "the database and spool emptied, warm-up, then the measured window; "
        "median of the runs [slowest .. fastest]; latency = request written to whole answer read "
        "(the ack: 202 with an ACCEPTED CrashAck, or CrashID=bp-...; nginx: 200 after the body is "
        "in its file); CPU = server CPU time per upload (ours: triage-ingest + PostgreSQL; nginx: "
        "master + workers), in µs.\n")
    for kind, title in KINDS:
        ks = [k for k in agg if k[0] == kind]
        if not ks:
            continue
        body = agg[ks[0]]["body"]
        lines.append(f"**{title}** (body {body:,.0f} bytes on average)\n")
        lines.append("| clients | ours uploads/s | p50 ms | p99 ms | CPU µs | nginx req/s | p50 ms | "
                     "p99 ms | CPU µs | nginx+fsync req/s | p50 ms | p99 ms | ours / nginx | "
                     "ours / nginx+fsync |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in concs:
            o, n, nf = (agg.get((kind, t, c)) for t in ("ours", "nginx", "nginx-fsync"))
            if not o:
                continue

            def cell(a):
                if not a:
                    return ["–"] * 4
                return [f"{f0(a['rate'])} [{f0(a['rate_min'])} .. {f0(a['rate_max'])}]",
                        f2(a["p50"]), f2(a["p99"]), f0(a["cpu"])]

            r1 = ratio(o["rate"], n["rate"] if n else None)
            r2 = ratio(o["rate"], nf["rate"] if nf else None)
            lines.append("| " + " | ".join([str(c)] + cell(o) + cell(n) + cell(nf) +
                                           [f2(r1), f2(r2)]) + " |")
        lines.append("")
        best = max((agg[k] for k in ks if k[1] == "ours"), key=lambda a: a["rate"] or 0,
                   default=None)
        if best:
            bc = [k[2] for k in ks if k[1] == "ours" and agg[k] is best][0]
            n = agg.get((kind, "nginx", bc))
            nf = agg.get((kind, "nginx-fsync", bc))
            summary.append((f"ingest, {title}: best uploads/s (clients)",
                            f"{f0(best['rate'])} ({bc}); p50/p99 {f2(best['p50'])}/{f2(best['p99'])} ms",
                            f"nginx {f0(n['rate']) if n else '–'}, nginx+fsync "
                            f"{f0(nf['rate']) if nf else '–'}; ours/nginx "
                            f"{f2(ratio(best['rate'], n['rate'] if n else None))}, ours/nginx+fsync "
                            f"{f2(ratio(best['rate'], nf['rate'] if nf else None))}"))
            c1 = agg.get((kind, "ours", 1))
            n1 = agg.get((kind, "nginx-fsync", 1))
            if c1:
                summary.append((f"ingest, {title}: 1 client",
                                f"{f0(c1['rate'])}/s; p50/p99 {f2(c1['p50'])}/{f2(c1['p99'])} ms",
                                f"nginx+fsync {f0(n1['rate']) if n1 else '–'}/s, p50 "
                                f"{f2(n1['p50']) if n1 else '–'} ms; ratio "
                                f"{f2(ratio(c1['rate'], n1['rate'] if n1 else None))}"))
    # where the CPU goes, and the machine
    lines.append("CPU per upload by process (µs, median) and the machine during the runs "
                 "(client: the generator's CPU as % of one core; busy: the whole machine, % of "
                 "all CPUs; other: busy time of processes outside the benchmark):\n")
    lines.append("| body | target | clients | CPU µs by process | client % | busy % | other % | "
                 "failures | pool used up |")
    lines.append("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for kind, title in KINDS:
        for t in ("ours", "ours-nofsync", "nginx", "nginx-fsync"):
            for c in concs:
                a = agg.get((kind, t, c))
                if not a:
                    continue
                parts = ", ".join(f"{k} {f0(v)}" for k, v in a["cpu_parts"].items())
                fails = f"{a['fail']}" + (f" ({a['bad']})" if a["bad"] else "")
                lines.append(f"| {kind} | {t} | {c} | {parts} | {f0(a['client'])} | "
                             f"{f0(a['busy'])} | {f0(a['other'])} | {fails} | "
                             f"{a['used_up']} of {a['reps']} |")
    lines.append("")
    # what the spool's fsyncs cost
    if any(k[1] == "ours-nofsync" for k in agg):
        lines.append("What durability costs: triage-ingest with fsync(2) and fdatasync(2) turned "
                     "into no-ops by fsync_shim.so (BENCH_FSYNC_SHIM=off; PostgreSQL still "
                     "commits with fsync) against the real one:\n")
        lines.append("| body | clients | ours uploads/s | p50 ms | without spool fsync | p50 ms | "
                     "ratio | nginx (no fsync) | ours without spool fsync / nginx |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind, title in KINDS:
            for c in concs:
                o, z, n = (agg.get((kind, t, c)) for t in ("ours", "ours-nofsync", "nginx"))
                if not o or not z:
                    continue
                lines.append(f"| {kind} | {c} | {f0(o['rate'])} | {f2(o['p50'])} | "
                             f"{f0(z['rate'])} | {f2(z['p50'])} | {f2(ratio(o['rate'], z['rate']))} | "
                             f"{f0(n['rate']) if n else '–'} | "
                             f"{f2(ratio(z['rate'], n['rate'] if n else None))} |")
        lines.append("")
    # the generator against wrk
    checks = []
    for b, kind in (("tiny", "tiny-submit"), ("50k", "submit50k")):
        path = os.path.join(out, f"wrk-{b}.txt")
        if not os.path.exists(path):
            continue
        text = open(path, encoding="utf-8").read()
        m = re.search(r"Requests/sec:\s+([\d.]+)", text)
        p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)

        def ms(mm):
            if not mm:
                return None
            v = float(mm.group(1))
            return v / 1000 if mm.group(2) == "us" else v * 1000 if mm.group(2) == "s" else v

        ours = agg.get((kind, "nginx", 16))
        checks.append(f"| {b} body, nginx, 16 connections | {f0(float(m.group(1))) if m else '–'} | "
                      f"{f2(ms(p50))} | {f2(ms(p99))} | {f0(ours['rate']) if ours else '–'} | "
                      f"{f2(ours['p50']) if ours else '–'} | {f2(ours['p99']) if ours else '–'} |")
    if checks:
        lines.append("The generator checked against wrk (-t1 -c16, one body posted again and "
                     "again; bench_load posts its pool in turn):\n")
        lines.append("| run | wrk req/s | p50 ms | p99 ms | bench_load req/s | p50 ms | p99 ms |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        lines.extend(checks)
        lines.append("")


# ---- analysis ----

def analyze_report(out, lines, summary):
    rows = read_tsv(os.path.join(out, "analyze.tsv"))
    ups = {r["label"]: r for r in read_tsv(os.path.join(out, "analyze-upload.tsv"))}
    e2e = read_tsv(os.path.join(out, "analyze-e2e.tsv"))
    if not rows and not e2e:
        return
    lines.append("### Analysis: analyzed dumps/s\n")
    lines.append(
        "N distinct dumps uploaded first (native, zstd, 16 clients), then triage-analyzer started "
        "with W workers (batch 16, one sandboxed child each) until no crash is received or "
        "analyzing. dumps/s by the server's clock: N over the span from the first to the last "
        "analyzed_at (the analyzer alone); wall: from the analyzer's start to drained, polled "
        "every 50 ms. CPU per dump: triage-analyzer with its children, PostgreSQL. One run per "
        "line.\n")
    lines.append("| dumps | symbols | workers | N | done / failed | buckets | dumps/s | wall s | "
                 "dumps/s wall | CPU ms/dump analyzer | postgres | upload/s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fam, sym, w = (r["label"].split("/") + ["", "", ""])[:3]
        u = ups.get(r["label"])
        lines.append(f"| {fam} | {sym} | {w[1:]} | {r['crashes']} | {r['done']} / {r['failed']} | "
                     f"{r['buckets']} | {f0(num(r['per_s_span']))} | {f2(num(r['wall_s']))} | "
                     f"{f0(num(r['per_s_wall']))} | {f3(num(r.get('cpu_ms_analyzer')))} | "
                     f"{f3(num(r.get('cpu_ms_postgres')))} | "
                     f"{f0(num(u['per_s'])) if u else '–'} |")
        summary.append((f"analysis, {fam}, {sym}, {w[1:]} worker(s)",
                        f"{f0(num(r['per_s_span']))} dumps/s",
                        f"CPU per dump: analyzer {f3(num(r.get('cpu_ms_analyzer')))} ms, "
                        f"PostgreSQL {f3(num(r.get('cpu_ms_postgres')))} ms"))
    lines.append("")
    if e2e:
        lines.append("End to end: the analyzer already running, N uploads (16 clients) and their "
                     "analysis together; wall from the first upload to the last crash analyzed.\n")
        lines.append("| dumps | symbols | workers | N | done / failed | wall s | dumps/s end to end "
                     "| CPU ms/dump analyzer | postgres | ingest |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in e2e:
            _, fam, sym, w = (r["label"].split("/") + ["", "", "", ""])[:4]
            lines.append(f"| {fam} | {sym} | {w[1:]} | {r['crashes']} | {r['done']} / "
                         f"{r['failed']} | {f2(num(r['wall_s']))} | {f0(num(r['per_s_wall']))} | "
                         f"{f3(num(r.get('cpu_ms_analyzer')))} | {f3(num(r.get('cpu_ms_postgres')))} "
                         f"| {f3(num(r.get('cpu_ms_ingest')))} |")
            summary.append((f"end to end, {fam}, {sym}, {w[1:]} workers",
                            f"{f0(num(r['per_s_wall']))} dumps/s",
                            f"{r['crashes']} uploads + analysis in {f2(num(r['wall_s']))} s"))
        lines.append("")


# ---- PostgreSQL ----

def db_report(out, lines, summary):
    rows = read_tsv(os.path.join(out, "db.tsv"))
    if not rows:
        return
    groups = {}
    for r in rows:
        groups.setdefault((r["part"], r["method"], int(r["threads"])), []).append(r)
    agg = {}
    for k, rs in groups.items():
        rates = [num(r["rows_per_s"]) for r in rs]
        agg[k] = {
            "n": len(rs), "rows": int(num(rs[0]["rows"])), "crashes": int(num(rs[0]["crashes"])),
            "batch": rs[0]["batch"], "rows_s": med(rates), "min": min(rates), "max": max(rates),
            "crashes_s": med([num(r["crashes_per_s"]) for r in rs]),
            "p50": med([num(r["p50_ms"]) for r in rs]), "p99": med([num(r["p99_ms"]) for r in rs]),
            "pg": med([num(r["pg_cpu_us_per_crash"]) for r in rs]),
            "client": med([num(r["client_cpu_us_per_crash"]) for r in rs]),
        }
    lines.append("### PostgreSQL: rows/s of the write paths against COPY\n")
    lines.append(
        "bench_db: real processed crashes (`triagectl stackwalk --json` of the corpus) as results; "
        "COPY writes the same rows, read back from the tables the write path filled, into "
        "`CREATE TABLE bench_x (LIKE x INCLUDING ALL)` copies (same columns, constraints and "
        "indexes; no triggers, not partitioned). Ingest's rows: crash_keys + crashes + jobs, 3 per "
        "crash. The analyzer's rows: the final rows of crashes (updated in place by the write "
        "path), crash_modules, buckets, bucket_hosts, the minute and hour rollups and "
        "fault_key_buckets. db_result_write time excludes claiming (its own line adds it). "
        "Median of the runs [slowest .. fastest]; latency per call (a crash, or a batch); CPU "
        "per crash.\n")
    lines.append("| rows of | method | threads | batch | crashes | rows | rows/s | crashes/s | "
                 "p50 ms | p99 ms | PostgreSQL CPU µs/crash | client CPU µs/crash |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in sorted(agg, key=lambda k: (k[0] != "ingest", k[1].startswith("COPY"), k[1], k[2])):
        a = agg[k]
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {a['batch']} | {a['crashes']} | {a['rows']} | "
                     f"{f0(a['rows_s'])} [{f0(a['min'])} .. {f0(a['max'])}] | {f0(a['crashes_s'])} "
                     f"| {f3(a['p50']) if a['p50'] else '–'} | {f3(a['p99']) if a['p99'] else '–'} "
                     f"| {f0(a['pg'])} | {f0(a['client'])} |")
    lines.append("")
    lines.append("| comparison | ours rows/s | COPY rows/s | ours / COPY |")
    lines.append("|---|---:|---:|---:|")
    comps = []
    for t in sorted({k[2] for k in agg if k[1] == "db_crash_insert"}):
        comps.append((f"db_crash_insert, {t} thread(s) / COPY, a transaction per crash, same threads",
                      ("ingest", "db_crash_insert", t), ("ingest", "COPY, a transaction per crash", t)))
        comps.append((f"db_crash_insert, {t} thread(s) / COPY, a transaction per 16 crashes",
                      ("ingest", "db_crash_insert", t), ("ingest", "COPY, a transaction per batch", 1)))
        comps.append((f"db_crash_insert, {t} thread(s) / COPY, all rows in one transaction",
                      ("ingest", "db_crash_insert", t), ("ingest", "COPY, one transaction", 1)))
    for w in sorted({k[2] for k in agg if k[1] == "db_result_write"}):
        comps.append((f"db_result_write, {w} writer(s) / COPY, a transaction per batch",
                      ("results", "db_result_write", w), ("results", "COPY, a transaction per batch", 1)))
        comps.append((f"db_result_write, {w} writer(s) / COPY, all rows in one transaction",
                      ("results", "db_result_write", w), ("results", "COPY, one transaction", 1)))
    for title, a, b in comps:
        if a in agg and b in agg:
            r = ratio(agg[a]["rows_s"], agg[b]["rows_s"])
            lines.append(f"| {title} | {f0(agg[a]['rows_s'])} | {f0(agg[b]['rows_s'])} | {f2(r)} |")
            summary.append((f"rows/s: {title}", f"{f0(agg[a]['rows_s'])} vs {f0(agg[b]['rows_s'])}",
                            f"ratio {f2(r)}"))
    lines.append("")


def perf_report(out, lines):
    files = sorted(f for f in os.listdir(out) if f.startswith("perf-") and f.endswith(".txt"))
    if not files:
        return
    lines.append("### Where the time goes (perf, sampled call stacks; self time)\n")
    for f in files:
        text = open(os.path.join(out, f), encoding="utf-8").read().strip()
        if not text:
            continue
        lines.append(f"`{f}`:\n")
        lines.append("```")
        kept = [l.rstrip() for l in text.splitlines() if not l.strip() or re.match(r"\s*[\d.]+%", l)]
        lines.extend(kept[:40])
        lines.append("```\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    m = machine(out)
    lines, summary = [], []
    lines.append("## bench/service/run.sh\n")
    lines.append(f"{m.get('date', '?')}, commit {m.get('commit', '?')} (+{m.get('dirty', '?')} files "
                 f"changed in the tree), {m.get('cpus', '?')} CPUs ({m.get('cpu', '?')}), "
                 f"{m.get('kernel', '?')}, file system {m.get('fs', '?')}; load average "
                 f"{m.get('load_before', '?')} before, {m.get('load_after', '?')} after; "
                 f"PostgreSQL {m.get('postgres', '?')} ({m.get('pg_settings', '')}), nginx "
                 f"{m.get('nginx', '?')} (Debian nginx-light), wrk {m.get('wrk', '?')}. "
                 "Everything on loopback, on one machine shared with other work.\n")
    body = []
    ingest_report(out, body, summary)
    analyze_report(out, body, summary)
    db_report(out, body, summary)
    perf_report(out, body)
    lines.append("### Summary\n")
    lines.append("| figure | ours | against |")
    lines.append("|---|---|---|")
    for a, b, c in summary:
        lines.append(f"| {a} | {b} | {c} |")
    lines.append("")
    lines.extend(body)
    cmds = os.path.join(out, "commands.txt")
    if os.path.exists(cmds):
        lines.append("### Commands\n")
        lines.append("```")
        lines.extend(open(cmds, encoding="utf-8").read().rstrip().splitlines())
        lines.append("```")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
