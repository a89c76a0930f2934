#!/usr/bin/env python3
"""Pause/resume benchmark: `islo pause` and `islo resume` of a sandbox whose processes hold
10 MB and 200 MB of memory (random bytes, so nothing is shared or compressible), against a stop
and a start of the same sandbox measured in the same run (a start is what a resume replaces:
a cold boot that loses every process); and `islo use NEW --snapshot S -- true` from a memory
snapshot of such a sandbox against a plain `islo use NEW -i IMAGE -- true`.

Run it through bench/run.sh (it builds release binaries and sets up the environment).
"""
import os
import subprocess
import sys
import time
from benchlib import pct

ISLO = os.environ["ISLO_BIN"]
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
REG = os.environ.get("ISLO_TEST_REGISTRY", "127.0.0.1:5050")
IMAGE = f"{REG}/islo-test/debian-python:bookworm"
SIZES = [10, 200]
HOLD = "import os, time; b = os.urandom({mb} << 20); open('/tmp/held', 'w').write('1'); time.sleep(1e9)"


def run(*args):
    t = time.perf_counter()
    subprocess.run([ISLO, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - t) * 1000


def hold(name, mb):
    """Start a process holding `mb` MB in `name` and wait until it has it."""
    run("use", name, "--", "sh", "-c", f"rm -f /tmp/held; (python3 -c \"{HOLD.format(mb=mb)}\" >/dev/null 2>&1 &)")
    for _ in range(200):
        if subprocess.run([ISLO, "use", name, "--", "test", "-f", "/tmp/held"]).returncode == 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"the {mb} MB holder did not start in {name}")


def main():
    print(f"{'held':<8} {'pause p50':>10} {'stop p50':>9} {'ratio':>6}   {'resume p50':>11} {'start p50':>10} {'ratio':>6}")
    forks = []
    for mb in SIZES:
        name = f"pause-{mb}"
        run("use", name, "-i", IMAGE, "--", "true")
        pause, resume, stop, start = [], [], [], []
        for _ in range(RUNS):
            hold(name, mb)
            pause.append(run("pause", name))
            resume.append(run("resume", name))
            stop.append(run("stop", name, "-f"))
            start.append(run("resume", name))
        p, r, s, st = pct(pause, 50), pct(resume, 50), pct(stop, 50), pct(start, 50)
        print(f"{str(mb) + ' MB':<8} {p:10.1f} {s:9.1f} {p / s:5.2f}x   {r:11.1f} {st:10.1f} {r / st:5.2f}x")
        forks.append((mb, fork_vs_plain(name, mb)))
    print()
    print(f"{'create, held':<14} {'from memory p50':>16} {'plain p50':>10} {'ratio':>6}")
    for mb, (f, p) in forks:
        print(f"{str(mb) + ' MB':<14} {f:16.1f} {p:10.1f} {f / p:5.2f}x")
    print("targets (issue): pause <= 1 s and resume <= 300 ms for 200 MB")


def fork_vs_plain(name, mb):
    """p50 of creates from a memory snapshot of `name` (holding `mb` MB) and of plain creates."""
    hold(name, mb)
    snap = f"{name}-mem"
    run("snapshot", "save", name, "--name", snap, "--memory")
    fork, plain = [], []
    for i in range(RUNS):
        fork.append(run("use", f"{name}-fork-{i}", "--snapshot", snap, "--", "true"))
        plain.append(run("use", f"{name}-plain-{i}", "-i", IMAGE, "--", "true"))
    for i in range(RUNS):
        run("rm", f"{name}-fork-{i}", "-f")
        run("rm", f"{name}-plain-{i}", "-f")
    run("rm", name, "-f")
    run("snapshot", "rm", snap, "-f")
    return pct(fork, 50), pct(plain, 50)


if __name__ == "__main__":
    sys.exit(main())
