#!/usr/bin/env bash
# Fuzzing campaign: builds the fuzz preset and runs each libFuzzer target until it has made RUNS
# executions or spent SECONDS (whichever comes first), with the committed corpus as its seed.
# New inputs that widen coverage are merged back into tests/fuzz/corpus/<target>/ (commit them).
# Prints one line per target with its execution count; exits 1 on the first crash, leaving the
# reproducer in build-fuzz/findings/<target>/.
#   scripts/fuzz.sh [--runs N] [--seconds S] [--jobs J] [TARGET...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
runs=10000000 seconds=1800 jobs="${TV_JOBS:-2}" targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n 2,7p "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --parallel "$jobs"
if [ ${#targets[@]} -eq 0 ]; then
  for f in build-fuzz/bin/fuzz_*; do targets+=("$(basename "$f" | sed 's/^fuzz_//')"); done
fi
for t in "${targets[@]}"; do
  bin="build-fuzz/bin/fuzz_$t" corpus="tests/fuzz/corpus/$t" found="build-fuzz/findings/$t"
  [ -x "$bin" ] || { echo "fuzz.sh: no target $t ($bin)" >&2; exit 2; }
  mkdir -p "$corpus" "$found" "build-fuzz/grown/$t"
  log="build-fuzz/findings/$t.log"
  # New inputs go to a scratch directory first, then only those that add coverage are merged.
  if ! "$bin" -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$found/" "build-fuzz/grown/$t" "$corpus" \
      > "$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz.sh: $t crashed; reproducer in $found/ (full log $log)" >&2
    exit 1
  fi
  "$bin" -merge=1 "$corpus" "build-fuzz/grown/$t" >> "$log" 2>&1
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | head -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | head -1)
  echo "fuzz $t: ${execs:-?} executions in ${secs:-?} s, no crash; corpus $(ls "$corpus" | wc -l) files"
done
