#!/usr/bin/env bash
# Make this machine ready for --sandbox podman: Debian's podman with runc, the engine
# config these machines need, and a local Debian base image (no registry is reachable,
# so base images are built here with debootstrap).
# Safe to run again: every step is skipped when already done.
set -euo pipefail

BASE="${BFC_BASE_IMAGE:-localhost/debian:bookworm}"
# the example task says FROM debian:bookworm-slim; podman finds short names under localhost/
ALIASES="${BFC_BASE_ALIASES:-localhost/debian:bookworm-slim}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  echo "setup-container-engine: installing podman, runc and debootstrap (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq podman runc debootstrap >/dev/null
fi

# crun, Debian's default runtime, fails here on cgroups and rlimits; runc works with
# the ulimits capped at what the machine allows
conf=/etc/containers/containers.conf
if ! grep -q '^runtime = "runc"' "$conf" 2>/dev/null; then
  echo "setup-container-engine: writing $conf (runtime runc, default ulimits)"
  $SUDO mkdir -p /etc/containers
  [ -f "$conf" ] && $SUDO cp "$conf" "$conf.before-benchflow-continue"
  $SUDO tee "$conf" >/dev/null <<'EOF'
# written by benchflow-continue's scripts/setup-container-engine.sh
[containers]
default_ulimits = ["nofile=1000:1000", "nproc=1000:1000"]

[engine]
runtime = "runc"
EOF
fi

if ! $SUDO podman image exists "$BASE"; then
  echo "setup-container-engine: building $BASE with debootstrap (about a minute)"
  root="$(mktemp -d /var/tmp/bfc-rootfs-XXXXXX)"
  trap '$SUDO rm -rf "$root"' EXIT
  # python3: the example task and its verifier use it; ca-certificates: pip and apt over TLS
  $SUDO debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$root" http://deb.debian.org/debian >/dev/null
  $SUDO rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  $SUDO tar -C "$root" -c . | $SUDO podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
fi
for alias in $ALIASES; do
  $SUDO podman image exists "$alias" || $SUDO podman tag "$BASE" "$alias"
done

$SUDO podman run --rm --network=host "$BASE" true
echo "setup-container-engine: ready ($(podman --version), runtime runc, base image $BASE)"
