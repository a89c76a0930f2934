#!/usr/bin/env bash
# The main job, from a fresh machine: install what islo needs, serve test images from a
# loopback registry (the Docker Hub mirror), install islo, point the embedded server at the
# mirror, and run a command in a new sandbox made from `python:3.12-slim`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/demo.sh needs root" >&2; exit 1; }
scripts/test-env.sh
scripts/install.sh
REG="${ISLO_TEST_REGISTRY:-127.0.0.1:5050}"
mkdir -p /etc/islo
if [ ! -f /etc/islo/islod.yaml ]; then
  printf 'registry_mirrors:\n  docker.io: http://%s\n' "$REG" > /etc/islo/islod.yaml
fi
exec islo use demo -- python3 -c "print('hello from the sandbox')"
