#!/usr/bin/env bash
# Fault campaigns against the fleet as real processes (not part of the test command: a full
# campaign runs for an hour or more).
#   scripts/campaign.sh kill9 [--rounds N] [--kind coordinator|host|trainer|agent|all]
#                             [--seed S] [--jobs J] [--settle SECONDS] [--keep]
#     Kills one kind of process with SIGKILL at a random moment of each round (default 50 rounds
#     per kind), lets the fleet recover, and checks the invariants after each: integrity_check,
#     no job lost or completed twice, no acknowledged config write lost, no two trainers for one
#     job, every trainer read within 16 attempts. Prints a line per round and a summary per
#     kind; exits 1 when a check failed (each failure names the seed that replays its round).
#     Uses build/bin/trainvisor (or $TRAINVISOR); scripts/kill9_campaign.py --help for details.
#   scripts/campaign.sh pipeline-kill9 [--batches N] [--kills K] [--runs R]
#     The pipelines' crash test (tests/daemon/pipeline_crash_test.sh) at a larger scale: R runs
#     (default 5), each killing the coordinator K times (default 40) during the ingest of N
#     batches of 100 samples (default 400), then the host during a training; every run checks
#     that no acknowledged sample is lost or doubled, every segment is whole, and the firings
#     are exactly those of an uninterrupted stream.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  kill9) shift; exec /usr/bin/python3 scripts/kill9_campaign.py "$@" ;;
  pipeline-kill9)
    shift
    batches=400 kills=40 runs=5
    while [ $# -gt 0 ]; do
      case "$1" in
        --batches) batches=$2; shift 2 ;;
        --kills) kills=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "campaign.sh pipeline-kill9: unknown option $1" >&2; exit 2 ;;
      esac
    done
    for run in $(seq "$runs"); do
      TRAINVISOR="${TRAINVISOR:-$PWD/build/bin/trainvisor}" TRAINVISOR_PYTHON="$PWD/python" \
        TV_CRASH_BATCHES="$batches" TV_CRASH_KILLS="$kills" \
        bash tests/daemon/pipeline_crash_test.sh || { echo "pipeline-kill9: run $run failed"; exit 1; }
      echo "pipeline-kill9: run $run of $runs: $batches batches, $kills coordinator kills: ok"
    done ;;
  -h|--help|"") sed -n 2,17p "$0"; exit 0 ;;
  *) echo "campaign.sh: unknown campaign '$1' (known: kill9, pipeline-kill9)" >&2; exit 2 ;;
esac
