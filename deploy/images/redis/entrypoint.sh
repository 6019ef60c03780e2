#!/bin/sh
# As the official image's entrypoint: `redis-server` with no config file listens on every
# address with protected mode off, and runs as redis; anything else runs as given.
set -e
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = "redis-server" ]; then
  shift
  case "${1:-}" in
    *.conf) ;;
    *) set -- --bind '* -::*' --protected-mode no "$@" ;;
  esac
  set -- redis-server "$@"
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
