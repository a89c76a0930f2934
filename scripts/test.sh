#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (Debian packages,
# the loopback registry and test images), builds the static agent and the binaries, then runs
# every unit, integration and end-to-end test. Needs root (sandboxes are real).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh needs root: sandboxes use namespaces, cgroups and mounts" >&2; exit 1; }
scripts/test-env.sh
ISLO_AGENT_PATH="$(scripts/build-agent.sh)"
export ISLO_AGENT_PATH
cargo build --workspace --bins
scripts/client-tests.sh
# A hang must fail loudly, well inside CI's 90 minutes.
timeout --signal=KILL 45m cargo test --workspace -- --test-threads="${ISLO_TEST_THREADS:-4}"
# The API tests again, on a cluster node's store: the shared tables replicated through a real
# etcd (one member on loopback, its data thrown away).
etcd_dir=$(mktemp -d /tmp/islo-api-etcd.XXXXXX)
etcd --name api --data-dir "$etcd_dir/data" --listen-client-urls http://127.0.0.1:23179 \
  --advertise-client-urls http://127.0.0.1:23179 --listen-peer-urls http://127.0.0.1:23180 \
  --initial-advertise-peer-urls http://127.0.0.1:23180 --initial-cluster api=http://127.0.0.1:23180 \
  --log-level=error > "$etcd_dir/log" 2>&1 &
etcd_pid=$!
trap 'kill $etcd_pid 2>/dev/null; rm -rf "$etcd_dir"' EXIT
for _ in $(seq 50); do etcdctl --endpoints http://127.0.0.1:23179 endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
ISLO_TEST_ETCD=http://127.0.0.1:23179 timeout --signal=KILL 15m \
  cargo test -p islod --tests -- --test-threads="${ISLO_TEST_THREADS:-4}"
