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
