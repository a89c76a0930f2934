#!/usr/bin/env python3
"""Snapshot benchmark: save time and stored size against data written, and create-from-snapshot
latency against a plain create, all measured in the same run.

  save N       `islo snapshot save` of a sandbox that wrote N bytes of random data
               (ratio: save time / the time `cp` takes to copy the same data on the host)
  size N       the snapshot's size_bytes / N (what it stores beyond the image)
  from snap    `islo use NEW --snapshot S -- true` vs `islo use NEW -i IMAGE -- true`

Run it through bench/run.sh (it builds release binaries and sets up the environment).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from benchlib import pct

ISLO = os.environ["ISLO_BIN"]
RUNS = int(os.environ.get("BENCH_RUNS", "30"))
REG = os.environ.get("ISLO_TEST_REGISTRY", "127.0.0.1:5050")
IMAGE = f"{REG}/islo-test/busybox:latest"
SIZES = [(1, "1 MB"), (100, "100 MB"), (1000, "1 GB")]


def run(*args, quiet=True):
    t = time.perf_counter()
    subprocess.run([ISLO, *args], check=True, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE)
    return (time.perf_counter() - t) * 1000


def host_copy_ms(mb):
    """The same amount of data copied on the host's disk: the floor a save cannot beat."""
    d = tempfile.mkdtemp(prefix="islo-bench-cp", dir="/var/tmp")
    try:
        src = os.path.join(d, "src")
        with open(src, "wb") as f:
            f.write(os.urandom(mb * 1_000_000))
        os.sync()
        t = time.perf_counter()
        shutil.copyfile(src, os.path.join(d, "dst"))
        return (time.perf_counter() - t) * 1000
    finally:
        shutil.rmtree(d)


def main():
    run("use", "snap-src", "-i", IMAGE, "--disk", "4", "--", "true")
    print(f"{'save':<14} {'ms':>8} {'host cp ms':>11} {'ratio':>7} {'size / data':>12}")
    for mb, label in SIZES:
        run("use", "snap-src", "--", "sh", "-c",
            f"rm -f /workspace/data; head -c {mb * 1_000_000} /dev/urandom > /workspace/data")
        ms = run("snapshot", "save", "snap-src", "--name", f"bench-{mb}")
        cp = host_copy_ms(mb)
        out = subprocess.run([ISLO, "snapshot", "ls", "-o", "json"], check=True, capture_output=True, text=True).stdout
        size = next(s["size_bytes"] for s in json.loads(out) if s["name"] == f"bench-{mb}")
        print(f"{label:<14} {ms:8.1f} {cp:11.1f} {ms / cp:6.1f}x {size / (mb * 1_000_000):11.3f}")
    plain = [run("use", f"plain-{i}", "-i", IMAGE, "--", "true") for i in range(RUNS)]
    snap = [run("use", f"fromsnap-{i}", "--snapshot", "bench-1", "--", "true") for i in range(RUNS)]
    print()
    print(f"{'create':<26} {'p50 ms':>8} {'p90 ms':>8}")
    print(f"{'islo use NEW -i IMAGE':<26} {pct(plain, 50):8.1f} {pct(plain, 90):8.1f}")
    print(f"{'islo use NEW --snapshot':<26} {pct(snap, 50):8.1f} {pct(snap, 90):8.1f}   "
          f"(+{pct(snap, 50) - pct(plain, 50):.1f} ms, {pct(snap, 50) / pct(plain, 50):.2f}x)")
    print("targets (brief): save of 100 MB <= 1 s; create from snapshot <= 100 ms more than a plain create")
    names = [l.split("\t")[0] for l in subprocess.run([ISLO, "ls", "-o", "plain"], capture_output=True, text=True).stdout.splitlines()]
    for n in names:
        subprocess.run([ISLO, "rm", n, "-f"], capture_output=True)
    for mb, _ in SIZES:
        subprocess.run([ISLO, "snapshot", "rm", f"bench-{mb}", "-f"], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
