#!/usr/bin/env bash
# Prepare this machine for islo's tests and demo (idempotent; needs root):
#  1. Debian packages islo needs (OCI runtimes, registry, etcd, image tools, ssh, nftables…);
#  2. a docker-registry on loopback (ISLO_TEST_REGISTRY, default 127.0.0.1:5050);
#  3. test images built from Debian packages, pushed to it:
#       islo-test/busybox, library/busybox        busybox-static, one layer
#       islo-test/scratch                         nothing but one static program (/busybox)
#       islo-test/debian-python, library/python:3.12-slim
#                                                 debootstrap minbase + python3 + pip + git + curl + sftp-server + rsync
#       islo-test/node                            that plus Node.js and npm
#     The `library/...` names make Docker Hub references resolve through a registry mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
REG="${ISLO_TEST_REGISTRY:-127.0.0.1:5050}"
CACHE="${ISLO_TEST_CACHE:-/var/cache/islo-test}"
PKGS=(patch crun runc runsc etcd-server etcd-client skopeo docker-registry busybox-static debootstrap openssh-client rsync git iproute2 nftables e2fsprogs curl hyperfine file tmux openssl python3
      chromium chromium-driver fonts-liberation)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- CRIU 4 (pause/resume) ---------------------------------------------------------------
# Debian 12's criu 3.17 fails on this kernel: build Debian trixie's own 4.x source (checked
# by its hash) once, into /usr/local/sbin, with scripts/criu-*.patch applied (Linux 6.16+
# refuses SO_PASSCRED on TCP sockets, which 4.1.1 reads from every socket it saves).
CRIU_VERSION=4.1.1
CRIU_SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
# Its kernel-facts cache must be on a tmpfs, which this machine's /run is not: /dev/shm.
CRIU_RUNDIR=/dev/shm
CRIU_BUILD="$CRIU_VERSION+$(cat scripts/criu-*.patch | sha256sum | cut -c1-12)+$CRIU_RUNDIR"
CRIU_STAMP=/usr/local/sbin/.criu-build
if [ "$(cat "$CRIU_STAMP" 2>/dev/null)" != "$CRIU_BUILD" ] || ! /usr/local/sbin/criu --version >/dev/null 2>&1; then
  CRIU_DEPS=(gcc make pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler python3-protobuf
             libnl-3-dev libnet1-dev libcap-dev libbsd-dev libaio-dev libgnutls28-dev libnftables-dev uuid-dev)
  missing=()
  for p in "${CRIU_DEPS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing CRIU's build dependencies"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  src="$CACHE/criu-src"
  mkdir -p "$src/lists/partial"
  tarball="$src/criu_$CRIU_VERSION.orig.tar.xz"
  if ! echo "$CRIU_SHA256  $tarball" | sha256sum -c --status 2>/dev/null; then
    say "fetching CRIU $CRIU_VERSION's source (Debian trixie)"
    mirror=$({ grep -shoE '^(URIs:|deb) +[a-z]+://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list || true; } \
      | grep -v security | head -n1 | awk '{print $2}')
    echo "deb-src $mirror trixie main" > "$src/sources.list"
    apt_src=(-o Dir::Etc::SourceList="$src/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$src/lists")
    apt-get "${apt_src[@]}" update -qq
    (cd "$src" && apt-get "${apt_src[@]}" source --download-only criu >/dev/null 2>&1 || true)
    echo "$CRIU_SHA256  $tarball" | sha256sum -c --status || { echo "could not fetch $tarball" >&2; exit 1; }
  fi
  say "building CRIU $CRIU_VERSION (about a minute)"
  rm -rf "$src/criu-$CRIU_VERSION"
  tar -C "$src" -xf "$tarball"
  for p in scripts/criu-*.patch; do patch -d "$src/criu-$CRIU_VERSION" -p1 -s < "$p"; done
  make -C "$src/criu-$CRIU_VERSION" -j"$(nproc)" criu RUNDIR="$CRIU_RUNDIR" >"$src/build.log" 2>&1 || { tail -20 "$src/build.log" >&2; exit 1; }
  install -m 0755 "$src/criu-$CRIU_VERSION/criu/criu" /usr/local/sbin/criu
  echo "$CRIU_BUILD" > "$CRIU_STAMP"
fi

# --- registry -----------------------------------------------------------------------------
mkdir -p "$CACHE/registry"
cat > "$CACHE/registry/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $CACHE/registry/data}
  delete: {enabled: true}
http: {addr: $REG}
CFG
if ! curl -fsS "http://$REG/v2/" >/dev/null 2>&1; then
  say "starting docker-registry on $REG"
  setsid nohup docker-registry serve "$CACHE/registry/config.yml" >"$CACHE/registry/log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "http://$REG/v2/" >/dev/null || { cat "$CACHE/registry/log" >&2; exit 1; }
fi

# --- images -------------------------------------------------------------------------------
cargo build -q -p islo-testkit
TK="$PWD/target/debug/islo-testkit"
# Bump when an image's recipe changes, so machines that have the old one rebuild it.
IMAGES_VERSION=5
have() {
  [ -f "$CACHE/built-v$IMAGES_VERSION-${1//\//_}-$2" ] &&
    curl -fsS "http://$REG/v2/$1/manifests/$2" -H 'Accept: application/vnd.oci.image.manifest.v1+json' >/dev/null 2>&1
}
built() { for r in "$@"; do touch "$CACHE/built-v$IMAGES_VERSION-${r//\//_}"; done; }

if ! have islo-test/busybox latest || ! have library/busybox latest; then
  say "building busybox image"
  root="$CACHE/busybox-rootfs"; rm -rf "$root"; mkdir -p "$root/bin" "$root/etc" "$root/tmp"; chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\n' > "$root/etc/group"
  "$TK" image "$root" "$REG/islo-test/busybox:latest" "$REG/library/busybox:latest"
  built islo-test/busybox-latest library/busybox-latest
fi

if ! have islo-test/scratch latest; then
  say "building scratch image"
  root="$CACHE/scratch-rootfs"; rm -rf "$root"; mkdir -p "$root"
  cp /bin/busybox "$root/busybox"
  "$TK" image "$root" "$REG/islo-test/scratch:latest"
  built islo-test/scratch-latest
fi

if ! have library/python 3.12-slim || ! have islo-test/debian-python bookworm; then
  root="$CACHE/debian-python-rootfs"
  if [ ! -x "$root/usr/bin/python3" ] || [ ! -x "$root/usr/lib/openssh/sftp-server" ] || [ ! -x "$root/usr/bin/rsync" ] || [ ! -x "$root/usr/bin/curl" ] || [ ! -x "$root/usr/bin/pip3" ]; then
    # The Debian mirror this machine already uses for apt.
    mirror=$({ grep -shoE '^(URIs:|deb) +[a-z]+://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list || true; } \
      | grep -v security | head -n1 | awk '{print $2}')
    [ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt sources" >&2; exit 1; }
    say "debootstrap bookworm minbase + python3 + pip + git + curl + sftp-server + rsync (takes a minute)"
    rm -rf "$root"
    debootstrap --variant=minbase --include=python3,python3-pip,git,ca-certificates,curl,openssh-sftp-server,rsync bookworm "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  fi
  say "pushing debian-python image"
  "$TK" image "$root" "$REG/islo-test/debian-python:bookworm" "$REG/library/python:3.12-slim"
  built islo-test/debian-python-bookworm library/python-3.12-slim
fi

# islo-test/node: the Debian rootfs above plus this machine's Node.js and npm (for agents,
# which install from the npm registry through the gateway).
if ! have islo-test/node latest; then
  command -v node >/dev/null && [ -d /usr/lib/node_modules/npm ] \
    || { echo "Node.js with npm in /usr/lib/node_modules is needed for the agent test image" >&2; exit 1; }
  node_root="$CACHE/node-rootfs"
  rm -rf "$node_root"
  cp -a "$CACHE/debian-python-rootfs" "$node_root"
  tar -C / -cf - usr/bin/node usr/bin/npm usr/bin/npx usr/lib/node_modules/npm | tar -C "$node_root" -xf -
  say "pushing node image"
  "$TK" image "$node_root" "$REG/islo-test/node:latest"
  rm -rf "$node_root"
  built islo-test/node-latest
fi
say "test environment ready (registry $REG)"
