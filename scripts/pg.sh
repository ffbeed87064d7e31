#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks (Debian's `postgresql` package).
#   scripts/pg.sh start [DIR]   initdb into DIR (default: a new temp dir) as the `postgres` user
#                               when run as root, start it on a free port on 127.0.0.1, create the
#                               database `aa`; print its URL (postgres://aa@127.0.0.1:PORT/aa) on
#                               stdout. DIR must be empty or absent.
#   scripts/pg.sh stop DIR      stop that cluster (immediate) and remove DIR.
# Trust authentication on 127.0.0.1 only: for tests, never for production data.
set -euo pipefail

bin_dir() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -x "$b/initdb" ] || { echo "pg.sh: PostgreSQL is not installed (apt-get install postgresql; scripts/setup.sh does it)" >&2; exit 1; }
  echo "$b"
}

# as_pg CMD...: runs CMD as the cluster's owner (initdb refuses to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir="${1:-}" b port
  b=$(bin_dir)
  if [ -z "$dir" ]; then dir=$(mktemp -d -t aa-pg.XXXXXX); fi
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || { echo "pg.sh: $dir is not empty" >&2; exit 1; }
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  as_pg "$b/initdb" -D "$dir/data" -A trust -U aa --no-instructions >"$dir.initdb.log" 2>&1 \
    || { cat "$dir.initdb.log" >&2; exit 1; }
  rm -f "$dir.initdb.log"
  # A port can be taken between choosing and binding it: try a few.
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    if as_pg "$b/pg_ctl" -D "$dir/data" -w -t 30 -l "$dir/pg.log" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null; then
      as_pg "$b/psql" -h 127.0.0.1 -p "$port" -U aa -d postgres -qAt -c "create database aa" >/dev/null
      echo "pg.sh: running in $dir (stop: scripts/pg.sh stop $dir)" >&2
      echo "postgres://aa@127.0.0.1:$port/aa"
      return 0
    fi
  done
  echo "pg.sh: PostgreSQL did not start; its log:" >&2
  cat "$dir/pg.log" >&2 || true
  exit 1
}

stop() {
  local dir="${1:?usage: pg.sh stop DIR}" b
  b=$(bin_dir)
  if [ -d "$dir/data" ]; then
    as_pg "$b/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: scripts/pg.sh start [DIR] | stop DIR" >&2; exit 2 ;;
esac
