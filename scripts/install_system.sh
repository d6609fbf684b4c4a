#!/usr/bin/env bash
# System packages the tests need (one script for every area; .ci/run calls it before scripts/test.sh).
#   kb (issue 9): PostgreSQL, and pgvector where Debian packages it for the installed major version. Debian bookworm
#   has no pgvector package: the kb tests then take PostgreSQL + pgvector from the `pgserver` wheel (a dev extra,
#   installed by scripts/install.sh), so this script does not fail when the pgvector package is missing.
set -euo pipefail

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system.sh: no apt-get here; install PostgreSQL (+ pgvector) with your system's package manager" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install_system.sh: not root and no sudo; skipping system packages" >&2; exit 0; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
PKGS=(postgresql postgresql-contrib)
$SUDO apt-get install -y -qq "${PKGS[@]}" >/dev/null
# pgvector for the installed major version, when the distribution has it (trixie and later, or PGDG)
major="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)"
if [ -n "$major" ] && apt-cache show "postgresql-${major}-pgvector" >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq "postgresql-${major}-pgvector" >/dev/null
fi
echo "install_system.sh: PostgreSQL ${major:-?} installed$( [ -n "$major" ] && [ -f "/usr/share/postgresql/${major}/extension/vector.control" ] && echo ' with pgvector' )"
