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
