#!/usr/bin/env python3
"""oneshot_loop.py COMMANDS.tsv RUNS OUT.json -- the careful loop of bench/stackwalk.sh.

COMMANDS.tsv has one line per core and tool: `core<TAB>tool<TAB>command line` (split like a
shell would, run without a shell). Every run visits every core; at each core the tools run one
after the other in an order that rotates from run to run, so a change in the machine's load
(other jobs, frequency) falls on all tools alike and each core gives a paired comparison. Each
invocation's wall time comes from time.perf_counter() and its CPU time (user + system) from the
rusage that os.wait4() returns for that child alone. Writes every measurement to OUT.json:
{"runs": RUNS, "tools": [...], "cores": {core: {tool: {"wall": [...], "cpu": [...],
"status": [...]}}}}.
"""
import json
import os
import shlex
import subprocess
import sys
import time


def run_one(argv):
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, p.returncode


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: oneshot_loop.py COMMANDS.tsv RUNS OUT.json\n")
        return 2
    runs = int(argv[2])
    cmds, tools = {}, []
    with open(argv[1], encoding="utf-8") as f:
        for line in f:
            core, tool, cmd = line.rstrip("\n").split("\t", 2)
            cmds.setdefault(core, {})[tool] = shlex.split(cmd)
            if tool not in tools:
                tools.append(tool)
    res = {core: {t: {"wall": [], "cpu": [], "status": []} for t in tools} for core in cmds}
    for r in range(runs):
        for core, by_tool in cmds.items():
            k = r % len(tools)
            for tool in tools[k:] + tools[:k]:
                wall, cpu, status = run_one(by_tool[tool])
                m = res[core][tool]
                m["wall"].append(wall)
                m["cpu"].append(cpu)
                m["status"].append(status)
    with open(argv[3], "w", encoding="utf-8") as f:
        json.dump({"runs": runs, "tools": tools, "cores": res}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
