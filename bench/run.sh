#!/usr/bin/env bash
# Benchmarks: release binaries, a throw-away state dir, the test registry. Needs root.
#   bench/run.sh [NAME…]    (NAME: sandbox_start userns echo_rtt snapshot pause gvisor port_forward gateway dashboard cluster)
#                           sandbox start-up (islo use NEW / EXISTING, 20 concurrent) vs crun run,
#                           the same with and without user namespaces (bench/userns.py),
#                           keystroke echo through an attached session vs a local PTY, and
#                           snapshot save / create-from-snapshot (bench/snapshot.py), and
#                           pause / resume with 10 and 200 MB held vs stop / start (bench/pause.py), and
#                           the gvisor class vs the container class: starts, a stat() loop, a 100 MB
#                           download through the gateway (bench/gvisor.py), and
#                           port-forward latency and throughput vs direct loopback, and
#                           the egress gateway's added latency and HTTPS throughput vs direct,
#                           what an open dashboard costs islod (bench/dashboard.py), and what a request
#                           through another cluster node adds (bench/cluster.py);
#   bench/run.sh fleet      (not in the default set: it makes 1,000 sandboxes, ~15 min) create,
#                           rm and ls against the size of the fleet, and islod's restart with it
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-env.sh >/dev/null
ISLO_AGENT_PATH="$(scripts/build-agent.sh)"
cargo build -q --release -p islo-cli -p islod
tmp=$(mktemp -d /tmp/islo-bench.XXXXXX)
# A test CA and an upstream certificate for the gateway benchmark (the gateway trusts the CA).
certs="$tmp/certs"; mkdir -p "$certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$certs/ca.key" -out "$certs/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=up.test \
  -keyout "$certs/key.pem" -out "$certs/req.pem" 2>/dev/null
printf 'subjectAltName=DNS:up.test\n' > "$certs/ext"
openssl x509 -req -in "$certs/req.pem" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" -CAcreateserial \
  -days 2 -extfile "$certs/ext" -out "$certs/cert.pem" 2>/dev/null
cat > "$tmp/islod.yaml" <<CFG
registry_mirrors:
  docker.io: http://${ISLO_TEST_REGISTRY:-127.0.0.1:5050}
gateway:
  hosts: {up.test: 127.0.0.1}
  upstream_ca_files: [$certs/ca.pem]
# Room for the fleet benchmark's 1,000 sandboxes (the defaults stop a tenant at 100).
quotas: {sandboxes: 1100, vcpus: 2200, memory_mb: 2400000, disk_gb: 11000}
# Sandboxes started ahead (WARM_POOL=2 bench/run.sh fleet); none by default, as in islod.
warm_pool: ${WARM_POOL:-0}
CFG
export GATEWAY_BENCH_CERTS="$certs" GATEWAY_BENCH_PORT="${GATEWAY_BENCH_PORT:-18443}"
export ISLO_AGENT_PATH ISLOD_CONFIG="$tmp/islod.yaml" ISLO_STATE_DIR="$tmp/state" ISLO_BIN="$PWD/target/release/islo"
# Stop the bench's islod and wait for it to be gone (at most 10 s).
stop_islod() {
  local p
  p=$(cat "$tmp/state/islod.pid" 2>/dev/null) || return 0
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || echo Z)" = Z ] && return 0
    sleep 0.1
  done
}
cleanup() {
  for n in $("$ISLO_BIN" ls -o plain 2>/dev/null | cut -f1); do "$ISLO_BIN" rm "$n" -f >/dev/null 2>&1 || true; done
  stop_islod
  if [ "${WARM_POOL:-0}" != 0 ]; then
    # An islod started with no pool removes the sandboxes the pool held, before it answers.
    ISLOD_WARM_POOL=0 "$ISLO_BIN" ls >/dev/null 2>&1 || true
    stop_islod
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# `bench/run.sh gateway snapshot`: only those; no arguments: all of them.
for b in "${@:-sandbox_start userns echo_rtt snapshot pause gvisor port_forward gateway dashboard cluster}"; do
  for name in $b; do python3 "bench/$name.py"; echo; done
done
