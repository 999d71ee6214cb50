#!/usr/bin/env bash
# Builds the benchmarks if needed, runs each once, and prints one Markdown table of every result
# against its target, built from the RESULT lines the benchmarks print (bench/bench_result.hpp),
# so the table and each benchmark's own verdicts are the same numbers. Exits 1 when a target is
# missed, or when a benchmark fails or reports nothing (a result that was not measured is missed).
#
#   scripts/bench.sh              every benchmark (about four minutes on 2 cores)
#   TV_BENCH_LOGS=DIR             keep each benchmark's full output in DIR (default: a temp dir,
#                                 named at the end)
#
# Timings on a machine that others share are noisy; ratios within one run compare like with like.
# Expects scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
benches=(bench_config_block bench_training_step bench_fleet bench_config_live)

[[ -f build/build.ninja ]] || cmake --preset default >/dev/null
cmake --build --preset default --parallel "${TV_JOBS:-2}" --target "${benches[@]}" >/dev/null

logs="${TV_BENCH_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/tv-bench.XXXXXX")}"
mkdir -p "$logs"
model="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
cores="$(nproc)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date -u '+%Y-%m-%d %H:%M UTC')"

rows="$logs/rows.tsv"
: >"$rows"
for b in "${benches[@]}"; do
  t0=$SECONDS
  set +e
  "build/bin/$b" --benchmark_color=false >"$logs/$b.log" 2>&1
  rc=$?
  set -e
  echo "bench: $b exited $rc after $((SECONDS - t0)) s" >&2
  n=$(grep -c $'^RESULT\t' "$logs/$b.log" || true)
  grep $'^RESULT\t' "$logs/$b.log" | sed "s/^RESULT\t/$b\t/" >>"$rows" || true
  missed=$(grep -c $'^RESULT\t.*\tMISSED$' "$logs/$b.log" || true)
  # A benchmark that crashed, or failed without saying which target it missed, is a miss too.
  if [[ $n -eq 0 ]]; then
    printf '%s\tno results (exit status %s, see %s)\tnan\t\treported\tMISSED\n' \
      "$b" "$rc" "$logs/$b.log" >>"$rows"
  elif [[ $rc -ne 0 && $missed -eq 0 ]]; then
    printf '%s\texit status %s with no target missed (see %s)\tnan\t\t0\tMISSED\n' \
      "$b" "$rc" "$logs/$b.log" >>"$rows"
  elif [[ $rc -eq 0 && $missed -ne 0 ]]; then
    printf '%s\texit status 0 although a target was missed\tnan\t\tnon-zero\tMISSED\n' \
      "$b" >>"$rows"
  fi
done

echo "Benchmarks on $model, $cores cores; $started; load average before $load_before," \
  "after $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| benchmark | measure | measured | target | verdict |"
echo "|---|---|---|---|---|"
awk -F'\t' '{
  measured = ($3 == "nan") ? "not measured" : $3 $4
  target = ($5 == "info") ? "" : $5
  printf "| %s | %s | %s | %s | %s |\n", $1, $2, measured, target, $6
}' "$rows"
misses=$(awk -F'\t' '$6 == "MISSED"' "$rows" | wc -l)
echo
echo "full output: $logs"
if [[ $misses -ne 0 ]]; then
  echo "bench: $misses target(s) MISSED"
  exit 1
fi
echo "bench: every target met"
