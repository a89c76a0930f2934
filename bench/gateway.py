#!/usr/bin/env python3
"""Gateway benchmark against direct HTTPS from the host, measured in the same run.

An HTTPS upstream (tests/fixtures/upstream.py) on loopback with a test CA; bench/gateway_client.py
runs on the host (direct, trusting the test CA) and in a sandbox (through the gateway: DNS,
nftables redirect, TLS terminated and re-originated, policy, audit). Reports p50/p90 of a small
request on a kept-alive connection and on a new connection, and 100 MB download throughput,
with ratios, and checks that no byte is lost.

Run it through bench/run.sh (it builds release binaries, the certificates and the config).
"""
import json
import os
import subprocess
import sys
import time

ISLO = os.environ["ISLO_BIN"]
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "gateway_client.py")
UPSTREAM = os.path.join(HERE, "..", "tests", "fixtures", "upstream.py")
CERTS = os.environ["GATEWAY_BENCH_CERTS"]
PORT = int(os.environ["GATEWAY_BENCH_PORT"])
IMAGE = f"{os.environ.get('ISLO_TEST_REGISTRY', '127.0.0.1:5050')}/islo-test/debian-python:bookworm"


def islo(*args):
    r = subprocess.run([ISLO, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"islo {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


up = subprocess.Popen(
    [sys.executable, UPSTREAM, "--https", str(PORT), "--cert", f"{CERTS}/cert.pem", "--key", f"{CERTS}/key.pem"],
    stdout=subprocess.PIPE, text=True)
try:
    assert up.stdout.readline().strip() == "ready"
    env = dict(os.environ, SSL_CERT_FILE=f"{CERTS}/ca.pem")
    direct = json.loads(subprocess.run([sys.executable, CLIENT, "up.test", str(PORT), "127.0.0.1"],
                                       check=True, capture_output=True, text=True, env=env).stdout)
    islo("use", "bench-gw", "-i", IMAGE, "--", "true")
    islo("cp", CLIENT, "bench-gw:/tmp/client.py")
    via = json.loads(islo("use", "bench-gw", "--", "python3", "/tmp/client.py", "up.test", str(PORT)))
    islo("rm", "bench-gw", "-f")
finally:
    up.kill()

print("gateway (HTTPS, 100 MB downloads, median of 5)        direct     gateway    ratio/added")
for key, label in [("keepalive_p50_ms", "small request, kept-alive, p50 (ms)"),
                   ("keepalive_p90_ms", "small request, kept-alive, p90 (ms)"),
                   ("new_conn_p50_ms", "small request, new connection, p50"),
                   ("new_conn_p90_ms", "small request, new connection, p90")]:
    print(f"  {label:<48} {direct[key]:8.3f}   {via[key]:8.3f}   +{via[key] - direct[key]:.3f} ms")
ratio = via["download_mb_s"] / direct["download_mb_s"]
print(f"  {'download throughput (MB/s)':<48} {direct['download_mb_s']:8.1f}   {via['download_mb_s']:8.1f}   {ratio:.0%}")
lost = via["expected_bytes"] - via["download_bytes"]
print(f"  bytes lost through the gateway: {lost}")
