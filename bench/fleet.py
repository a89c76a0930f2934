#!/usr/bin/env python3
"""Create cost against the size of the fleet (issue 20's measure), in one run:

  for a fleet of 10, 100, 500 and 1,000 idle sandboxes (FLEET_SIZES), grown in place:
    NEW     `islo use NEW -- true` p50/p90 over FLEET_SAMPLES new sandboxes (each removed after),
            and how many of them took a sandbox started ahead (pooled; islod's log)
    RM      `islo rm -f` of those, p50
    EX      `islo use EXISTING -- true` between those, p50: it does not grow with the fleet, so
            its drift against the first size is the host's (a VM's neighbours), and NEW and RM
            are also given against the first over that drift
    LS      `islo ls -o json`, p50
    20 NEW  20 concurrent `islo use NEW -- true`, wall time of all
    100 EX  100 concurrent execs of `true` into one sandbox through the API
            (POST /sandboxes/NAME/exec/stream on islod's socket), p99 of each's time
    and what the host holds per sandbox: mounts (host mount table), network links, islod's RSS
  then islod's restart with the whole fleet running: SIGKILL, and `islo ls` until it answers
  (autostart, reconcile, serving).

Each step starts once the host is quiet (settle()): islod refilling its pool of disks after a
burst of creates is that burst's cost, not the next step's.

With WARM_POOL=N (bench/run.sh's islod config, `warm_pool`), islod keeps N sandboxes of the
kind last created started ahead, and a create takes one; the report says how many did. Each
size's measure starts once the pool is full again (the grown fleet's creates took from it).

Ratios are against the first (smallest) fleet in the same run. The fleet is its own
installation (bench/run.sh's state directory) and is removed at the end, on Ctrl-C too. It
refuses to run while sandbox links of another installation are on the host.

Run it through bench/run.sh fleet (it builds release binaries and sets up the environment).
"""
import http.client
import json
import os
import re
import socket
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from benchlib import BUSYBOX, ISLO, pct, timed

SIZES = [int(x) for x in os.environ.get("FLEET_SIZES", "10 100 500 1000").split()]
SAMPLES = int(os.environ.get("FLEET_SAMPLES", "10"))
WARM_POOL = int(os.environ.get("WARM_POOL", "0"))
STATE = os.environ["ISLO_STATE_DIR"]
LINK = re.compile(r"^\d+: (is[0-9a-f]{4}[sh]\d+)[@:]")


def links():
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
    return [m.group(1) for m in (LINK.match(l) for l in out) if m]


def islod_pid():
    return int(open(os.path.join(STATE, "islod.pid")).read().strip())


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def host_mounts():
    return sum(1 for _ in open("/proc/1/mountinfo"))


