#!/usr/bin/env python3
"""What an open dashboard costs islod: its CPU time over a minute with 50 sandboxes running,
with no dashboard open (the baseline, measured in the same run) and with one open (its two
live streams: the sandbox list with usage, every 2 s, and the gateway decisions, every 1 s).
The target is under 1 % of a core.

Run it through bench/run.sh (it builds release binaries and sets up the environment).
"""
import os
import subprocess
import time

from benchlib import BUSYBOX, ISLO

SANDBOXES = int(os.environ.get("DASH_SANDBOXES", "50"))
SECONDS = int(os.environ.get("DASH_SECONDS", "60"))
STATE = os.environ["ISLO_STATE_DIR"]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def share_of_a_core(pid, seconds):
    before, t = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - t) * 100


def main():
    names = [f"dash-{i}" for i in range(SANDBOXES)]
    for n in names:
        subprocess.run([ISLO, "use", n, "--image", BUSYBOX, "--", "true"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = int(open(os.path.join(STATE, "islod.pid")).read().strip())
    sock = os.path.join(STATE, "islod.sock")
    streams = []
    try:
        idle = share_of_a_core(pid, SECONDS)
        for path in ["/sandboxes/-/watch", "/gateway/events/watch"]:
            streams.append(subprocess.Popen(["curl", "-sN", "--unix-socket", sock, f"http://islod{path}"],
                                            stdout=subprocess.DEVNULL))
        time.sleep(1)
        open_ = share_of_a_core(pid, SECONDS)
    finally:
        for s in streams:
            s.terminate()
        for n in names:
            subprocess.run([ISLO, "rm", "-f", n], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"dashboard cost with {SANDBOXES} running sandboxes, islod CPU over {SECONDS} s (% of one core):")
    print(f"  no dashboard (baseline)   {idle:6.2f} %")
    print(f"  one dashboard open        {open_:6.2f} %")
    print(f"  the dashboard's share     {open_ - idle:6.2f} %   (target < 1 %)")


if __name__ == "__main__":
    main()
