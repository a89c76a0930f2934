#!/usr/bin/env bash
# Build islo in release mode and install it: /usr/local/bin/{islo,islod} and the static
# agent at /usr/local/lib/islo/islo-agent. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
agent="$(scripts/build-agent.sh)"
cargo build -q --release -p islo-cli -p islod
install -m 0755 target/release/islo target/release/islod /usr/local/bin/
install -d /usr/local/lib/islo
install -m 0755 "$agent" /usr/local/lib/islo/islo-agent
echo "installed islo, islod and islo-agent" >&2
# An islod started from the binaries just replaced keeps running the old code: stop it. Its
# sandboxes keep running, and the next islo command starts the new islod, which adopts them.
pid="$(cat "${ISLO_STATE_DIR:-/var/lib/islo}/islod.pid" 2>/dev/null || true)"
if [ -n "$pid" ] && readlink "/proc/$pid/exe" 2>/dev/null | grep -q '(deleted)$'; then
  kill "$pid" && echo "stopped the islod that ran the replaced binary; the next islo command starts the new one" >&2
  for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
fi
