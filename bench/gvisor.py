#!/usr/bin/env python3
"""The gvisor isolation class against the default (container) class, in the same run:

- `islo use NEW -- true` and `islo use EXISTING -- true` (busybox), p50 of BENCH_RUNS;
- a system-call-heavy loop: Python creating 10,000 files and then stat()ing each 10 times,
  timed inside the sandbox (debian-python), median of 3;
- a 100 MB HTTPS download through the gateway (bench/gateway_client.py against the test
  upstream, five downloads, median speed).

Each line gives both figures and gVisor's as a ratio of the container class's. Run it through
bench/run.sh (release binaries, the gateway's test CA and config).
"""
import json
import os
import subprocess
import sys
from benchlib import BUSYBOX, ISLO, pct, timed

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "gateway_client.py")
UPSTREAM = os.path.join(HERE, "..", "tests", "fixtures", "upstream.py")
CERTS = os.environ["GATEWAY_BENCH_CERTS"]
PORT = int(os.environ["GATEWAY_BENCH_PORT"]) + 1
IMAGE = f"{os.environ.get('ISLO_TEST_REGISTRY', '127.0.0.1:5050')}/islo-test/debian-python:bookworm"
CLASSES = ["container", "gvisor"]
STAT_LOOP = (
    "import os, time\n"
    "os.makedirs('/tmp/many', exist_ok=True)\n"
    "t = time.perf_counter()\n"
    "for i in range(10000): open(f'/tmp/many/{i}', 'w').close()\n"
    "for _ in range(10):\n"
    "    for i in range(10000): os.stat(f'/tmp/many/{i}')\n"
    "print((time.perf_counter() - t) * 1000)\n"
)


def islo(*args):
    r = subprocess.run([ISLO, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"islo {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def starts(cls):
    """p50 of `islo use NEW -- true` and of `islo use EXISTING -- true` in class `cls`."""
    new, existing = [], []
    for i in range(RUNS):
        name = f"gvb-{cls[:3]}-{i}"
        new.append(timed([ISLO, "use", name, "-i", BUSYBOX, "--isolation", cls, "--", "true"]))
        existing.append(timed([ISLO, "use", name, "--", "true"]))
    for i in range(RUNS):
        islo("rm", f"gvb-{cls[:3]}-{i}", "-f")
    return pct(new, 50), pct(existing, 50)


def stat_loop(cls):
    name = f"gvb-stat-{cls[:3]}"
    islo("use", name, "-i", IMAGE, "--isolation", cls, "--", "true")
    ms = sorted(float(islo("use", name, "--", "python3", "-c", STAT_LOOP)) for _ in range(3))[1]
    islo("rm", name, "-f")
    return ms


def download(cls):
    name = f"gvb-dl-{cls[:3]}"
    islo("use", name, "-i", IMAGE, "--isolation", cls, "--", "true")
    islo("cp", CLIENT, f"{name}:/tmp/client.py")
    r = json.loads(islo("use", name, "--", "env", "GATEWAY_CHECKS=0", "python3", "/tmp/client.py",
                        "up.test", str(PORT)))
    islo("rm", name, "-f")
    return r["download_mb_s"]


def main():
    up = subprocess.Popen(
        [sys.executable, UPSTREAM, "--https", str(PORT), "--cert", f"{CERTS}/cert.pem",
         "--key", f"{CERTS}/key.pem"], stdout=subprocess.PIPE, text=True)
    try:
        assert up.stdout.readline().split()[0] == "ready"
        res = {c: {} for c in CLASSES}
        for c in CLASSES:
            res[c]["new"], res[c]["existing"] = starts(c)
            res[c]["stat"] = stat_loop(c)
            res[c]["mb_s"] = download(c)
    finally:
        up.kill()
    c, g = res["container"], res["gvisor"]
    print(f"gvisor vs container class ({RUNS} runs; p50)     container      gvisor    ratio")
    for key, label in [("new", "islo use NEW -- true (ms)"),
                       ("existing", "islo use EXISTING -- true (ms)"),
                       ("stat", "10k creates + 100k stat() in Python (ms)")]:
        print(f"  {label:<42} {c[key]:9.1f} {g[key]:11.1f} {g[key] / c[key]:7.2f}x")
    print(f"  {'100 MB HTTPS via the gateway (MB/s)':<42} {c['mb_s']:9.1f} {g['mb_s']:11.1f} "
          f"{g['mb_s'] / c['mb_s']:7.2f}x")


if __name__ == "__main__":
    main()
