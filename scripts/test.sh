#!/usr/bin/env bash
# Runs every test on the default build, then the shm tests again under ThreadSanitizer and
# AddressSanitizer (build-tsan/, build-asan/). Expects scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Clones in other directories share the compiler cache (paths are made relative to the tree).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
jobs="${TV_JOBS:-2}"

echo "test: default preset"
cmake --build --preset default --parallel "$jobs"
ctest --preset default --parallel "$jobs"

for preset in tsan asan; do
  echo "test: shm tests under $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" --parallel "$jobs" --target tv_shm_tests tv_shm_test_writer
  ctest --preset "$preset" --parallel "$jobs"
done
echo "test: all passed"
