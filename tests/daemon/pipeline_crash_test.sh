#!/usr/bin/env bash
# Pipelines under kill -9, as real processes.
#  - The coordinator killed again and again while a Python client streams batches into it (each
#    batch sent again, with its Idempotency-Key, until acknowledged): every acknowledged sample is
#    stored once, every segment file is whole (its sha256 is its name), and the trigger, rebuilt
#    from the segments after each restart, fires exactly where an uninterrupted one would: no
#    firing lost, none doubled.
#  - The host killed during a pipeline's training: the job is retried by the next host and the
#    pipeline decides (and deploys) that firing once.
set -euo pipefail
: "${TRAINVISOR:?}"
: "${TRAINVISOR_PYTHON:?}"
. "$(dirname "$0")/process_test_lib.sh"
. "$(dirname "$0")/pipeline_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() {
  echo "--- coordinator log:" >&2; tail -30 "$dir/coordinator.log" >&2 || true
  echo "--- ingest log:" >&2; tail -5 "$dir/ingest.err" >&2 || true
  echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true
}
export TRAINVISOR_PYTHON
batches=${TV_CRASH_BATCHES:-60} kills=${TV_CRASH_KILLS:-6}

{
  # count's trainings wait: this part is about its stream and its firings.
  fmnist_pipeline count data_count 'allowed_hosts = ["elsewhere"]'
  printf 'every = 700\n'
  fmnist_pipeline slow data_count
  printf 'every = 500\n[pipelines.strategy]\nepochs = 10000\n'
} > "$dir/pipelines.toml"

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_INGEST_TOKEN=in-token
port=0
start_coordinator() {
  : > "$dir/url"
  "$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/pipelines.toml" --port "$port" \
    --stale-after 3 --sweep-every 0.5 > "$dir/url" 2>> "$dir/coordinator.log" &
  coordinator=$!
  wait_for 20 test -s "$dir/url" || fail "coordinator did not start: $(tail -5 "$dir/coordinator.log")"
  export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
  port=${TRAINVISOR_COORDINATOR##*:}
}
ends() {
  "$TRAINVISOR" pipelines triggers "$1" -o json |
    "$PY" -c "import json,sys; print([t['end_sample'] for t in json.load(sys.stdin)['triggers']])"
}

step "the coordinator killed $kills times during ingest of $batches batches"
start_coordinator
"$PY" "$(dirname "$0")/pipeline_stream.py" --url "$TRAINVISOR_COORDINATOR" --token in-token \
  --pipeline count --batches "$batches" --batch-size 100 --flat --retry-seconds 60 \
  > "$dir/acks" 2> "$dir/ingest.err" &
ingest=$!
for k in $(seq "$kills"); do
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 "$coordinator"; wait "$coordinator" 2>/dev/null || true
  start_coordinator
done
wait "$ingest" || fail "the ingest gave up"
[ "$(wc -l < "$dir/acks")" = "$batches" ] || fail "$(wc -l < "$dir/acks") of $batches batches acknowledged"
samples=$("$TRAINVISOR" pipelines show count -o json | field "['summary']['samples']")
[ "$samples" = $((batches * 100)) ] || fail "$samples samples stored for $((batches * 100)) acknowledged"
for f in "$dir"/data/segments/*.batch; do
  [ "$(sha256sum < "$f" | cut -d' ' -f1).batch" = "$(basename "$f")" ] || fail "segment $f is not whole"
done
ls "$dir"/data/segments | grep -qv '\.batch$' && fail "a temporary file was left: $(ls "$dir"/data/segments)"
wait_for 30 sh -c "[ \"\$('$TRAINVISOR' pipelines show count -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"summary\"][\"read_samples\"])')\" = $samples ]" \
  || fail "the trigger did not read the whole stream after the restarts"
expected=$("$PY" -c "print(list(range(700, $samples + 1, 700)))")
[ "$(ends count)" = "$expected" ] || fail "firings at $(ends count), expected $expected"
[ "$("$TRAINVISOR" jobs list -o json | "$PY" -c "import json,sys; print(sum(1 for j in json.load(sys.stdin)['jobs'] if j['name'].startswith('count.t')))")" \
  = "$(echo "$expected" | "$PY" -c "import json,sys; print(len(json.load(sys.stdin)))")" ] \
  || fail "not one job per firing"

step "the host killed during a pipeline training"
start_host() {
  "$TRAINVISOR" host --name "$1" --work-dir "$dir/work-$1" --heartbeat-every 0.3 \
    --poll-every 0.2 --orphan-after 2 2>> "$dir/host.log" &
  host=$!
}
"$PY" "$(dirname "$0")/pipeline_stream.py" --url "$TRAINVISOR_COORDINATOR" --token in-token \
  --pipeline slow --batches 5 --batch-size 100 --flat > /dev/null
start_host h1
wait_for 60 sh -c "'$TRAINVISOR' jobs show slow.t0 | grep -q 'status running'" || fail "slow.t0 never ran"
sleep 1
kill -9 "$host"
start_host h2
wait_for 60 sh -c "'$TRAINVISOR' jobs show slow.t0 -o json | grep -q '\"attempt\": 2' && '$TRAINVISOR' jobs show slow.t0 | grep -q 'status running'" \
  || fail "slow.t0 was not retried: $("$TRAINVISOR" jobs show slow.t0)"
"$TRAINVISOR" config set slow.t0 training/control/early_stop true --reason "enough" > /dev/null
wait_for 60 sh -c "'$TRAINVISOR' jobs show slow.t0 | grep -qE 'status (completed|stopped)'" \
  || fail "slow.t0 did not end: $("$TRAINVISOR" jobs show slow.t0)"
wait_for 30 sh -c "'$TRAINVISOR' pipelines triggers slow -o json | grep -q '\"outcome\": \"deployed\"'" \
  || fail "the retried training was not deployed: $("$TRAINVISOR" pipelines triggers slow)"
moves=$("$TRAINVISOR" pipelines show slow -o json | "$PY" -c "import json,sys; print(len(json.load(sys.stdin)['alias_log']))")
[ "$moves" = 1 ] || fail "the alias moved $moves times for one firing"
echo "pipeline crash test: ok"
