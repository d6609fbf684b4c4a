#!/usr/bin/env bash
# Install, run ruff, then the WHOLE test suite in parallel on every core of the machine (pytest-xdist -n auto).
# Real-data tests read $CLINFORGE_DATA (default ../shared/data).
#
#   bash scripts/test.sh                 the full suite (what CI runs; CI never passes --quick)
#   bash scripts/test.sh --quick         the inner-loop subset: tests not marked slow
#   bash scripts/test.sh tests/test_x.py extra arguments go to pytest
#
# CLINFORGE_SKIP_INSTALL=1 skips the install step; CLINFORGE_TEST_WORKERS=N overrides -n auto; CLINFORGE_TEST_TMP
# moves the run's scratch folder (default $TMPDIR/clinforge-tests); CLINFORGE_TEST_MIN_FREE_GB (default 5).
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
# Everything the run writes (pytest's tmp_path folders, every tempfile of the tests, their subprocesses, torchrun
# and Chromium) goes under ONE folder, emptied at the start of the next run and removed after a passing one: the
# disk is shared between runs, and leftovers once filled it mid-suite (ENOSPC in 5 tests). The folder is 0755
# because the PostgreSQL tests run initdb as another user when we are root.
run_tmp="${CLINFORGE_TEST_TMP:-${TMPDIR:-/tmp}/clinforge-tests}"
rm -rf "$run_tmp"
mkdir -p "$run_tmp/tmp"
chmod 755 "$run_tmp" "$run_tmp/tmp"
need_gb="${CLINFORGE_TEST_MIN_FREE_GB:-5}"  # the full suite peaked at 2.7 GB there (README): that and a margin
free_gb=$(df -Pk "$run_tmp" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "scripts/test.sh: only $free_gb GB free under $run_tmp ($(df -P "$run_tmp" | awk 'NR == 2 { print $6 }')); the" \
    "suite needs $need_gb GB (CLINFORGE_TEST_MIN_FREE_GB). Free space there or set CLINFORGE_TEST_TMP." >&2
  exit 1
fi
export TMPDIR="$run_tmp/tmp"
start=$(date +%s)
status=0
python3 -m pytest -q -p no:cacheprovider -n "${CLINFORGE_TEST_WORKERS:-auto}" --dist loadscope --durations=15 \
  --basetemp "$run_tmp/pytest" ${select[@]+"${select[@]}"} ${args[@]+"${args[@]}"} || status=$?
echo "test suite: $(( $(date +%s) - start )) s wall on $(python3 -c 'import os; print(os.cpu_count())') cores$([ "$quick" = 1 ] && echo ' (--quick)'), exit $status"
if [ "$status" = 0 ]; then rm -rf "$run_tmp"; else echo "test files kept for inspection: $run_tmp" >&2; fi
exit $status
