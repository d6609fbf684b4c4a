#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and benchmarks: initdb into a new folder DIR under ${TMPDIR:-/tmp}, listen on
# 127.0.0.1:PORT only (Unix socket inside DIR), trust auth (loopback, temporary), one database "review".
# Prints "DIR URL" on the last line. PostgreSQL refuses to run as root, so as root the server runs as user postgres
# (created by Debian's package) and DIR belongs to it (a pytest tmp_path is not traversable by other users).
#   scripts/start_postgres.sh PORT         start
#   scripts/start_postgres.sh --stop DIR   stop (immediate: a throwaway cluster needs no checkpoint), delete DIR
set -euo pipefail
bin=""
if command -v initdb >/dev/null 2>&1; then
  bin="$(dirname "$(readlink -f "$(command -v initdb)")")"
else
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin="$d"; done
fi
[ -n "$bin" ] || { echo "error: PostgreSQL binaries not found (apt-get install -y postgresql)" >&2; exit 3; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "${1:-}" = "--stop" ]; then
  as_pg "$bin/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null || true
  case "$2" in */clinforge-pg.*) rm -rf "$2" ;; esac
  exit 0
fi
port="$1"
dir="$(mktemp -d "${TMPDIR:-/tmp}/clinforge-pg.XXXXXX")"
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=on" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres review
echo "$dir postgresql://postgres@127.0.0.1:$port/review"
