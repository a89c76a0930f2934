#!/usr/bin/env python3
"""What a request through another node costs, in one run: a cluster of two islod nodes on this
machine (a three-member etcd on loopback, mutual TLS between the nodes), one busybox sandbox
on node-a, and the same calls made through node-a (which holds it) and through node-b (which
carries them to node-a):

- `islo use EXISTING -- true`, p50 of BENCH_RUNS (target: node-b adds at most 2 ms);
- `islo cp` of 100 MB into the sandbox, median of 9 (target: node-b at least 80 % of node-a's
  throughput);
- a snapshot of that sandbox (busybox and the 100 MB) saved on node-a and copied to the test
  registry, then `islo use NEW --snapshot` on node-a (its files there), on node-b the first
  time (pulled from the registry) and again (cached): no target, the cost of travelling.

The two are measured alternately, call by call.

Both nodes share this machine's cores, so node-b's work (TLS, one more hop) is taken from
node-a's. The copies are therefore measured a second time as two hosts would run them: node-a
and its sandbox on CPU 0, node-b and the CLI on CPU 1 (the same placement for both calls).

It makes its own installation (etcd, certificates, two state dirs) and removes it, also when
interrupted. Run it through bench/run.sh (release binaries).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from benchlib import BUSYBOX, ISLO, RUNS, pct, timed

ISLOD = os.path.join(os.path.dirname(ISLO), "islod")
REGISTRY = os.environ.get("ISLO_TEST_REGISTRY", "127.0.0.1:5050")
NODES = ["node-a", "node-b"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


def certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(d, "req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=islo-bench-cluster")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for n in NODES:
        openssl(d, "req", *ec, "-keyout", f"{n}-key.pem", "-out", f"{n}.csr", "-subj", "/CN=n")
        openssl(d, "x509", "-req", "-in", f"{n}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-out", f"{n}.pem", "-days", "2", "-extfile", "ext.cnf")


def etcd(d):
    ports = [(free_port(), free_port()) for _ in range(3)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, (_, p) in enumerate(ports))
    procs = []
    for i, (c, p) in enumerate(ports):
        procs.append(subprocess.Popen(
            ["etcd", f"--name=m{i}", f"--data-dir={d}/etcd{i}", "--log-level=error",
             f"--listen-client-urls=http://127.0.0.1:{c}", f"--advertise-client-urls=http://127.0.0.1:{c}",
             f"--listen-peer-urls=http://127.0.0.1:{p}", f"--initial-advertise-peer-urls=http://127.0.0.1:{p}",
             f"--initial-cluster={initial}", "--initial-cluster-state=new"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    endpoints = [f"http://127.0.0.1:{c}" for c, _ in ports]
    for _ in range(100):
        ok = subprocess.run(["etcdctl", "--endpoints", endpoints[0], "put", "/bench", "1"],
                            capture_output=True).returncode == 0
        if ok:
            return procs, endpoints
        time.sleep(0.2)
    sys.exit("etcd did not start")


class Node:
    def __init__(self, d, name, i, endpoints):
        self.dir = os.path.join(d, name)
        os.makedirs(self.dir)
        port = free_port()
        cfg = os.path.join(self.dir, "islod.yaml")
        with open(cfg, "w") as f:
            f.write(
                f"registry_mirrors:\n  docker.io: http://{os.environ.get('ISLO_TEST_REGISTRY', '127.0.0.1:5050')}\n"
                f"gateway:\n  subnet: 10.{234 + i}.0.0/16\n"
                f"cluster:\n  etcd: [{', '.join(endpoints)}]\n  node_name: {name}\n"
                f"  advertise: https://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n"
                f"  tls: {{ca: {d}/ca.pem, cert: {d}/{name}.pem, key: {d}/{name}-key.pem}}\n"
                f"  snapshot_registry: http://{REGISTRY}/islo-bench/cluster-{os.getpid()}\n")
        self.env = dict(os.environ, HOME=self.dir, ISLO_STATE_DIR=os.path.join(self.dir, "state"),
                        ISLOD_CONFIG=cfg)
        self.env.pop("ISLO_SOCKET", None)

    def islo(self, *args):
        r = subprocess.run([ISLO, *args], env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"islo {' '.join(args)} failed:\n{r.stderr}")
        return r.stdout

    def stop(self):
        try:
            with open(os.path.join(self.env["ISLO_STATE_DIR"], "islod.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def pin(n, cpus, sandbox=None):
    """Run node n's islod (and, given its status JSON, the sandbox's processes) on `cpus`."""
    with open(os.path.join(n.env["ISLO_STATE_DIR"], "islod.pid")) as f:
        pids = [f.read().strip()]
    if sandbox:
        sid = json.loads(sandbox)["id"]
        for p in os.listdir("/proc"):
            try:
                with open(f"/proc/{p}/cgroup") as f:
                    if sid in f.read():
                        pids.append(p)
            except OSError:
                pass
    for p in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, p], capture_output=True)


def snapshot_travel(a, b):
    """Save cb (with the 100 MB copied in) on node-a; sandboxes from it on either node."""
    out = {"save": timed([ISLO, "snapshot", "save", "cb", "--name", "trav"], env=a.env)}
    for key, n, name in [("local", a, "t-a"), ("pulled", b, "t-b1"), ("cached", b, "t-b2")]:
        node = "node-a" if n is a else "node-b"
        out[key] = timed([ISLO, "use", name, "--snapshot", "trav", "--node", node, "--", "true"],
                         env=n.env)
    for name in ["t-a", "t-b1", "t-b2"]:
        a.islo("rm", name, "-f")
    a.islo("snapshot", "rm", "trav", "-f")
    return out


def main():
    d = tempfile.mkdtemp(prefix="islo-bench-cluster.")
    procs, nodes = [], []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        certs(d)
        procs, endpoints = etcd(d)
        nodes = [Node(d, n, i, endpoints) for i, n in enumerate(NODES)]
        a, b = nodes
        a.islo("use", "cb", "-i", BUSYBOX, "--node", "node-a", "--", "true")
        b.islo("ls")
        for n in nodes:  # warm both paths
            n.islo("use", "cb", "--", "true")
        # Alternated, so that the machine's own drift is charged to both alike.
        local, remote = [], []
        for _ in range(RUNS):
            local.append(timed([ISLO, "use", "cb", "--", "true"], env=a.env))
            remote.append(timed([ISLO, "use", "cb", "--", "true"], env=b.env))
        blob = os.path.join(d, "blob")
        with open(blob, "wb") as f:
            f.write(os.urandom(100 << 20))

        def cp(n):
            ms = timed([ISLO, "cp", blob, "cb:/tmp/blob"], env=n.env)
            return 100 / (ms / 1000)

        ups = [(cp(a), cp(b)) for _ in range(9)]
        up_a = sorted(u[0] for u in ups)[4]
        up_b = sorted(u[1] for u in ups)[4]
        apart = None
        if (os.cpu_count() or 1) >= 2:
            pin(a, "0", sandbox=a.islo("status", "cb", "-o", "json"))
            pin(b, "1")
            os.sched_setaffinity(0, {1})  # the CLI, run from here
            ups = [(cp(a), cp(b)) for _ in range(9)]
            os.sched_setaffinity(0, set(range(os.cpu_count())))
            pin(a, f"0-{os.cpu_count() - 1}", sandbox=a.islo("status", "cb", "-o", "json"))
            pin(b, f"0-{os.cpu_count() - 1}")
            apart = (sorted(u[0] for u in ups)[4], sorted(u[1] for u in ups)[4])
        l50, r50 = pct(local, 50), pct(remote, 50)
        print("cluster: a request through another node (node-b) vs through the node holding the sandbox (node-a)")
        print(f"  islo use EXISTING -- true  p50  node-a {l50:6.1f} ms   node-b {r50:6.1f} ms   "
              f"added {r50 - l50:+5.1f} ms (target <= 2 ms)")
        print(f"  islo cp 100 MB in          median node-a {up_a:6.0f} MB/s node-b {up_b:6.0f} MB/s "
              f"ratio {up_b / up_a:4.2f} (target >= 0.80)")
        if apart:
            print(f"    a CPU for each node     median node-a {apart[0]:6.0f} MB/s node-b {apart[1]:6.0f} MB/s "
                  f"ratio {apart[1] / apart[0]:4.2f}")
        travel = snapshot_travel(a, b)
        print(f"  snapshot (100 MB) save, copied to the registry {travel['save']:6.0f} ms")
        print(f"  islo use NEW --snapshot    node-a {travel['local']:6.0f} ms   node-b first "
              f"{travel['pulled']:6.0f} ms ({travel['pulled'] / travel['local']:4.1f}x)   node-b again "
              f"{travel['cached']:6.0f} ms ({travel['cached'] / travel['local']:4.1f}x)")
        print(json.dumps({"bench": "cluster", "use_existing_p50_ms": {"local": l50, "remote": r50},
                          "cp_100mb_mb_s": {"local": up_a, "remote": up_b},
                          "cp_100mb_mb_s_cpu_each": apart and {"local": apart[0], "remote": apart[1]},
                          "snapshot_ms": travel}))
        a.islo("rm", "cb", "-f")
    finally:
        for n in nodes:
            n.stop()
        for p in procs:
            p.kill()
        time.sleep(0.5)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
