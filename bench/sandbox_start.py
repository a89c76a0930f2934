#!/usr/bin/env python3
"""Sandbox start-up benchmark, reported as ratios against a baseline measured in the same run.

  baseline   `crun run` of the same image rootfs running /bin/true (the OCI runtime alone)
  NEW        `islo use NEW -- true`, a new sandbox of a cached image, CLI start to exit
  EXISTING   `islo use EXISTING -- true`
  CONCURRENT 20 `islo use` creates started at once, until the last exits

Run it through bench/run.sh (it builds release binaries and sets up the environment).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from benchlib import BUSYBOX as IMAGE, ISLO, RUNS, pct, timed



def islo(*args):
    return [ISLO, *args]


def baseline(state):
    """crun run of the busybox layer islo unpacked, as a read-only root."""
    layers = os.path.join(state, "images", "layers")
    rootfs = next(os.path.join(layers, d) for d in os.listdir(layers) if os.path.exists(os.path.join(layers, d, "bin/busybox")))
    bundle = tempfile.mkdtemp(prefix="islo-bench-bundle")
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    spec["root"] = {"path": rootfs, "readonly": True}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    root = tempfile.mkdtemp(prefix="islo-bench-crun")
    try:
        cmd = ["crun", "--root", root, "run", "--bundle", bundle, "islo-bench"]
        timed(cmd)
        return [timed(cmd) for _ in range(RUNS)]
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def main():
    state = os.environ["ISLO_STATE_DIR"]
    env = dict(os.environ)
    subprocess.run(islo("use", "bench-warm", "-i", IMAGE, "--", "true"), check=True, env=env)
    results = {}
    results["crun run (baseline)"] = baseline(state)
    results["islo use NEW -- true"] = [timed(islo("use", f"bench-new-{i}", "-i", IMAGE, "--", "true"), env) for i in range(RUNS)]
    results["islo use EXISTING -- true"] = [timed(islo("use", "bench-warm", "--", "true"), env) for _ in range(RUNS)]
    t = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda i: timed(islo("use", f"bench-par-{i}", "-i", IMAGE, "--", "true"), env), range(20)))
    concurrent = (time.perf_counter() - t) * 1000

    base = statistics.median(results["crun run (baseline)"])
    print(f"{'measure':<30} {'p50 ms':>8} {'p90 ms':>8} {'p50 / crun':>11}")
    for name, xs in results.items():
        print(f"{name:<30} {pct(xs, 50):8.1f} {pct(xs, 90):8.1f} {pct(xs, 50) / base:10.1f}x")
    print(f"{'20 concurrent creates (total)':<30} {concurrent:8.1f}")
    print("targets (brief): NEW p50 <= 50 ms, EXISTING p50 <= 15 ms, 20 concurrent <= 1000 ms")

    names = [l.split("\t")[0] for l in subprocess.run(islo("ls", "-o", "plain"), env=env, capture_output=True, text=True).stdout.splitlines()]
    for n in names:
        subprocess.run(islo("rm", n, "-f"), env=env, capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
