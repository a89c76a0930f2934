#!/usr/bin/env bash
# The public Islo Python SDK (from PyPI) against a real islod: it is a real client of our API.
# Starts its own islod (TCP + key), runs tests/sdk/test_sdk.py, removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
REG="${ISLO_TEST_REGISTRY:-127.0.0.1:5050}"
VENV="${ISLO_TEST_CACHE:-/var/cache/islo-test}/sdk-venv"
SDK_VERSION=0.3.20
[ -n "${ISLO_AGENT_PATH:-}" ] || { ISLO_AGENT_PATH="$(scripts/build-agent.sh)"; export ISLO_AGENT_PATH; }
if ! "$VENV/bin/python" -c "import islo" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "islo==$SDK_VERSION"
fi
tmp=$(mktemp -d /tmp/islo-sdk.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'registry_mirrors:\n  docker.io: http://%s\n' "$REG" > "$tmp/islod.yaml"
export ISLOD_CONFIG="$tmp/islod.yaml" ISLO_STATE_DIR="$tmp/state"
target/debug/islod --state-dir "$tmp/state" serve --listen "127.0.0.1:$port" >"$tmp/islod.log" 2>&1 &
pid=$!
cleanup() {
  for n in $(target/debug/islo ls -o plain 2>/dev/null | cut -f1); do target/debug/islo rm -f "$n" >/dev/null 2>&1 || true; done
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 1 200); do [ -S "$tmp/state/islod.sock" ] && break; sleep 0.05; done
[ -S "$tmp/state/islod.sock" ] || { cat "$tmp/islod.log" >&2; exit 1; }
key=$(target/debug/islod --state-dir "$tmp/state" keys create sdk-test --tenant sdk 2>/dev/null)
ISLO_BASE_URL="http://127.0.0.1:$port" ISLO_COMPUTE_URL="http://127.0.0.1:$port" ISLO_API_KEY="$key" \
  ISLO_TEST_IMAGE="$REG/islo-test/busybox:latest" "$VENV/bin/python" tests/sdk/test_sdk.py \
  || { echo "--- islod log" >&2; tail -20 "$tmp/islod.log" >&2; exit 1; }