def use(name):
    subprocess.run([ISLO, "use", name, "-i", BUSYBOX, "--", "true"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def rm(name):
    subprocess.run([ISLO, "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def names():
    out = subprocess.run([ISLO, "ls", "-o", "plain"], capture_output=True, text=True).stdout
    return [l.split("\t")[0] for l in out.splitlines() if l.strip()]


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def api_exec(sandbox):
    """One exec of `true` through the API; its time in ms."""
    c = UnixConn(os.path.join(STATE, "islod.sock"))
    t = time.perf_counter()
    c.request("POST", f"/sandboxes/{sandbox}/exec/stream", body=json.dumps({"command": ["true"]}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t) * 1000
    c.close()
    if r.status != 200 or b"event: exit\ndata: 0\n" not in body:
        raise RuntimeError(f"exec failed: {r.status} {body[-300:]!r}")
    return ms


def cpu_busy():
    """The host's CPU time spent busy, and in all (jiffies)."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)


def settle(quiet=0.10, most=15.0):
    """Wait until the host is quiet (under `quiet` busy over half a second, at most `most`
    seconds): what a step leaves behind (islod refilling its disk pool after a burst of
    creates, removals finishing) is not the next step's cost."""
    end = time.monotonic() + most
    while time.monotonic() < end:
        b0, t0 = cpu_busy()
        time.sleep(0.5)
        b1, t1 = cpu_busy()
        if t1 > t0 and (b1 - b0) / (t1 - t0) < quiet:
            return


def concurrency(size):
    """20 creates at once (wall ms), and the p99 of 100 execs at once into one sandbox."""
    batch = [f"conc-{size}-{i}" for i in range(20)]
    settle()
    t = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(use, batch))
    creates = (time.perf_counter() - t) * 1000
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(rm, batch))
    settle()
    with ThreadPoolExecutor(100) as pool:
        execs = list(pool.map(api_exec, ["fleet-warm"] * 100))
    return creates, pct(execs, 99)


def grow(have, target):
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(use, [f"fleet-{i}" for i in range(have, target)]))


def pooled(prefix):
    """How many creates of sandboxes named `prefix`… took one started ahead (islod's log)."""
    try:
        text = re.sub(r"\x1b\[[0-9;]*m", "", open(os.path.join(STATE, "islod.log"), errors="replace").read())
    except OSError:
        return 0
    return len(re.findall(r"created \(started ahead\) sandbox=" + re.escape(prefix), text))


def pool_full(size, most=120.0):
    """Wait until islod's pool holds WARM_POOL sandboxes (each has a link, as the fleet's
    and fleet-warm do): a create of the next step takes one and does not meet its refill."""
    end = time.monotonic() + most
    while len(links()) < size + 1 + WARM_POOL and time.monotonic() < end:
        time.sleep(0.2)


def measure(size):
    pool_full(size)
    settle()
    new, gone, existing = [], [], []
    for i in range(SAMPLES):
        n = f"probe-{size}-{i}"
        new.append(timed([ISLO, "use", n, "-i", BUSYBOX, "--", "true"]))
        gone.append(timed([ISLO, "rm", "-f", n]))
        existing.append(timed([ISLO, "use", "fleet-warm", "--", "true"]))
    taken = pooled(f"probe-{size}-")
    ls = [timed([ISLO, "ls", "-o", "json"]) for _ in range(5)]
    creates20, exec100_p99 = concurrency(size)
    return {"new": new, "taken": taken, "rm": gone, "existing": existing, "ls": ls, "mounts": host_mounts(), "links": len(links()),
            "rss": rss_mib(islod_pid()), "creates20": creates20, "exec100": exec100_p99}


def restart(size):
    os.kill(islod_pid(), signal.SIGKILL)
    time.sleep(0.2)
    t = time.perf_counter()
    subprocess.run([ISLO, "ls", "-o", "json"], check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000, size


def report(rows, restarted):
    base = rows[0][1]
    print(f"warm_pool: {WARM_POOL} (sandboxes started ahead; 0: every create starts one)")
    print(f"{'fleet':>6} {'NEW p50':>8} {'p90':>7} {'vs first':>8} {'pooled':>6} {'RM p50':>7} {'vs first':>8} "
          f"{'EX p50':>7} {'/EX':>6} {'LS p50':>7} "
          f"{'20 NEW':>7} {'100 EX p99':>10} {'mounts':>7} {'links':>6} {'islod RSS':>10}")
    p50 = lambda r, k: pct(r[k], 50)
    for size, r in rows:
        # The host's speed drifts between sizes (a VM's neighbours); `islo use EXISTING`,
        # timed between the same samples, moves with it and not with the fleet.
        drift = p50(r, "existing") / p50(base, "existing")
        print(f"{size:>6} {p50(r, 'new'):8.1f} {pct(r['new'], 90):7.1f} "
              f"{p50(r, 'new') / p50(base, 'new'):7.2f}x {r['taken']:>3}/{len(r['new']):<2} "
              f"{p50(r, 'rm'):7.1f} {p50(r, 'rm') / p50(base, 'rm'):7.2f}x "
              f"{p50(r, 'existing'):7.1f} {drift:5.2f}x {p50(r, 'ls'):7.1f} "
              f"{r['creates20']:7.0f} {r['exec100']:10.1f} {r['mounts']:>7} {r['links']:>6} {r['rss']:>8.1f} MiB")
    over = lambda k: " / ".join(
        f"{(p50(r, k) / p50(base, k)) / (p50(r, 'existing') / p50(base, 'existing')):.2f}" for _, r in rows)
    print(f"vs first over the drift of EXISTING (EX p50 / the first's): NEW {over('new')}; RM {over('rm')}")
    (first, a), (last, b) = rows[0], rows[-1]
    if last > first:
        per = lambda k: (b[k] - a[k]) / (last - first)
        print(f"per sandbox: {per('mounts'):.1f} host mounts, {per('links'):.1f} links, "
              f"{per('rss') * 1024:.0f} KiB of islod RSS")
    ms, size = restarted
    print(f"islod restart with {size} sandboxes running, kill to `islo ls` answered: {ms:.0f} ms")
    print("targets (issue 20): NEW at 1,000 within 1.2x of 10 and <= 50 ms; restart < 3 s; ls < 100 ms; "
          "20 NEW <= 1 s; 100 EX p99 < 100 ms")


def main():
    theirs = links()
    if theirs:
        sys.exit(f"refusing: sandbox links of another installation are on this host ({', '.join(theirs[:5])}…); "
                 "remove that installation's sandboxes first")
    rows, have = [], 0
    try:
        use("fleet-warm")
        for size in SIZES:
            grow(have, size)
            have = size
            rows.append((size, measure(size)))
            print(f"measured at {size}", file=sys.stderr)
        restarted = restart(have)
        report(rows, restarted)
    finally:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(rm, names()))


if __name__ == "__main__":
    main()
