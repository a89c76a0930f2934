#!/usr/bin/env python3
"""Gateway benchmark against direct HTTPS from the host, measured in the same run.

An HTTPS upstream (tests/fixtures/upstream.py) on loopback with a test CA; bench/gateway_client.py
runs on the host (direct, trusting the test CA) and in a sandbox (through the gateway: DNS,
nftables redirect, TLS terminated and re-originated, policy, audit), once under a profile with
`tls_inspection: always` (the default) and once under `when_needed`, where the flow to up.test
is decided on its SNI and spliced undecrypted (the sandbox then trusts the test CA itself).
Reports p50/p90 of a small request on a kept-alive connection and on a new connection, and
100 MB download throughput, with ratios, and checks by hash that no byte is lost or moved
(GATEWAY_CHECKS downloads of 64 MB each way, default 5).

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
    assert up.stdout.readline().split()[0] == "ready"
    env = dict(os.environ, SSL_CERT_FILE=f"{CERTS}/ca.pem")
    direct = json.loads(subprocess.run([sys.executable, CLIENT, "up.test", str(PORT), "127.0.0.1"],
                                       check=True, capture_output=True, text=True, env=env).stdout)
    islo("use", "bench-gw", "-i", IMAGE, "--", "true")
    islo("cp", CLIENT, "bench-gw:/tmp/client.py")
    checks = f"GATEWAY_CHECKS={os.environ.get('GATEWAY_CHECKS', '5')}"
    via = json.loads(islo("use", "bench-gw", "--", "env", checks, "python3", "/tmp/client.py",
                          "up.test", str(PORT)))
    islo("rm", "bench-gw", "-f")
    islo("gateway", "create", "--name", "bench-splice", "--tls-inspection", "when_needed")
    islo("use", "bench-sp", "-i", IMAGE, "--gateway-profile", "bench-splice", "--", "true")
    islo("cp", CLIENT, "bench-sp:/tmp/client.py")
    islo("cp", f"{CERTS}/ca.pem", "bench-sp:/tmp/upstream-ca.pem")
    spliced = json.loads(islo("use", "bench-sp", "--", "env", checks,
                              "SSL_CERT_FILE=/tmp/upstream-ca.pem", "python3", "/tmp/client.py",
                              "up.test", str(PORT)))
    islo("rm", "bench-sp", "-f")
    islo("gateway", "bench-splice", "rm", "--force")
finally:
    up.kill()

print("gateway (HTTPS, 100 MB downloads, median of 5)   direct   always (inspected)   when_needed (spliced)")
for key, label in [("keepalive_p50_ms", "small request, kept-alive, p50 (ms)"),
                   ("keepalive_p90_ms", "small request, kept-alive, p90 (ms)"),
                   ("new_conn_p50_ms", "small request, new connection, p50"),
                   ("new_conn_p90_ms", "small request, new connection, p90")]:
    d, a, w = direct[key], via[key], spliced[key]
    print(f"  {label:<40} {d:8.3f}   {a:8.3f} (+{a - d:.3f})   {w:8.3f} (+{w - d:.3f})")
d, a, w = direct["download_mb_s"], via["download_mb_s"], spliced["download_mb_s"]
print(f"  {'download throughput (MB/s)':<40} {d:8.1f}   {a:8.1f} ({a / d:.0%})     {w:8.1f} ({w / d:.0%})")
for name, r in [("direct", direct), ("always", via), ("when_needed", spliced)]:
    print(f"  {name}: {r['damaged_downloads']} of {r['checked_downloads']} checked 64 MB downloads damaged")
