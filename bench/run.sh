#!/usr/bin/env bash
# Benchmarks: release binaries, a throw-away state dir, the test registry. Needs root.
#   bench/run.sh            sandbox start-up (islo use NEW / EXISTING, 20 concurrent) vs crun run,
#                           keystroke echo through an attached session vs a local PTY, and
#                           snapshot save / create-from-snapshot (bench/snapshot.py), and
#                           port-forward latency and throughput vs direct loopback
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-env.sh >/dev/null
ISLO_AGENT_PATH="$(scripts/build-agent.sh)"
cargo build -q --release -p islo-cli -p islod
tmp=$(mktemp -d /tmp/islo-bench.XXXXXX)
printf 'registry_mirrors:\n  docker.io: http://%s\n' "${ISLO_TEST_REGISTRY:-127.0.0.1:5050}" > "$tmp/islod.yaml"
export ISLO_AGENT_PATH ISLOD_CONFIG="$tmp/islod.yaml" ISLO_STATE_DIR="$tmp/state" ISLO_BIN="$PWD/target/release/islo"
cleanup() {
  for n in $("$ISLO_BIN" ls -o plain 2>/dev/null | cut -f1); do "$ISLO_BIN" rm "$n" -f >/dev/null 2>&1 || true; done
  [ -f "$tmp/state/islod.pid" ] && kill "$(cat "$tmp/state/islod.pid")" 2>/dev/null
  sleep 0.5; rm -rf "$tmp"
}
trap cleanup EXIT
python3 bench/sandbox_start.py
echo
python3 bench/echo_rtt.py
echo
python3 bench/snapshot.py
echo
python3 bench/port_forward.py
