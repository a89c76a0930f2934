#!/usr/bin/env python3
"""One side of the gateway benchmark: `gateway_client.py HOST PORT [CONNECT_IP]`.

Over HTTPS to HOST:PORT (dialled at CONNECT_IP when given, else by name), verifying with the
default trust store (SSL_CERT_FILE): N small requests on one keep-alive connection, N small
requests each on a new connection, five 100 MB downloads (median speed), then GATEWAY_CHECKS
downloads of 64 MB (default 5) of a pattern whose hash is checked: nothing lost, added or
moved. Prints JSON."""
import hashlib
import http.client
import os
import json
import socket
import ssl
import statistics
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
dial = sys.argv[3] if len(sys.argv) > 3 else host
N = 200
SIZE = 100 << 20
DOWNLOADS = 5
CHECKS = int(os.environ.get("GATEWAY_CHECKS", "5"))
CHECK_SIZE = 64 << 20


def pattern_hash(size):
    h, period = hashlib.sha256(), bytes(i % 251 for i in range(251 * 256))
    while size:
        part = period[:min(size, len(period))]
        h.update(part)
        size -= len(part)
    return h.hexdigest()
ctx = ssl.create_default_context()


class Conn(http.client.HTTPSConnection):
    def connect(self):
        sock = socket.create_connection((dial, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(sock, server_hostname=host)


def get(c, path):
    c.request("GET", path, headers={"Host": f"{host}:{port}"})
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, body[:200])
    return body


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# The context is made once and passed in: HTTPSConnection would otherwise load the whole
# trust store for every connection (tens of milliseconds for a distribution's bundle).
c = Conn(host, port, context=ctx)
get(c, "/echo/warm")
kept = []
for _ in range(N):
    t = time.perf_counter()
    get(c, "/echo/small")
    kept.append((time.perf_counter() - t) * 1000)
fresh = []
for _ in range(N // 4):
    t = time.perf_counter()
    n = Conn(host, port, context=ctx)
    get(n, "/echo/small")
    n.close()
    fresh.append((time.perf_counter() - t) * 1000)
speeds, got = [], 0
for _ in range(DOWNLOADS):
    t = time.perf_counter()
    c.request("GET", f"/bytes/{SIZE}", headers={"Host": f"{host}:{port}"})
    r = c.getresponse()
    got = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        got += len(b)
    speeds.append(SIZE / (time.perf_counter() - t) / 1e6)
    assert got == SIZE, (got, SIZE)
want, damaged = pattern_hash(CHECK_SIZE), 0
for _ in range(CHECKS):
    c.request("GET", f"/pattern/{CHECK_SIZE}", headers={"Host": f"{host}:{port}"})
    r, h = c.getresponse(), hashlib.sha256()
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        h.update(b)
    damaged += h.hexdigest() != want
print(json.dumps({
    "keepalive_p50_ms": statistics.median(kept), "keepalive_p90_ms": pct(kept, 90),
    "new_conn_p50_ms": statistics.median(fresh), "new_conn_p90_ms": pct(fresh, 90),
    "download_mb_s": statistics.median(speeds), "download_bytes": got, "expected_bytes": SIZE,
    "checked_downloads": CHECKS, "damaged_downloads": damaged,
}))
