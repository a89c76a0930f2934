"""What the benchmarks share: their settings from bench/run.sh, percentiles and timing."""
import os
import subprocess
import time

ISLO = os.environ.get("ISLO_BIN", "islo")
RUNS = int(os.environ.get("BENCH_RUNS", "30"))
REG = os.environ.get("ISLO_TEST_REGISTRY", "127.0.0.1:5050")
BUSYBOX = f"{REG}/islo-test/busybox:latest"


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed(cmd, env=None):
    """Milliseconds `cmd` takes to run to completion (it must succeed)."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - t) * 1000
