#!/usr/bin/env bash
# Continual-training pipelines as real processes: a coordinator, a host daemon, and a Python
# script (numpy and the standard library, through trainvisor.ingest) that streams Fashion-MNIST
# whose images turn by 90 degrees half-way through.
#  - the data_drift pipeline fires after the rotation and not before; the data_count one at its
#    period; every firing is a job the host trains on its window of segments;
#  - each training's evaluation (the new model and the deployed one on the same samples) is
#    stored, and the alias moves only when the gate passes; a pipeline whose trainings are
#    deliberately bad (0 epochs: its random initial weights) is refused by the gate;
#  - a `config set` on a running pipeline training applies live, as on any job;
#  - rollback moves the alias back; the deployment directory follows the alias;
#  - bad batches are refused with a clear error and nothing stored; a batch sent again with its
#    Idempotency-Key is stored once;
#  - a trigger on embeddings reads the stream as the deployed model embeds it, in the
#    coordinator's process, and starts afresh when the gate deploys a new model.
set -euo pipefail
: "${TRAINVISOR:?}"
: "${TRAINVISOR_PYTHON:?}"  # the python/ folder of the source tree
. "$(dirname "$0")/process_test_lib.sh"
. "$(dirname "$0")/pipeline_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() {
  echo "--- coordinator log:" >&2; tail -30 "$dir/coordinator.log" >&2 || true
  echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true
}
export TRAINVISOR_PYTHON

{
  fmnist_pipeline drift data_drift "seed = 1"
  cat <<TOML
reference_size = 500
current_size = 500
evaluate_every = 500
# A distance, not a p-value, decides: MMD^2 between windows of 500 upright images stays below
# 0.0022 (20 seeded pairs), upright against turned ones is about 0.085.
decision = "threshold"
threshold = 0.02
[pipelines.params]
hidden = 64
[pipelines.hyper]
training.optimizer.learning_rate = 0.1
[pipelines.strategy]
kind = "window"
window_samples = 1500
epochs = 3
[pipelines.evaluation]
holdout = 0.2
[pipelines.deployment]
# Its first training sees 1000 upright and 500 turned images and is judged on the newest 300.
min_accuracy = 0.3
max_regression = 0.05
directory = "$dir/serving"
TOML
  fmnist_pipeline count data_count "seed = 2"
  cat <<'TOML'
every = 2000
[pipelines.params]
hidden = 64
[pipelines.hyper]
training.optimizer.learning_rate = 0.1
[pipelines.strategy]
kind = "retrain"
epochs = 2
[pipelines.deployment]
min_accuracy = 0.4
max_regression = 0.3
TOML
  fmnist_pipeline bad data_count
  cat <<'TOML'
every = 1000
[pipelines.strategy]
epochs = 0
[pipelines.deployment]
min_accuracy = 0.5
TOML
  fmnist_pipeline seen data_count "seed = 3"
  cat <<'TOML'
every = 2000
features = "embeddings"
[pipelines.params]
hidden = 64
[pipelines.hyper]
training.optimizer.learning_rate = 0.1
[pipelines.deployment]
min_accuracy = 0.3
max_regression = 0.5
TOML
} > "$dir/pipelines.toml"

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_INGEST_TOKEN=in-token TRAINVISOR_OPERATOR_NAME=ana
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/pipelines.toml" --port 0 \
  > "$dir/url" 2>> "$dir/coordinator.log" &
wait_for 20 test -s "$dir/url" || fail "coordinator did not start: $(tail -5 "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
"$TRAINVISOR" host --name h1 --work-dir "$dir/work" --heartbeat-every 0.5 --poll-every 0.3 \
  2>> "$dir/host.log" &

stream() {  # stream PIPELINE FIRST_BATCH BATCHES [--rotate-from K]
  local p=$1 first=$2 n=$3; shift 3
  "$PY" "$(dirname "$0")/pipeline_stream.py" --url "$TRAINVISOR_COORDINATOR" --token in-token \
    --pipeline "$p" --first-batch "$first" --batches "$n" --batch-size 500 --flat "$@"
}
triggers() { "$TRAINVISOR" pipelines triggers "$1" -o json; }
ends() { triggers "$1" | "$PY" -c "import json,sys; print([t['end_sample'] for t in json.load(sys.stdin)['triggers']])"; }
state() {  # state PIPELINE: "running: " or "stopped: WHY"
  "$TRAINVISOR" pipelines show "$1" -o json |
    "$PY" -c "import json,sys; s=json.load(sys.stdin)['summary']; print(s['state'] + ': ' + s['error'])"
}
# settled PIPELINE: it has fired, and none of its trainings is still running
settled() {
  triggers "$1" | "$PY" -c "import json,sys; t=json.load(sys.stdin)['triggers']; sys.exit(0 if t and all(r['outcome'] != 'training' for r in t) else 1)"
}

