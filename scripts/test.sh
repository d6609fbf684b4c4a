#!/usr/bin/env bash
# Install, run ruff, then the WHOLE test suite in parallel on every core of the machine (pytest-xdist -n auto).
# Real-data tests read $CLINFORGE_DATA (default ../shared/data).
#
#   bash scripts/test.sh                 the full suite (what CI runs; CI never passes --quick)
#   bash scripts/test.sh --quick         the inner-loop subset: tests not marked slow
#   bash scripts/test.sh tests/test_x.py extra arguments go to pytest
#
# CLINFORGE_SKIP_INSTALL=1 skips the install step; CLINFORGE_TEST_WORKERS=N overrides -n auto.
# Workers share nothing but the tiny models of tests/conftest.py (built once per run under a file lock); every
# test writes under its own tmp_path and binds port 0. --dist loadscope keeps a module's tests on one worker, so a
# module-scoped fixture (e.g. the demo run of tests/test_demo.py) runs once.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
args=()
for arg in "$@"; do
  if [ "$arg" = "--quick" ]; then quick=1; else args+=("$arg"); fi
done
if [ "${CLINFORGE_SKIP_INSTALL:-0}" != 1 ]; then bash scripts/install.sh; fi
ruff check src tests benchmarks
select=()
if [ "$quick" = 1 ]; then select=(-m "not slow"); fi
start=$(date +%s)
status=0
python3 -m pytest -q -p no:cacheprovider -n "${CLINFORGE_TEST_WORKERS:-auto}" --dist loadscope --durations=15 \
  ${select[@]+"${select[@]}"} ${args[@]+"${args[@]}"} || status=$?
echo "test suite: $(( $(date +%s) - start )) s wall on $(python3 -c 'import os; print(os.cpu_count())') cores$([ "$quick" = 1 ] && echo ' (--quick)'), exit $status"
exit $status
