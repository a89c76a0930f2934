#!/usr/bin/env bash
# Real clients against a real islod: the public Islo Python SDK (PyPI `islo`) through the API,
# the official MCP Python SDK (PyPI `mcp`) through `islo mcp`, and headless Chromium (Debian's,
# driven by selenium from PyPI) through the dashboard. Starts its own islod (TCP + key, and its
# unix socket), runs tests/{sdk,mcp,ui}, removes what they made; the dashboard's screenshots go
# to $ISLO_UI_SHOTS (default target/ui-screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."
REG="${ISLO_TEST_REGISTRY:-127.0.0.1:5050}"
VENV="${ISLO_TEST_CACHE:-/var/cache/islo-test}/sdk-venv"
MCP_VENV="${ISLO_TEST_CACHE:-/var/cache/islo-test}/mcp-venv"
UI_VENV="${ISLO_TEST_CACHE:-/var/cache/islo-test}/ui-venv"
SDK_VERSION=0.3.20
MCP_VERSION=2.3.0
SELENIUM_VERSION=4.51.0
[ -n "${ISLO_AGENT_PATH:-}" ] || { ISLO_AGENT_PATH="$(scripts/build-agent.sh)"; export ISLO_AGENT_PATH; }
if ! "$VENV/bin/python" -c "import islo" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "islo==$SDK_VERSION"
fi
if ! "$MCP_VENV/bin/python" -c "import mcp" 2>/dev/null; then
  python3 -m venv "$MCP_VENV"
  "$MCP_VENV/bin/pip" install -q "mcp==$MCP_VERSION"
fi
if ! "$UI_VENV/bin/python" -c "import selenium" 2>/dev/null; then
  python3 -m venv "$UI_VENV"
  "$UI_VENV/bin/pip" install -q "selenium==$SELENIUM_VERSION"
fi
tmp=$(mktemp -d /tmp/islo-sdk.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# A subnet of its own: links of another installation on this host (default 10.213.0.0/16) stay apart.
printf 'registry_mirrors:\n  docker.io: http://%s\ngateway:\n  subnet: 10.232.0.0/16\n' "$REG" > "$tmp/islod.yaml"
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
ISLO_BASE_URL="http://127.0.0.1:$port" ISLO_API_KEY="$key" ISLO_SOCKET="$tmp/state/islod.sock" \
  ISLO_TEST_IMAGE="$REG/islo-test/busybox:latest" ISLO_TEST_PYTHON_IMAGE="$REG/islo-test/debian-python:bookworm" \
  "$MCP_VENV/bin/python" tests/mcp/test_mcp.py \
  || { echo "--- islod log" >&2; tail -20 "$tmp/islod.log" >&2; exit 1; }
ISLO_BASE_URL="http://127.0.0.1:$port" ISLO_API_KEY="$key" ISLO_TEST_IMAGE="$REG/islo-test/busybox:latest" \
  ISLO_UI_SHOTS="${ISLO_UI_SHOTS:-$PWD/target/ui-screenshots}" "$UI_VENV/bin/python" tests/ui/test_dashboard.py \
  || { echo "--- islod log" >&2; tail -20 "$tmp/islod.log" >&2; exit 1; }
