#!/usr/bin/env bash
# Builds the benchmarks if needed, runs each, and prints one Markdown table of every result
# against its target, built from the RESULT lines the benchmarks print (bench/bench_result.hpp),
# so that the table and each benchmark's own verdicts are the same numbers. Exits 1 when a target
# is missed in any run, or when a benchmark fails or reports nothing (a result that was not
# measured is missed).
#
#   scripts/bench.sh            every benchmark once (about three minutes on 2 cores)
#   TV_BENCH_RUNS=N             every benchmark N times; the table gives each result's range
#                               over the runs and in how many runs its target was missed
#   TV_BENCH_LOGS=DIR           keep each benchmark's full output in DIR (default: a temp dir,
#                               named at the end)
#
# Timings on a machine that others share are noisy; ratios within one run compare like with like.
# Expects scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
benches=(bench_config_block bench_training_step bench_fleet bench_config_live bench_drift_mmd
         bench_pipeline_ingest bench_python_read)
runs="${TV_BENCH_RUNS:-1}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: TV_BENCH_RUNS must be a positive count" >&2; exit 2; }

[[ -f build/build.ninja ]] || cmake --preset default >/dev/null
# bench_python_read is a script (bench/python_read_bench.py) over the Python extension.
cmake --build --preset default --parallel "${TV_JOBS:-2}" \
  --target "${benches[@]/bench_python_read/tv_python_shmfast}" tv_shm_test_writer >/dev/null
run_bench() {
  if [[ $1 == bench_python_read ]]; then
    TRAINVISOR_SHM_LIB=build/lib/libtrainvisor_shm.so TV_SHM_TEST_WRITER=build/bin/tv_shm_test_writer \
      /usr/bin/python3 bench/python_read_bench.py
  else
    "build/bin/$1" --benchmark_color=false
  fi
}

logs="${TV_BENCH_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/tv-bench.XXXXXX")}"
mkdir -p "$logs"
model="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
started="$(date -u '+%Y-%m-%d %H:%M UTC')"

# rows.tsv: run, benchmark, then the RESULT fields (measure, value, unit, target, verdict).
rows="$logs/rows.tsv"
: >"$rows"
loads=()
for ((run = 1; run <= runs; run++)); do
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  for b in "${benches[@]}"; do
    log="$logs/$b.$run.log"
    t0=$SECONDS
    set +e
    run_bench "$b" >"$log" 2>&1
    rc=$?
    set -e
    echo "bench: run $run: $b exited $rc after $((SECONDS - t0)) s" >&2
    n=$(grep -c $'^RESULT\t' "$log" || true)
    grep $'^RESULT\t' "$log" | sed "s/^RESULT\t/$run\t$b\t/" >>"$rows" || true
    missed=$(grep -c $'^RESULT\t.*\tMISSED$' "$log" || true)
    # A benchmark that crashed, or whose exit status disagrees with its verdicts, is a miss too.
    if [[ $n -eq 0 ]]; then
      printf '%s\t%s\tno results (exit status %s, see %s)\tnan\t\treported\tMISSED\n' \
        "$run" "$b" "$rc" "$log" >>"$rows"
    elif [[ $rc -ne 0 && $missed -eq 0 ]]; then
      printf '%s\t%s\texit status %s with no target missed (see %s)\tnan\t\t0\tMISSED\n' \
        "$run" "$b" "$rc" "$log" >>"$rows"
    elif [[ $rc -eq 0 && $missed -ne 0 ]]; then
      printf '%s\t%s\texit status 0 although a target was missed\tnan\t\tnon-zero\tMISSED\n' \
        "$run" "$b" >>"$rows"
    fi
  done
done

echo "Benchmarks on $model, $(getconf _NPROCESSORS_ONLN) cores; $started; $runs run(s);" \
  "1-minute load average at the start of each: ${loads[*]}"
echo
echo "| benchmark | measure | measured | target | verdict |"
echo "|---|---|---|---|---|"
awk -F'\t' -v runs="$runs" '
  {
    key = $2 "\t" $3
    if (!(key in seen)) { seen[key] = 1; order[++n] = key; unit[key] = $5; target[key] = $6 }
    if ($4 != "nan") {
      if (!(key in lo) || $4 + 0 < lo[key] + 0) lo[key] = $4
      if (!(key in hi) || $4 + 0 > hi[key] + 0) hi[key] = $4
    } else {
      unmeasured[key]++
    }
    if ($7 == "ok") ok[key]++
    if ($7 == "MISSED") missed[key]++
  }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, f, "\t")
      if (!(k in lo)) measured = "not measured"
      else if (lo[k] == hi[k]) measured = lo[k] unit[k]
      else measured = lo[k] unit[k] " to " hi[k] unit[k]
      if ((k in unmeasured) && (k in lo)) measured = measured ", not measured in " unmeasured[k]
      t = (target[k] == "info") ? "" : target[k]
      if (target[k] == "info") verdict = "info"
      else if (!(k in missed)) verdict = "ok"
      else if (runs == 1 || !(k in ok)) verdict = "MISSED"
      else verdict = "MISSED in " missed[k] " of " runs
      printf "| %s | %s | %s | %s | %s |\n", f[1], f[2], measured, t, verdict
    }
  }' "$rows"
misses=$(awk -F'\t' '$7 == "MISSED"' "$rows" | wc -l)
echo
echo "full output: $logs"
if [[ $misses -ne 0 ]]; then
  echo "bench: $misses miss(es) over $runs run(s)"
  exit 1
fi
echo "bench: every target met"