step "bad batches are refused and nothing is stored"
bad_batch() {  # bad_batch PYTHON_EXPR_FOR_BODY EXPECTED_STATUS EXPECTED_TEXT
  "$PY" - "$TRAINVISOR_COORDINATOR" "$1" "$2" "$3" <<'PYEOF'
import io, sys, urllib.request, urllib.error
import numpy as np
url, expr, status, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def npy(*arrays):
    f = io.BytesIO()
    for a in arrays:
        np.save(f, a)
    return f.getvalue()
x = np.zeros((2, 784), np.float32); y = np.zeros(2, np.int64); t = np.arange(2, dtype=np.int64)
body = eval(expr)
req = urllib.request.Request(url + "/v1/pipeline/count/samples", data=body, method="POST",
                             headers={"X-Ingest-Token": "in-token"})
try:
    urllib.request.urlopen(req)
    sys.exit("accepted: " + expr)
except urllib.error.HTTPError as e:
    msg = e.read().decode()
    assert e.code == status, (expr, e.code, msg)
    assert text in msg, (expr, msg)
PYEOF
}
bad_batch 'npy(x.astype(np.float64), y, t)' 400 "features: dtype '<f8' is not float32"
bad_batch 'npy(x.reshape(2, 28, 28), y, t)' 400 "pipeline 'count' takes [784]"
bad_batch 'npy(x, y + 10, t)' 400 "has 10 classes"
bad_batch 'npy(np.full((2, 784), np.nan, np.float32), y, t)' 400 "features"
bad_batch 'npy(x, y, t[::-1].copy())' 400 "timestamps"
bad_batch 'npy(x, y)' 400 "timestamps"
bad_batch 'b"not a batch"' 400 "pipeline 'count'"
[ "$("$TRAINVISOR" pipelines show count -o json | field "['summary']['samples']")" = 0 ] \
  || fail "a refused batch was stored"
"$PY" - "$TRAINVISOR_COORDINATOR" <<'PYEOF' || fail "a wrong token or an unknown pipeline was not refused"
import sys, urllib.request, urllib.error
for path, token, code in (("/v1/pipeline/count/samples", "wrong", 401),
                          ("/v1/pipeline/cuont/samples", "in-token", 404)):
    req = urllib.request.Request(sys.argv[1] + path, data=b"x", method="POST",
                                 headers={"X-Ingest-Token": token})
    try:
        urllib.request.urlopen(req); sys.exit("accepted " + path)
    except urllib.error.HTTPError as e:
        assert e.code == code, (path, e.code)
        if code == 404: assert "did you mean 'count'" in e.read().decode()
PYEOF

step "the stream: 12 batches of 500, turned from batch 6 on"
for p in drift count bad seen; do stream "$p" 0 12 --rotate-from 6 > "$dir/$p.acks" || fail "ingest into $p failed"; done
[ "$(wc -l < "$dir/count.acks")" = 12 ] || fail "not every batch was acknowledged"
step "a batch sent again with its key is stored once"
stream count 11 1 --rotate-from 6 | grep -q '"repeated": true' || fail "a repeated batch was not recognised"
[ "$("$TRAINVISOR" pipelines show count -o json | field "['summary']['samples']")" = 6000 ] \
  || fail "the repeated batch was stored twice"

step "firings"
wait_for 60 sh -c "[ \"\$('$TRAINVISOR' pipelines show drift -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"summary\"][\"read_samples\"])')\" = 6000 ]" \
  || fail "the drift trigger did not read the stream"
drift_ends=$(ends drift)
"$PY" -c "
e = $drift_ends
assert e, 'the drift trigger never fired'
assert all(x > 3000 for x in e), ('fired before the rotation', e)
assert e[0] <= 4000, ('fired late', e)
" || fail "drift firings at $drift_ends"
[ "$(ends count)" = "[2000, 4000, 6000]" ] || fail "count firings: $(ends count)"

step "trainings, evaluations and the gate"
for p in drift count bad seen; do wait_for 240 settled "$p" || fail "$p's trainings did not finish"; done
triggers count | "$PY" -c "
import json, sys
t = json.load(sys.stdin)['triggers']
assert t[0]['outcome'] == 'deployed', t[0]
for r in t:
    m = r['metrics']
    assert 0.4 <= m['new']['accuracy'] <= 1, r
    assert m['eval_samples'] > 0, r
    assert r['window_begin'] == 0 and r['model'], r
    if r['index'] > 0:
        assert m['deployed'] is not None and 'accuracy' in m['deployed'], r
" || fail "count's evaluations: $(triggers count)"
triggers bad | "$PY" -c "
import json, sys
t = json.load(sys.stdin)['triggers']
assert len(t) >= 6 and all(r['outcome'] == 'refused' for r in t), t
assert 'min_accuracy' in t[0]['gate'], t[0]
" || fail "the bad pipeline's models were not refused: $(triggers bad)"
[ "$("$TRAINVISOR" pipelines show bad -o json | field "['summary']['deployed']")" = "" ] \
  || fail "a refused model was deployed"
deployed=$("$TRAINVISOR" pipelines show drift -o json | field "['summary']['deployed']")
[ -n "$deployed" ] || fail "the drift pipeline deployed nothing: $(triggers drift)"
[ "$(sha256sum < "$dir/serving/drift.tvb" | cut -d' ' -f1)" = "$deployed" ] \
  || fail "the deployment directory does not hold the deployed bundle"
