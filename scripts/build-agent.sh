#!/usr/bin/env bash
# Build islo-agent statically (glibc, crt-static) so it runs as PID 1 in any image:
# glibc, musl, busybox or scratch. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-release}"
flag=(); [ "$profile" = release ] && flag=(--release)
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q -p islo-agent --bin islo-agent "${flag[@]}" \
  --target x86_64-unknown-linux-gnu
bin="target/x86_64-unknown-linux-gnu/$profile/islo-agent"
if file "$bin" 2>/dev/null | grep -q dynamically; then
  echo "islo-agent is not static: $bin" >&2; exit 1
fi
echo "$PWD/$bin"
