#!/usr/bin/env python3
"""report.py -- turns the raw outputs of the bench/ scripts into Markdown tables.

  report.py readers-cg OUT   callgrind instruction counts of ana_load per dump (bench/readers.sh)
  report.py walk-cg OUT      callgrind counts of a warm load + analyze per dump (stackwalk.sh)
  report.py oneshot OUT      hyperfine and callgrind figures of the one-shot runs (stackwalk.sh)
  report.py summary OUT      one table of the headline figures and the targets (bench/run.sh)
  report.py merge DEST IN... one bench program output from several (one family each): the
                             first's heading and table header, every table row, then the
                             per-dump lines under one header

OUT is the folder the scripts write to. Callgrind part files hold a `totals:` line (the Ir
count of that part) and a `desc: Trigger:` line (what made callgrind write it); hyperfine's JSON
export holds, per command, the wall times of every run and the mean user and system times.
Formats: valgrind's callgrind manual, "Callgrind Format Specification"; hyperfine --export-json.
"""
import glob
import json
import math
import os
import re
import statistics
import sys


def parts(prefix):
    """Callgrind parts PREFIX.1, PREFIX.2, ... in order: (trigger, Ir) each."""
    found = []
    for path in glob.glob(glob.escape(prefix) + ".*"):
        m = re.search(r"\.(\d+)$", path)
        if not m:
            continue
        trigger, total = "", None
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("desc: Trigger:"):
                    trigger = line.split(":", 2)[2].strip()
                elif line.startswith("totals:"):
                    total = int(line.split()[1])
        if total is not None:
            found.append((int(m.group(1)), trigger, total))
    found.sort()
    return [(t, n) for _, t, n in found]


def per_dump_rows(path, family_col=0):
    """The TSV lines a bench program prints after its tables (header starts with 'family')."""
    rows, header = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("family\t"):
                header = line.split("\t")
                continue
            if header and line:
                rows.append(dict(zip(header, line.split("\t"))))
    return rows


def fmt_m(n):
    return "%.2f M" % (n / 1e6)


