#!/usr/bin/env bash
# Configures, builds and tests tv_drift's CUDA build (the cuda preset, build-cuda/): the drift
# tests and the backend test. On a host with an NVIDIA GPU and driver the MMD runs on the device,
# and the backend test then requires it (TV_DRIFT_REQUIRE_DEVICE=1), so that a silent fallback
# fails the check; elsewhere the same tests pass through the CPU fallback, whose one log line
# (why there is no device) is printed first. Needs the CUDA toolkit at /usr/local/cuda
# (nvcc, cuBLAS) besides scripts/setup.sh's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
jobs="${TV_JOBS:-2}"

if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "cuda check: $(nvidia-smi -L | head -n 1); the device path is required"
  export TV_DRIFT_REQUIRE_DEVICE=1
else
  echo "cuda check: no GPU seen by nvidia-smi; the tests run through the CPU fallback"
fi

cmake --preset cuda >/dev/null
start=$SECONDS
cmake --build --preset cuda --parallel "$jobs"
echo "cuda check: built in $((SECONDS - start)) s"
./build-cuda/bin/tv_drift_backend_tests --gtest_brief=1
ctest --preset cuda --parallel "$jobs"
