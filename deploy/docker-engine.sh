#!/usr/bin/env bash
# Make sure a Docker engine answers, and print its DOCKER_HOST on stdout.
#
# An engine already named by DOCKER_HOST is used as it is. Otherwise this starts crowd's own
# engine, kept apart from any other on the machine: Debian's dockerd with the overlay2
# storage driver where an overlay filesystem can be mounted, else vfs (it works everywhere but
# copies every layer whole: builds and container starts are several times slower), its data
# under /var/lib/crowd-docker (base images and the build cache survive between runs and
# clean clones), its socket at /var/lib/crowd-docker/docker.sock. As root it installs what is
# missing first (docker.io, docker-compose, debootstrap: Debian packages). Anything that
# fails ends with one line saying what, and a non-zero status: it never skips.
set -euo pipefail
ROOT="${CROWD_DOCKER_ROOT:-/var/lib/crowd-docker}"
SOCK="unix://$ROOT/docker.sock"
fail() { echo "docker-engine: $*" >&2; exit 1; }
answers() { DOCKER_HOST="$1" timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then
  echo "$DOCKER_HOST"; exit 0
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  echo "docker-engine: installing ${missing[*]}" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2 \
    || fail "could not install ${missing[*]} with apt-get"
fi

if answers "$SOCK"; then echo "$SOCK"; exit 0; fi
[ "$(id -u)" = 0 ] || fail "no engine answers at $SOCK and starting one needs root"
mkdir -p "$ROOT"
# A dockerd that died leaves its pid file and containerd's; a new one refuses to start over them.
if [ -f "$ROOT/dockerd.pid" ] && ! kill -0 "$(cat "$ROOT/dockerd.pid")" 2>/dev/null; then
  rm -f "$ROOT/dockerd.pid"
fi
# overlay2 when the kernel lets us mount an overlay here (not inside some containers), else vfs.
driver="${CROWD_DOCKER_STORAGE:-}"
if [ -z "$driver" ]; then
  t="$(mktemp -d "$ROOT/overlay-probe.XXXXXX")"
  mkdir -p "$t/lower" "$t/upper" "$t/work" "$t/merged"
  if mount -t overlay overlay -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" \
      "$t/merged" 2>/dev/null; then
    umount "$t/merged"; driver=overlay2
  else
    driver=vfs
  fi
  rm -rf "$t"
fi
echo "docker-engine: starting dockerd ($driver storage, data in $ROOT, log in $ROOT/dockerd.log)" >&2
setsid nohup dockerd --storage-driver="$driver" --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
  --pidfile "$ROOT/dockerd.pid" -H "$SOCK" >>"$ROOT/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if answers "$SOCK"; then echo "$SOCK"; exit 0; fi
  sleep 1
done
tail -n 15 "$ROOT/dockerd.log" >&2 || true
fail "dockerd did not answer at $SOCK within 60 s (log: $ROOT/dockerd.log)"
