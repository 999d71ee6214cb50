#!/usr/bin/env bash
# Runs every test on the default build, then the tests of the concurrent code, and the fleet as
# real processes, again under ThreadSanitizer and AddressSanitizer (build-tsan/, build-asan/).
# The fuzz targets' committed corpora replay in the default preset (fuzz_corpus_*), and each
# libFuzzer build (the fuzz preset) runs for a short smoke test; long campaigns are
# scripts/fuzz.sh.
# Expects scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Clones in other directories share the compiler cache (paths are made relative to the tree).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
jobs="${TV_JOBS:-2}"

echo "test: default preset"
cmake --build --preset default --parallel "$jobs"
ctest --preset default --parallel "$jobs"

# The concurrent code: the shared-memory block, the SQLite layer, the job queue, the HTTP server
# and client, the artifact store, the coordinator (model_tiny: it validates manifests with it),
# the config hub, the host daemon and the supervisor (policy_plateau: their tests run the real
# plugin), and the trainvisor binary, whose processes make up the sanitized fleet test.
sanitized=(tv_shm_tests tv_shm_test_writer tv_store_tests tv_queue_tests tv_queue_claimer
           tv_http_tests tv_artifacts_tests tv_coordinator_tests tv_claim_race_tests
           tv_http_claimer model_tiny tv_config_hub_tests tv_config_agent_tests
           tv_host_daemon_tests tv_trainer_process_tests tv_supervisor_tests policy_plateau
           trainvisor)
for preset in tsan asan; do
  echo "test: concurrent code under $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" --parallel "$jobs" --target "${sanitized[@]}"
  ctest --preset "$preset" --parallel "$jobs"
done

echo "test: fuzz smoke run of every libFuzzer target"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --parallel "$jobs"
ctest --preset fuzz --parallel "$jobs"

echo "test: all passed"
