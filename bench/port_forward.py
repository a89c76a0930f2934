#!/usr/bin/env python3
"""Port-forward benchmark against a direct loopback connection, measured in the same run.

The same test servers (tests/fixtures/tcp_servers.py) run on the host (baseline) and inside a
sandbox (reached through `islo port-forward`):
  connect+echo   open a connection, send one byte, read it back, close (p50/p90)
  throughput     200 MB sent to the sha server, until its answer arrives (MB/s)

Run it through bench/run.sh (it builds release binaries and sets up the environment).
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from benchlib import pct

ISLO = os.environ["ISLO_BIN"]
RUNS = int(os.environ.get("BENCH_RUNS", "30")) * 10
SERVERS = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tcp_servers.py")
MB = 200


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} never opened")


def echo_rtt(port):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    s.close()
    return (time.perf_counter() - t) * 1000


def throughput(port):
    data = os.urandom(1 << 20)
    s = socket.create_connection(("127.0.0.1", port))
    t = time.perf_counter()
    for _ in range(MB):
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    answer = s.makefile().readline()
    dt = time.perf_counter() - t
    assert answer.split()[1] == str(MB << 20), answer
    return MB * 1.048576 / dt


def forward(sandbox, remote):
    p = subprocess.Popen([ISLO, "pf", sandbox, f"0:{remote}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", p.stdout.readline()).group(1))
    return p, port


def main():
    host = [subprocess.Popen([sys.executable, SERVERS, str(port), kind]) for port, kind in ((19500, "echo"), (19501, "sha"))]
    subprocess.run([ISLO, "use", "bench-pf", "-i", "python:3.12-slim", "--", "true"], check=True, stderr=subprocess.DEVNULL)
    with open(SERVERS, "rb") as f:
        subprocess.run([ISLO, "use", "bench-pf", "--", "sh", "-c", "cat > /workspace/servers.py"], stdin=f, check=True)
    for port, kind in ((19500, "echo"), (19501, "sha")):
        subprocess.run([ISLO, "use", "bench-pf", "--", "sh", "-c",
                        f"nohup python3 /workspace/servers.py {port} {kind} >/dev/null 2>&1 &"], check=True)
    time.sleep(0.5)
    (fe, pe), (fs, ps) = forward("bench-pf", 19500), forward("bench-pf", 19501)
    try:
        for port in (19500, 19501, pe, ps):
            wait_port(port)
        direct = [echo_rtt(19500) for _ in range(RUNS)]
        via = [echo_rtt(pe) for _ in range(RUNS)]
        t_direct = statistics.median(throughput(19501) for _ in range(3))
        t_via = statistics.median(throughput(ps) for _ in range(3))
    finally:
        for p in (fe, fs, *host):
            p.terminate()
        subprocess.run([ISLO, "rm", "bench-pf", "-f"], capture_output=True)
    print(f"{'port-forward':<28} {'p50 ms':>8} {'p90 ms':>8} {'p50 / direct':>13}")
    print(f"{'connect+echo direct':<28} {pct(direct, 50):8.3f} {pct(direct, 90):8.3f} {1.0:12.1f}x")
    print(f"{'connect+echo islo pf':<28} {pct(via, 50):8.3f} {pct(via, 90):8.3f} {pct(via, 50) / pct(direct, 50):12.1f}x")
    print(f"{'throughput direct':<28} {t_direct:8.0f} MB/s")
    print(f"{'throughput islo pf':<28} {t_via:8.0f} MB/s  ({t_via / t_direct:.2f} of direct)")


if __name__ == "__main__":
    sys.exit(main())