def readers_cg(out):
    rows = per_dump_rows(os.path.join(out, "readers.txt"))
    print("callgrind: instructions (Ir) inside ana_load() per dump, after one untimed warm-up "
          "load of each\n")
    print("| family | dumps | Ir per dump: mean | median | max (dump) | Ir per pass | "
          "Ir per decompressed byte | Ir per input byte |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for fam in ("breakpad", "elfcores", "windows-kernel"):
        dumps = [r for r in rows if r["family"] == fam]
        p = parts(os.path.join(out, "readers-cg", fam + ".out"))
        n = len(dumps)
        if n == 0 or len(p) != 2 * n:
            print("| %s | %d | (callgrind wrote %d parts, expected %d) | | | | | |"
                  % (fam, n, len(p), 2 * n))
            continue
        counted = [ir for _, ir in p[n:]]
        total = sum(counted)
        dec = sum(int(r["decompressed_bytes"]) for r in dumps)
        inp = sum(int(r["input_bytes"]) for r in dumps)
        worst = max(range(n), key=lambda i: counted[i])
        print("| %s | %d | %s | %s | %s (%s) | %s | %.2f | %.2f |"
              % (fam, n, fmt_m(statistics.mean(counted)), fmt_m(statistics.median(counted)),
                 fmt_m(counted[worst]), os.path.basename(dumps[worst]["dump"]), fmt_m(total),
                 total / dec, total / inp))


def walk_cg(out):
    rows = per_dump_rows(os.path.join(out, "stackwalk-warm.txt"))
    print("callgrind: instructions (Ir) of ana_load() + ana_analyze() per dump in the last "
          "warm pass (symbol cache warm)\n")
    print("| family | dumps | Ir per dump: mean | median | max (dump) |")
    print("|---|---:|---:|---:|---:|")
    for fam in ("breakpad", "elfcores", "windows-kernel"):
        walked = [r["dump"] for r in rows if r["family"] == fam and r.get("frames") != "rejected"]
        p = [(t, ir) for t, ir in parts(os.path.join(out, "stackwalk-cg", fam + ".out"))
             if t.startswith("Client Request")]
        if not walked or len(p) != len(walked):
            print("| %s | %d | (callgrind wrote %d parts) | | |" % (fam, len(walked), len(p)))
            continue
        counted = [ir for _, ir in p]
        worst = max(range(len(counted)), key=lambda i: counted[i])
        print("| %s | %d | %s | %s | %s (%s) |"
              % (fam, len(counted), fmt_m(statistics.mean(counted)),
                 fmt_m(statistics.median(counted)), fmt_m(counted[worst]),
                 os.path.basename(walked[worst])))


def load_hf(path):
    with open(path, encoding="utf-8") as f:
        res = json.load(f)["results"]
    return {r["command"]: r for r in res}


def cpu(r):
    return r["user"] + r["system"]


def geomean(v):
    v = [x for x in v if x > 0]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else float("nan")


TOOLS = ("triagectl", "lean", "eu-stack", "gdb")


def load_loop(d):
    p = os.path.join(d, "loop.json")
    if not os.path.exists(p):
        return None
    with open(p, encoding="utf-8") as f:
        return json.load(f)


def loop_stats(loop, tool, ours="triagectl"):
    """Means of one tool over the loop, and its paired ratios against ours."""
    walls, cpus, ok, n, wr, cr, faster = [], [], 0, 0, [], [], 0
    for by_tool in loop["cores"].values():
        m, o = by_tool[tool], by_tool[ours]
        walls += m["wall"]
        cpus += m["cpu"]
        ok += sum(1 for x in m["status"] if x == 0)
        n += len(m["status"])
        mw, mc = statistics.median(m["wall"]), statistics.median(m["cpu"])
        ow, oc = statistics.median(o["wall"]), statistics.median(o["cpu"])
        wr.append(ow / mw)
        cr.append(oc / mc if mc > 0 else float("nan"))
        faster += oc < mc
    return {"wall_ms": statistics.mean(walls) * 1e3, "cpu_ms": statistics.mean(cpus) * 1e3,
            "ok": ok, "n": n, "wall_ratio": geomean(wr), "cpu_ratio": geomean(cr),
            "faster": faster}


def oneshot(out):
    d = os.path.join(out, "oneshot")
    labels = {}
    lp = os.path.join(d, "sample.tsv")
    if os.path.exists(lp):
        with open(lp, encoding="utf-8") as f:
            for line in f:
                core, label = line.rstrip("\n").split("\t", 1)
                labels[core] = label
    samples = sorted(glob.glob(os.path.join(d, "hf-*.json")))
    if samples:
        print("hyperfine, one core per run (decompressed, page cache warm): wall ms mean "
              "[min]; CPU = user + system ms (mean); ratios are ours (triagectl) over the other "
              "tool, < 1 means we are faster\n")
        print("| core | build | triagectl wall | CPU | lean CPU | eu-stack wall | CPU | "
              "gdb wall | CPU | ours/eu-stack wall | CPU | ours/gdb wall | CPU |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ratios = {k: [] for k in ("eu_wall", "eu_cpu", "eu_min", "gdb_wall", "gdb_cpu",
                                   "gdb_min", "lean_eu_wall", "lean_eu_cpu")}
        for path in samples:
            core = os.path.basename(path)[3:-5]
            r = load_hf(path)
            if not all(t in r for t in TOOLS):
                continue
            o, le, e, g = (r[t] for t in TOOLS)
            ratios["eu_wall"].append(o["mean"] / e["mean"])
            ratios["eu_cpu"].append(cpu(o) / cpu(e))
            ratios["eu_min"].append(o["min"] / e["min"])
            ratios["gdb_wall"].append(o["mean"] / g["mean"])
            ratios["gdb_cpu"].append(cpu(o) / cpu(g))
            ratios["gdb_min"].append(o["min"] / g["min"])
            ratios["lean_eu_wall"].append(le["mean"] / e["mean"])
            ratios["lean_eu_cpu"].append(cpu(le) / cpu(e))
            print("| %s | %s | %.1f [%.1f] | %.1f | %.1f | %.1f [%.1f] | %.1f | %.1f [%.1f] | "
                  "%.1f | %.2f | %.2f | %.3f | %.3f |"
                  % (core, labels.get(core, ""), o["mean"] * 1e3, o["min"] * 1e3,
                     cpu(o) * 1e3, cpu(le) * 1e3, e["mean"] * 1e3, e["min"] * 1e3,
                     cpu(e) * 1e3, g["mean"] * 1e3, g["min"] * 1e3, cpu(g) * 1e3,
                     o["mean"] / e["mean"], cpu(o) / cpu(e), o["mean"] / g["mean"],
                     cpu(o) / cpu(g)))
        n = len(ratios["eu_wall"])
        if n:
            print("| **geometric mean** (%d cores) | | | | | | | | | **%.2f** | **%.2f** | "
                  "**%.3f** | **%.3f** |"
                  % (n, geomean(ratios["eu_wall"]), geomean(ratios["eu_cpu"]),
                     geomean(ratios["gdb_wall"]), geomean(ratios["gdb_cpu"])))
            print("\nratios of the fastest runs (min wall): ours/eu-stack %.2f, ours/gdb %.3f; "
                  "lean (bench_stackwalk --once: the same calls and JSON without triagectl's "
                  "other shared libraries) over eu-stack: wall %.2f, CPU %.2f (geometric means)"
                  % (geomean(ratios["eu_min"]), geomean(ratios["gdb_min"]),
                     geomean(ratios["lean_eu_wall"]), geomean(ratios["lean_eu_cpu"])))
    loop = load_loop(d)
    if loop:
        print("\ncareful loop, whole corpus (bench/oneshot_loop.py): %d runs over %d cores, "
              "the tools interleaved at each core; ms per invocation (mean over all); ratios "
              "are geometric means over cores of ours (triagectl) / tool, each core's times "
              "being its median run\n" % (loop["runs"], len(loop["cores"])))
        print("| tool | wall ms | CPU ms | exit 0 | wall ratio ours/tool | CPU ratio ours/tool "
              "| cores where ours is faster (CPU) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for t in loop["tools"]:
            s = loop_stats(loop, t)
            if t == "triagectl":
                print("| %s | %.1f | %.1f | %d/%d | | | |"
                      % (t, s["wall_ms"], s["cpu_ms"], s["ok"], s["n"]))
                continue
            print("| %s | %.1f | %.1f | %d/%d | %.3f | %.3f | %d/%d |"
                  % (t, s["wall_ms"], s["cpu_ms"], s["ok"], s["n"], s["wall_ratio"],
                     s["cpu_ratio"], s["faster"], len(loop["cores"])))
    cg = sorted(glob.glob(os.path.join(d, "cg", "*.out")))
    if cg:
        counts = {}
        for path in cg:
            tool, core = os.path.basename(path)[:-4].split("@", 1)
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("totals:"):
                        counts.setdefault(core, {})[tool] = int(line.split()[1])
        print("\ncallgrind, whole process, one run per tool and core: instructions (Ir); "
              "no other process can change these\n")
        print("| core | build | triagectl | lean | eu-stack | ours/eu-stack | lean/eu-stack |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for core, c in sorted(counts.items()):
            if not all(t in c for t in ("triagectl", "lean", "eu-stack")):
                continue
            print("| %s | %s | %s | %s | %s | %.3f | %.3f |"
                  % (core, labels.get(core, ""), fmt_m(c["triagectl"]), fmt_m(c["lean"]),
                     fmt_m(c["eu-stack"]), c["triagectl"] / c["eu-stack"],
                     c["lean"] / c["eu-stack"]))


def md_table(path):
    """The first Markdown table of a bench program's output, as dicts by column name."""
    rows, header = [], None
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("|"):
                if header:
                    break
                continue
            cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
            if header is None:
                header, seen = [], {}
                for c in cells:  # repeated names ("by CPU") get _2, _3...
                    seen[c] = seen.get(c, 0) + 1
                    header.append(c if seen[c] == 1 else "%s_%d" % (c, seen[c]))
            elif not set(cells[0]) <= set("-:"):
                rows.append(dict(zip(header, cells)))
    return rows


def lead(cell):
    """The leading number of a cell such as '2413.7 [584.2 .. 2604.3]'."""
    m = re.match(r"\s*([-0-9.]+)", cell or "")
    return float(m.group(1)) if m else float("nan")


def summary(out):
    print("| figure | breakpad | elfcores | windows-kernel | target |")
    print("|---|---:|---:|---:|---|")
    fams = ("breakpad", "elfcores", "windows-kernel")
    rd = {r["family"]: r for r in md_table(os.path.join(out, "readers.txt"))}
    if rd:
        def row(name, col, fmt):
            print("| %s | %s | |" % (name, " | ".join(
                fmt % lead(rd[f][col]) if f in rd else "" for f in fams)))
        row("readers: dumps", "dumps", "%.0f")
        print("| readers: rejected (not dumps) | %s | |"
              % " | ".join(rd[f]["rejected"] if f in rd else "" for f in fams))
        def row2(name, col, cpu_col, fmt):
            print("| %s | %s | |" % (name, " | ".join(
                (fmt + " (" + fmt + ")") % (lead(rd[f][cpu_col]), lead(rd[f][col]))
                if f in rd else "" for f in fams)))
        row2("readers: dumps/s by CPU time (wall, median pass)", "dumps/s", "dumps/s by CPU",
             "%.0f")
        row2("readers: MB/s of decompressed bytes by CPU time (wall)", "MB/s decompressed",
             "by CPU", "%.0f")
        row2("readers: MB/s of input bytes by CPU time (wall)", "MB/s input", "by CPU_2",
             "%.1f")
        row("readers: minor page faults per load", "page faults per dump", "%.0f")
    rows = per_dump_rows(os.path.join(out, "readers.txt")) if rd else []
    cells = []
    for fam in fams:
        dumps = [r for r in rows if r["family"] == fam]
        p = parts(os.path.join(out, "readers-cg", fam + ".out"))
        n = len(dumps)
        cells.append(fmt_m(statistics.mean([ir for _, ir in p[n:]]))
                     if n and len(p) == 2 * n else "")
    if any(cells):
        print("| readers: Ir per dump (callgrind, mean) | %s | |" % " | ".join(cells))
    wk = {r["family"]: r for r in md_table(os.path.join(out, "stackwalk-warm.txt"))}
    if wk:
        worst = max(lead(r["walk max"]) for r in wk.values())
        over = sum(int(lead(r["dumps >= 1 ms"])) for r in wk.values())
        for col, name, target in (
                ("walk mean", "warm stackwalk (load + analyze): ms per dump, mean",
                 "< 1 ms per dump"),
                ("walk median", "warm stackwalk: ms per dump, median", ""),
                ("walk max", "warm stackwalk: ms, slowest dump",
                 "**%s** (slowest %.3f ms, %d dumps >= 1 ms)"
                 % ("met" if worst < 1 and over == 0 else "NOT met", worst, over)),
                ("load mean", "warm: of which ana_load, ms mean", ""),
                ("analyze mean", "warm: of which ana_analyze, ms mean", ""),
                ("json mean", "warm: then ana_json_text, ms mean", ""),
                ("page faults per dump", "warm: minor page faults per dump", "")):
            fmt = "%.0f" if "faults" in col else "%.3f"
            print("| %s | %s | %s |" % (name, " | ".join(
                fmt % lead(wk[f][col]) if f in wk else "" for f in fams), target))
    wrows = per_dump_rows(os.path.join(out, "stackwalk-warm.txt")) if wk else []
    if wrows:
        cells, over = [], 0
        for fam in fams:
            t = [(float(r["walk_us"]) + float(r["json_us"])) / 1e3 for r in wrows
                 if r["family"] == fam and r.get("frames") != "rejected"]
            over += sum(1 for x in t if x >= 1)
            cells.append("%.3f (%.3f)" % (statistics.mean(t), max(t)) if t else "")
        print("| warm walk + JSON: ms per dump, mean (slowest) | %s | %d dumps >= 1 ms with "
              "JSON |" % (" | ".join(cells), over))
    cells = []
    for fam in fams:
        walked = [r for r in wrows if r["family"] == fam and r.get("frames") != "rejected"]
        p = [ir for t, ir in parts(os.path.join(out, "stackwalk-cg", fam + ".out"))
             if t.startswith("Client Request")]
        cells.append(fmt_m(statistics.mean(p)) if walked and len(p) == len(walked) else "")
    if any(cells):
        print("| warm stackwalk: Ir per dump (callgrind, mean) | %s | |" % " | ".join(cells))
    d = os.path.join(out, "oneshot")
    samples = [load_hf(p) for p in sorted(glob.glob(os.path.join(d, "hf-*.json")))]
    samples = [r for r in samples if all(t in r for t in TOOLS)]
    if samples:
        for tool, name in (("eu-stack", "eu-stack"), ("gdb", "gdb -batch -ex bt")):
            cpu_r = geomean([cpu(r["triagectl"]) / cpu(r[tool]) for r in samples])
            wall_r = geomean([r["triagectl"]["mean"] / r[tool]["mean"] for r in samples])
            min_r = geomean([r["triagectl"]["min"] / r[tool]["min"] for r in samples])
            target = ""
            if tool == "eu-stack":
                target = "<= 1: **%s** by CPU time" % ("met" if cpu_r <= 1 else "NOT met")
            print("| one-shot ours/%s, CPU (user+sys), geomean of %d cores | | %.3f | | %s |"
                  % (name, len(samples), cpu_r, target))
            print("| one-shot ours/%s, wall mean (fastest run) | | %.3f (%.3f) | | |"
                  % (name, wall_r, min_r))
        lean = geomean([cpu(r["lean"]) / cpu(r["eu-stack"]) for r in samples])
        print("| one-shot lean/eu-stack, CPU (analyzer library alone, no triagectl libs) | | "
              "%.3f | | |" % lean)
        ms = statistics.mean(cpu(r["triagectl"]) for r in samples) * 1e3
        print("| one-shot triagectl: CPU ms per core, mean | | %.1f | | |" % ms)
    loop = load_loop(d)
    if loop:
        for tool, name in (("eu-stack", "eu-stack"), ("gdb", "gdb")):
            st = loop_stats(loop, tool)
            target = ""
            if tool == "eu-stack":
                target = "<= 1: **%s** by CPU time" % ("met" if st["cpu_ratio"] <= 1 else
                                                       "NOT met")
            print("| careful loop, all %d cores x %d runs: ours/%s CPU (wall) | | %.3f (%.3f) "
                  "| | %s |" % (len(loop["cores"]), loop["runs"], name, st["cpu_ratio"],
                                st["wall_ratio"], target))
        for t in loop["tools"]:
            st = loop_stats(loop, t)
            print("| careful loop: %s ms per core, CPU (wall) | | %.1f (%.1f) | | |"
                  % (t, st["cpu_ms"], st["wall_ms"]))
    counts = {}
    for path in glob.glob(os.path.join(d, "cg", "*.out")):
        tool, core = os.path.basename(path)[:-4].split("@", 1)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("totals:"):
                    counts.setdefault(core, {})[tool] = int(line.split()[1])
    rs = [c["triagectl"] / c["eu-stack"] for c in counts.values()
          if "triagectl" in c and "eu-stack" in c]
    if rs:
        print("| one-shot ours/eu-stack, instructions (callgrind), geomean of %d cores | | "
              "%.3f | | <= 1: **%s** by instructions |"
              % (len(rs), geomean(rs), "met" if geomean(rs) <= 1 else "NOT met"))


def merge(dest, inputs):
    head, rows, tsv_head, tsv = [], [], None, []
    for i, path in enumerate(inputs):
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        in_table = False
        for line in lines:
            if line.startswith("family\t"):
                tsv_head = line
                in_table = None
            elif in_table is None:
                if line:
                    tsv.append(line)
            elif line.startswith("|"):
                if in_table is False:
                    in_table = 0
                if in_table < 2:  # header and separator
                    if i == 0:
                        head.append(line)
                    in_table += 1
                else:
                    rows.append(line)
            elif i == 0 and in_table is False:
                head.append(line)
    with open(dest, "w", encoding="utf-8") as f:
        f.write("\n".join(head + rows) + "\n")
        if tsv_head:
            f.write("\n" + "\n".join([tsv_head] + tsv) + "\n")


def main(argv):
    cmds = {"readers-cg": readers_cg, "walk-cg": walk_cg, "oneshot": oneshot,
            "summary": summary}
    if len(argv) >= 4 and argv[1] == "merge":
        merge(argv[2], argv[3:])
        return 0
    if len(argv) != 3 or argv[1] not in cmds:
        sys.stderr.write("usage: report.py {readers-cg|walk-cg|oneshot|summary} OUT\n"
                         "       report.py merge DEST IN...\n")
        return 2
    cmds[argv[1]](argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
