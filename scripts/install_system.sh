#!/usr/bin/env bash
# System packages the test suite needs beyond Python: g++ and cmake (pip compiles llama-cpp-python, the llamacpp:
# backend), Debian's chromium + chromedriver (end-to-end browser tests of
# the review app; browsers cannot be downloaded by Selenium/Playwright here) and PostgreSQL (the review app's tests
# run on SQLite and on a real PostgreSQL, started by scripts/start_postgres.sh as user postgres).
# Needs root and apt-get; elsewhere it says what to install and exits 0, and the tests skip those parts only when
# CI is unset.
set -euo pipefail
packages=(chromium chromium-driver postgresql g++ cmake)
missing=()
# llama-cpp-python (the llamacpp: backend) compiles llama.cpp when pip installs it
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: cannot install ${missing[*]} (needs root and apt-get); install them for the browser and" \
       "PostgreSQL tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's postgresql package starts a cluster on port 5432; the tests start their own on a free port instead
if command -v pg_ctlcluster >/dev/null 2>&1; then
  for conf in /etc/postgresql/*/main; do
    [ -d "$conf" ] || continue
    version="$(basename "$(dirname "$conf")")"
    pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
  done
fi
# pgvector for the installed major version, when the distribution has it (trixie and later, or PGDG). Debian bookworm
# has none: the kb tests then take PostgreSQL + pgvector from the `pgserver` wheel (a dev extra), so a missing
# package is not an error.
major="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)"
if [ -n "$major" ] && [ ! -f "/usr/share/postgresql/${major}/extension/vector.control" ] \
   && apt-cache show "postgresql-${major}-pgvector" >/dev/null 2>&1; then
  apt-get install -y -q --no-install-recommends "postgresql-${major}-pgvector"
fi
