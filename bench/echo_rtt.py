#!/usr/bin/env python3
"""Keystroke echo round trip through an attached islo session, against a local PTY measured in
the same run: one byte typed, the same byte read back from `cat` on the far side."""
import os
import pty
import select
import statistics
import sys
import time
from benchlib import pct

ISLO = os.environ["ISLO_BIN"]
REG = os.environ.get("ISLO_TEST_REGISTRY", "127.0.0.1:5050")
ROUNDS = int(os.environ.get("BENCH_ECHO_ROUNDS", "300"))


def read_until(fd, want, timeout=30.0):
    buf, end = b"", time.time() + timeout
    while want not in buf:
        r, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
        if not r:
            raise SystemExit(f"timed out waiting for {want!r}; got {buf[-300:]!r}")
        buf += os.read(fd, 65536)
    return buf


def rtt(fd):
    times = []
    for i in range(ROUNDS):
        b = bytes([ord("a") + i % 26])
        t = time.perf_counter()
        os.write(fd, b)
        got = b""
        while b not in got:
            select.select([fd], [], [], 5)
            got += os.read(fd, 4096)
        times.append((time.perf_counter() - t) * 1000)
    return times


def spawn(argv):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    return pid, fd


def main():
    pid, fd = spawn(["sh", "-c", "stty raw -echo; echo READY; exec cat"])
    read_until(fd, b"READY")
    local = rtt(fd)
    os.kill(pid, 9)

    pid, fd = spawn([ISLO, "use", "bench-echo", "-i", f"{REG}/islo-test/busybox:latest", "-s", "echo"])
    read_until(fd, b"detach with")
    os.write(fd, b"stty raw -echo; echo RE''ADY; exec cat\r")
    read_until(fd, b"READY")
    remote = rtt(fd)
    os.write(fd, b"\x10\x11")
    os.waitpid(pid, 0)

    base = statistics.median(local)
    print(f"{'keystroke echo':<32} {'p50 ms':>8} {'p99 ms':>8} {'p50 / local':>12}")
    print(f"{'local PTY (baseline)':<32} {pct(local, 50):8.3f} {pct(local, 99):8.3f} {1.0:11.1f}x")
    print(f"{'islo session (attached)':<32} {pct(remote, 50):8.3f} {pct(remote, 99):8.3f} {pct(remote, 50) / base:11.1f}x")


if __name__ == "__main__":
    sys.exit(main())
