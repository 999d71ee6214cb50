#!/usr/bin/env bash
# Runs every test on the default build, then the tests of the concurrent code, and the fleet as
# real processes, again under ThreadSanitizer and AddressSanitizer (build-tsan/, build-asan/), the
# drift statistics' CUDA build (build-cuda/) through its CPU fallback, and a fuzz smoke run.
# The fuzz targets' committed corpora replay in the default preset (fuzz_corpus_*), and each
# libFuzzer build (the fuzz preset) runs for a short smoke test; long campaigns are
# scripts/fuzz.sh.
# Expects scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Clones in other directories share the compiler cache (paths are made relative to the tree).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
jobs="${TV_JOBS:-2}"

# The default preset's tests include the Debian package's (label package, some 30 s): cpack from
# build/, its files, its units verified (scripts/package.sh makes the same package).
echo "test: default preset"
cmake --build --preset default --parallel "$jobs"
ctest --preset default --parallel "$jobs"

# The concurrent code: the shared-memory block, the SQLite layer, the job queue, the HTTP server
# and client, the artifact store, the coordinator (model_tiny: it validates manifests with it),
# the config hub, the host daemon and the supervisor (policy_plateau: their tests run the real
# plugin), the pipelines' segment store and trigger runner, and the trainvisor binary, whose
# processes make up the sanitized fleet test.
sanitized=(tv_shm_tests tv_shm_test_writer tv_store_tests tv_queue_tests tv_queue_claimer
           tv_http_tests tv_metrics_tests tv_artifacts_tests tv_coordinator_tests tv_claim_race_tests
           tv_http_claimer model_tiny tv_config_hub_tests tv_config_agent_tests
           tv_host_daemon_tests tv_trainer_process_tests tv_supervisor_tests policy_plateau
           tv_pipelines_tests tv_pipeline_runner_tests trainvisor)
# The drift statistics and the triggers run their OpenMP threads under AddressSanitizer only:
# libgomp is not built with ThreadSanitizer, whose reports on its barriers would be noise. The
# replay sources' pixel arithmetic (rotations, permutations) runs under it too.
asan_only=(tv_drift_tests tv_drift_streaming_tests tv_drift_backend_tests tv_trigger_tests
           tv_replay_source_tests)
for preset in tsan asan; do
  echo "test: concurrent code under $preset"
  targets=("${sanitized[@]}")
  [ "$preset" = asan ] && targets+=("${asan_only[@]}")
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" --parallel "$jobs" --target "${targets[@]}"
  ctest --preset "$preset" --parallel "$jobs"
done

# The drift statistics built with CUDA (nvcc and its own Thrust): on a machine without a GPU the
# tests pass through the CPU fallback; on one with a GPU, scripts/cuda_check.sh requires the GPU.
# The toolkit is no Debian package: a machine without it skips this stage, saying so.
if [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "test: the CUDA build of the drift statistics"
  cmake --preset cuda >/dev/null
  cmake --build --preset cuda --parallel "$jobs"
  ctest --preset cuda --parallel "$jobs"
else
  echo "test: skipped the CUDA build of the drift statistics (no /usr/local/cuda/bin/nvcc)"
fi

echo "test: fuzz smoke run of every libFuzzer target"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --parallel "$jobs"
ctest --preset fuzz --parallel "$jobs"

echo "test: all passed"
