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
# CROWD_REDIS_IMAGE (deploy/compose-test.sh does). Needs root (debootstrap) and a Docker engine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rebuild=0
[ "${1:-}" = "--rebuild" ] && rebuild=1
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

have() { [ "$rebuild" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
say() { echo "local-images: $*"; }

if ! have crowd-local/bookworm:latest; then
  command -v debootstrap >/dev/null || { echo "local-images: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  say "debootstrap bookworm (minbase) from $MIRROR"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; echo "local-images: debootstrap failed" >&2; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  chmod 755 "$root"  # mktemp made it 0700: as the image's /, it would shut out every other user
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' - crowd-local/bookworm:latest >/dev/null
  rm -rf "$root"
  trap - EXIT
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
