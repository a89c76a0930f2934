#!/usr/bin/env python3
"""What user namespaces cost: `islo use NEW -- true` and `islo use EXISTING -- true` against
two installations in the same run, one with every sandbox in its own user namespace (the
default) and one with `isolation: {userns: false}`, measured alternately. The issue's bound:
userns / no userns <= 1.15 at p50.

Run it through bench/run.sh (it builds release binaries and sets up the environment).
"""
import os
import subprocess
import sys
import tempfile
from benchlib import BUSYBOX as IMAGE, ISLO, REG, RUNS, pct, timed



def installation(tmp, userns):
    """The environment of an installation of its own (state, config, gateway subnet)."""
    env = dict(os.environ)
    name = "userns" if userns else "plain"
    cfg = os.path.join(tmp, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(f"registry_mirrors:\n  docker.io: http://{REG}\n")
        f.write(f"gateway:\n  subnet: 10.{215 if userns else 216}.0.0/16\n")
        f.write(f"isolation:\n  userns: {'true' if userns else 'false'}\n")
    env["ISLOD_CONFIG"] = cfg
    env["ISLO_STATE_DIR"] = os.path.join(tmp, name)
    return env


def clean(env):
    out = subprocess.run([ISLO, "ls", "-o", "plain"], env=env, capture_output=True, text=True).stdout
    for line in out.splitlines():
        subprocess.run([ISLO, "rm", line.split("\t")[0], "-f"], env=env, capture_output=True)
    pid = os.path.join(env["ISLO_STATE_DIR"], "islod.pid")
    if os.path.exists(pid):
        subprocess.run(["kill", open(pid).read().strip()], capture_output=True)


def main():
    tmp = tempfile.mkdtemp(prefix="islo-bench-userns")
    envs = {True: installation(tmp, True), False: installation(tmp, False)}
    try:
        for env in envs.values():
            subprocess.run([ISLO, "use", "warm", "-i", IMAGE, "--", "true"], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        new = {True: [], False: []}
        existing = {True: [], False: []}
        for i in range(RUNS):
            for userns, env in envs.items():
                new[userns].append(timed([ISLO, "use", f"new-{i}", "-i", IMAGE, "--", "true"], env))
                existing[userns].append(timed([ISLO, "use", "warm", "--", "true"], env))
        print(f"{'measure':<30} {'userns p50':>11} {'plain p50':>10} {'ratio':>7}  (bound 1.15)")
        for name, xs in (("islo use NEW -- true", new), ("islo use EXISTING -- true", existing)):
            a, b = pct(xs[True], 50), pct(xs[False], 50)
            print(f"{name:<30} {a:9.1f}ms {b:8.1f}ms {a / b:6.2f}x")
    finally:
        for env in envs.values():
            clean(env)


if __name__ == "__main__":
    sys.exit(main())
