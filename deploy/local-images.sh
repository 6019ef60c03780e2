#!/usr/bin/env bash
# Build local stand-ins for the official base images (python:3.11-slim, postgres:16, redis:7)
# from a debootstrapped Debian bookworm, for machines that cannot pull from Docker Hub.
#
#   deploy/local-images.sh            build the stand-ins that are missing (cached in the engine)
#   deploy/local-images.sh --rebuild  build them all again
#
# Images made (what differs from the official ones: docs/DEPLOY.md, "Local stand-in images"):
#   crowd-local/bookworm:latest     debootstrap --variant=minbase bookworm, imported
#   crowd-local/python:3.11         bookworm's Python 3.11 in a venv on PATH (python, pip)
#   crowd-local/postgres:15         bookworm's PostgreSQL 15, POSTGRES_USER/PASSWORD/DB entrypoint
#   crowd-local/redis:7             bookworm's Redis 7.0, runs as redis in /data
# Use them with docker-compose.yml through CROWD_PYTHON_IMAGE, CROWD_POSTGRES_IMAGE and
# CROWD_REDIS_IMAGE (deploy/compose_test.py does). Needs root (debootstrap) and a Docker engine.
# The debootstrapped root is cached in /var/cache/crowd-compose (CROWD_IMAGE_CACHE).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rebuild=0
[ "${1:-}" = "--rebuild" ] && rebuild=1
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

have() { [ "$rebuild" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
say() { echo "local-images: $*"; }

# The debootstrapped root is kept as a tarball outside the clone, so that an engine whose
# images are gone (its data wiped, or another storage driver) re-imports it in seconds.
CACHE="${CROWD_IMAGE_CACHE:-/var/cache/crowd-compose}"
ROOTFS="$CACHE/bookworm-minbase.tar"
if ! have crowd-local/bookworm:latest; then
  if [ "$rebuild" = 1 ] || [ ! -s "$ROOTFS" ]; then
    command -v debootstrap >/dev/null || { echo "local-images: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
    mkdir -p "$CACHE"
    root="$(mktemp -d)"
    trap 'rm -rf "$root" "$root.log"' EXIT
    say "debootstrap bookworm (minbase) from $MIRROR"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
      || { tail -20 "$root.log" >&2; echo "local-images: debootstrap failed" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    chmod 755 "$root"  # mktemp made it 0700: as the image's /, it would shut out every other user
    tar -C "$root" -cf "$ROOTFS.part" . && mv "$ROOTFS.part" "$ROOTFS"
    rm -rf "$root" "$root.log"
    trap - EXIT
  else
    say "bookworm root from $ROOTFS"
  fi
  docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' "$ROOTFS" crowd-local/bookworm:latest >/dev/null
  # Stand-ins built on an older base are rebuilt on the new one.
  rebuild=1
fi

build() {  # tag, folder
  if have "$1"; then say "$1 is cached"; return; fi
  say "building $1"
  # The build context is the folder plus certs/: the CA certificates this machine trusts
  # beyond Debian's (/usr/local/share/ca-certificates, e.g. a TLS-inspecting proxy's), so that
  # pip in the stand-in reaches PyPI wherever the host does.
  ctx="$(mktemp -d)"
  cp -r "$here/images/$2/." "$ctx/"
  mkdir -p "$ctx/certs"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
  DOCKER_BUILDKIT=0 docker build -q -t "$1" "$ctx" >/dev/null 2>"$ctx.err" \
    || { cat "$ctx.err" >&2; rm -rf "$ctx" "$ctx.err"; echo "local-images: building $1 failed" >&2; exit 1; }
  rm -rf "$ctx" "$ctx.err"
}
build crowd-local/python:3.11 python
build crowd-local/postgres:15 postgres
build crowd-local/redis:7 redis