"$PY" -c "import sys, urllib.request; open(sys.argv[2], 'wb').write(urllib.request.urlopen(sys.argv[1]).read())" \
  "$TRAINVISOR_COORDINATOR/v1/pipeline/drift/model" "$dir/model.tvb"
[ "$(sha256sum < "$dir/model.tvb" | cut -d' ' -f1)" = "$deployed" ] || fail "GET model is not the deployed bundle"

step "a trigger on embeddings follows the deployed model"
seen_deployed=$("$TRAINVISOR" pipelines show seen -o json | field "['summary']['deployed']")
[ -n "$seen_deployed" ] || fail "the embeddings pipeline deployed nothing: $(triggers seen)"
stream seen 12 1 > /dev/null  # read with the deployed model's embeddings
wait_for 30 sh -c "'$TRAINVISOR' pipelines show seen -o json | grep -q '\"read_samples\": 6500'" \
  || fail "the embeddings trigger did not read on: $(state seen)"
"$TRAINVISOR" pipelines show seen -o json | "$PY" -c "
import json, sys
s = json.load(sys.stdin)['summary']
assert s['state'] == 'running' and s['features'] == 'embeddings', s
assert s['features_model'] == '$seen_deployed' and s['features_since_seq'] >= 1, s
" || fail "the embeddings trigger does not read the deployed model's: $("$TRAINVISOR" pipelines show seen -o json)"
grep -q "pipeline 'seen': the trigger starts afresh at segment .* on the embeddings of model ${seen_deployed:0:12}" \
  "$dir/coordinator.log" || fail "the coordinator did not say the trigger started afresh"
"$TRAINVISOR" pipelines show seen | grep -q "features: embeddings of ${seen_deployed:0:12}" \
  || fail "pipelines show does not name the embeddings' model"

step "rollback"
count_log=$("$TRAINVISOR" pipelines show count -o json | field "['alias_log']")
moves=$(echo "$count_log" | "$PY" -c "import json,sys; print(len(json.load(sys.stdin)))")
if [ "$moves" -ge 2 ]; then
  before=$(echo "$count_log" | "$PY" -c "import json,sys; l=json.load(sys.stdin); print(l[-1]['previous'])")
  "$TRAINVISOR" pipelines rollback count --reason "test: back" > /dev/null
  [ "$("$TRAINVISOR" pipelines show count -o json | field "['summary']['deployed']")" = "$before" ] \
    || fail "rollback did not move the alias back"
else
  expect_failure "$dir/err" "nothing to roll back to" "$TRAINVISOR" pipelines rollback count --reason x
fi
model=$(triggers count | field "['triggers'][0]['model']")
"$TRAINVISOR" pipelines deploy count "$model" --reason "test: pin the first" > /dev/null
[ "$("$TRAINVISOR" pipelines show count -o json | field "['summary']['deployed']")" = "$model" ] \
  || fail "deploy did not move the alias"
expect_failure "$dir/err" "no training of it made model" \
  "$TRAINVISOR" pipelines deploy count "$(printf 'f%.0s' {1..64})" --reason x
expect_failure "$dir/err" "reason" "$TRAINVISOR" pipelines rollback count --reason ""

step "a running pipeline training follows a config set"
{
  fmnist_pipeline long data_count
  printf 'every = 500\n[pipelines.strategy]\nepochs = 10000\n'
  fmnist_pipeline gpu data_count "require_cuda = true"
  fmnist_pipeline missing data_count "initial_model = \"artifact:$(printf 'e%.0s' {1..64})\""
} >> "$dir/pipelines.toml"
"$TRAINVISOR" reload > /dev/null
wait_for 20 sh -c "'$TRAINVISOR' pipelines show gpu -o json | grep -q '\"state\": \"stopped\"'" \
  || fail "a pipeline no host can run did not stop: $(state gpu)"
state gpu | grep -q "no known host can run its trainings (h1: require_cuda" || fail "gpu: $(state gpu)"
state missing | grep -q "initial_model: artifact eeee.* is not stored" || fail "missing: $(state missing)"
stream long 0 1 > /dev/null
wait_for 60 sh -c "'$TRAINVISOR' jobs show long.t0 | grep -q 'status running'" || fail "long.t0 never ran"
rev=$("$TRAINVISOR" config set long.t0 training/optimizer/learning_rate 0.0123 --reason "live" | sed 's/revision //')
wait_for 30 sh -c "[ \"\$('$TRAINVISOR' jobs show long.t0 -o json | $PY -c 'import json,sys; a=json.load(sys.stdin)[\"telemetry\"][\"applied\"]; print(bool(a) and a[\"revision\"] >= $rev)')\" = True ]" \
  || fail "revision $rev was not applied by the pipeline's training"
"$TRAINVISOR" config set long.t0 training/control/early_stop true --reason "enough" > /dev/null
wait_for 60 settled long || fail "long.t0 did not stop"
echo "pipeline test: ok"
