#!/usr/bin/env python3
"""report.py -- turns the raw outputs of the bench/ scripts into Markdown tables.

  report.py readers-cg OUT   callgrind instruction counts of ana_load per dump (bench/readers.sh)
  report.py walk-cg OUT      callgrind counts of a warm load + analyze per dump (stackwalk.sh)
  report.py oneshot OUT      hyperfine and callgrind figures of the one-shot runs (stackwalk.sh)

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
              "(median); CPU = user + system ms; ratios are ours (triagectl) over the other "
              "tool, < 1 means we are faster\n")
        print("| core | build | triagectl wall | CPU | lean wall | eu-stack wall | CPU | "
              "gdb wall | CPU | ours/eu-stack wall | CPU | ours/gdb wall | CPU |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ratios = {k: [] for k in ("eu_wall", "eu_cpu", "gdb_wall", "gdb_cpu", "lean_eu_wall",
                                   "lean_eu_cpu")}
        for path in samples:
            core = os.path.basename(path)[3:-5]
            r = load_hf(path)
            if not all(t in r for t in TOOLS):
                continue
            o, le, e, g = (r[t] for t in TOOLS)
            ratios["eu_wall"].append(o["mean"] / e["mean"])
            ratios["eu_cpu"].append(cpu(o) / cpu(e))
            ratios["gdb_wall"].append(o["mean"] / g["mean"])
            ratios["gdb_cpu"].append(cpu(o) / cpu(g))
            ratios["lean_eu_wall"].append(le["mean"] / e["mean"])
            ratios["lean_eu_cpu"].append(cpu(le) / cpu(e))
            print("| %s | %s | %.1f (%.1f) | %.1f | %.1f | %.1f (%.1f) | %.1f | %.1f (%.1f) | "
                  "%.1f | %.2f | %.2f | %.3f | %.3f |"
                  % (core, labels.get(core, ""), o["mean"] * 1e3, o["median"] * 1e3,
                     cpu(o) * 1e3, le["mean"] * 1e3, e["mean"] * 1e3, e["median"] * 1e3,
                     cpu(e) * 1e3, g["mean"] * 1e3, g["median"] * 1e3, cpu(g) * 1e3,
                     o["mean"] / e["mean"], cpu(o) / cpu(e), o["mean"] / g["mean"],
                     cpu(o) / cpu(g)))
        n = len(ratios["eu_wall"])
        if n:
            print("| **geometric mean** (%d cores) | | | | | | | | | **%.2f** | **%.2f** | "
                  "**%.3f** | **%.3f** |"
                  % (n, geomean(ratios["eu_wall"]), geomean(ratios["eu_cpu"]),
                     geomean(ratios["gdb_wall"]), geomean(ratios["gdb_cpu"])))
            print("\nlean (bench_stackwalk --once: the same pipeline and JSON without "
                  "triagectl's other libraries) over eu-stack: wall %.2f, CPU %.2f "
                  "(geometric means)"
                  % (geomean(ratios["lean_eu_wall"]), geomean(ratios["lean_eu_cpu"])))
    lp = os.path.join(d, "hf-loop.json")
    if os.path.exists(lp):
        r = load_hf(lp)
        ncores = 0
        np_ = os.path.join(d, "cores.list")
        if os.path.exists(np_):
            with open(np_, encoding="utf-8") as f:
                ncores = sum(1 for line in f if line.strip())
        print("\nhyperfine, whole corpus: each run is one shell loop starting the tool once "
              "per core (%d cores); s per loop mean [min .. max]; ms per core from the mean\n"
              % ncores)
        print("| tool | loop s | ms per core | CPU s (user + sys) | wall ratio ours/tool | "
              "CPU ratio ours/tool |")
        print("|---|---:|---:|---:|---:|---:|")
        o = r.get("triagectl")
        for t in TOOLS:
            if t not in r:
                continue
            x = r[t]
            print("| %s | %.2f [%.2f .. %.2f] | %.1f | %.2f | %s | %s |"
                  % (t, x["mean"], x["min"], x["max"], x["mean"] / max(ncores, 1) * 1e3,
                     cpu(x), "%.3f" % (o["mean"] / x["mean"]) if o else "",
                     "%.3f" % (cpu(o) / cpu(x)) if o else ""))
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


def main(argv):
    cmds = {"readers-cg": readers_cg, "walk-cg": walk_cg, "oneshot": oneshot}
    if len(argv) != 3 or argv[1] not in cmds:
        sys.stderr.write("usage: report.py {readers-cg|walk-cg|oneshot} OUT\n")
        return 2
    cmds[argv[1]](argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
