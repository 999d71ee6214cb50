#!/usr/bin/env bash
# `trainvisor replay` as a user runs it: two pipelines (a count trigger and a drift trigger) over
# a Fashion-MNIST stream turned by 90 degrees half-way, at simulated time.
#  - the report's files are written for each pipeline, and the comparison of the two;
#  - two runs of the same manifest and seed give byte-identical triggers.csv and report.json;
#  - the drift trigger fires after the turn and not before; the composite accuracy falls at the
#    turn and the models trained after it are scored on the turned windows;
#  - the stream a coordinator recorded, replayed with --recording, gives the same firings;
#  - a killed replay (kill -9) goes on with --resume to the same report;
#  - --compare runs another manifest over the same stream and compares all their pipelines;
#  - bad inputs are refused before anything runs, and state is never overwritten.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
cd "$dir"

pipeline() {  # pipeline NAME TRIGGER: an mlp on flat samples, retrained on each firing
  printf '\n[[pipelines]]\nname = "%s"\nmodel = "mlp"\nseed = 1\n' "$1"
  printf '[pipelines.params]\nhidden = 32\nlayers = 1\ndropout = 0.0\n'
  printf '[pipelines.hyper]\ntraining.optimizer.learning_rate = 0.1\n'
  printf '[pipelines.stream]\nshape = [784]\nclasses = 10\n'
  printf '[pipelines.strategy]\nkind = "window"\nwindow_samples = 2000\nepochs = 2\n'
  printf '[pipelines.deployment]\nmin_accuracy = 0.3\nmax_regression = 0.5\n'
  printf '[pipelines.trigger]\nplugin = "%s"\n' "$2"
}
{
  pipeline count data_count
  echo 'every = 2000'
  pipeline drift data_drift
  # MMD^2 between windows of 500 upright images stays below 0.0022; turned ones are ~0.085.
  printf 'reference_size = 500\ncurrent_size = 500\nevaluate_every = 500\n'
  printf 'decision = "threshold"\nthreshold = 0.02\n'
} > pipelines.toml
stream=(--length 8000 --schedule "rotate(degrees=90, every=4000)" --seed 5 --window 1000)

step "a replay, and its report"
"$TRAINVISOR" replay pipelines.toml --out a "${stream[@]}" > a.out 2> a.log || fail "replay: $(tail a.log)"
for p in count drift; do
  for f in report.json triggers.csv costs.json costs.csv accuracy.svg; do
    [ -s "a/$p/$f" ] || fail "no $p/$f"
  done
done
for f in comparison.json comparison.csv accuracy.svg; do [ -s "a/$f" ] || fail "no comparison $f"; done
"$PY" - a <<'PYEOF' || fail "the report does not show the turn"
import csv, json, sys
root = sys.argv[1]
count = json.load(open(f"{root}/count/report.json"))
drift = json.load(open(f"{root}/drift/report.json"))
ends = [t["sample"] for t in count["triggers"]]
assert ends == [2000, 4000, 6000, 8000], ends
fired = [t["sample"] for t in drift["triggers"]]
assert fired and all(s > 4000 for s in fired) and fired[0] <= 5000, fired
acc = count["composite"]["accuracy"]
assert acc[:2] == [None, None], acc             # nothing deployed before the first firing
assert acc[2] > 0.5 and acc[3] > 0.5, acc        # upright windows, an upright model
assert acc[4] < 0.3, acc                         # the turn: the model has not seen it
assert acc[6] > 0.5, acc                         # a model trained on turned images
assert len(count["matrix"]) == len(count["models"]) == 4
assert all(len(row) == 8 for row in count["matrix"])
assert count["environment"]["data_digest"] and count["environment"]["manifest_sha256"]
rows = list(csv.DictReader(open(f"{root}/count/triggers.csv", newline="")))
assert [int(r["sample"]) for r in rows] == ends
assert "train_cpu_s" not in rows[0]               # costs are kept apart
costs = list(csv.DictReader(open(f"{root}/count/costs.csv", newline="")))
assert all(float(c["train_cpu_s"]) > 0 for c in costs), costs
assert "class=\"change-point\"" in open(f"{root}/count/accuracy.svg").read()
PYEOF

step "the same manifest and seed give the same report"
"$TRAINVISOR" replay pipelines.toml --out b "${stream[@]}" > /dev/null 2> b.log || fail "replay b: $(tail b.log)"
for p in count drift; do
  cmp "a/$p/triggers.csv" "b/$p/triggers.csv" || fail "$p/triggers.csv differs between runs"
  cmp "a/$p/report.json" "b/$p/report.json" || fail "$p/report.json differs between runs"
done

step "a recording replays as it came"
"$TRAINVISOR" replay pipelines.toml --out r --recording a/state/coordinator:count --window 1000 \
  > /dev/null 2> r.log || fail "replay of a recording: $(tail r.log)"
for p in count drift; do
  cmp "a/$p/triggers.csv" "r/$p/triggers.csv" || fail "the recording's $p firings differ"
done

step "kill -9, then --resume"
"$TRAINVISOR" replay pipelines.toml --out k "${stream[@]}" > /dev/null 2> k.log &
pid=$!
wait_for 60 grep -q "training drift.t0" k.log || fail "the killed replay never trained: $(tail k.log)"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
kill_descendants
expect_failure err "already holds a replay: --resume" \
  "$TRAINVISOR" replay pipelines.toml --out k "${stream[@]}"
"$TRAINVISOR" replay pipelines.toml --out k --resume "${stream[@]}" > /dev/null 2> k2.log \
  || fail "resume: $(tail k2.log)"
for p in count drift; do
  cmp "a/$p/triggers.csv" "k/$p/triggers.csv" || fail "the resumed $p/triggers.csv differs"
  cmp "a/$p/report.json" "k/$p/report.json" || fail "the resumed $p/report.json differs"
done

step "--compare runs more manifests over the same stream"
{ pipeline count data_count; echo 'every = 1000'; } > often.toml
"$TRAINVISOR" replay pipelines.toml --compare often.toml --out c --length 4000 --window 1000 \
  > /dev/null 2> c.log || fail "compare: $(tail c.log)"
"$PY" - c <<'PYEOF' || fail "the comparison: $(cat c/comparison.csv)"
import csv, sys
rows = list(csv.DictReader(open(f"{sys.argv[1]}/comparison.csv", newline="")))
assert [r["run"] for r in rows] == ["pipelines/count", "pipelines/drift", "often/count"], rows
assert int(rows[0]["triggers"]) == 2 and int(rows[2]["triggers"]) == 4, rows
PYEOF
[ -s c/often/count/report.json ] || fail "no report for often/count"

step "bad inputs are refused before anything runs"
expect_failure err "unknown schedule 'rotat'.*did you mean 'rotate'" \
  "$TRAINVISOR" replay pipelines.toml --out x --schedule "rotat(degrees=5)"
expect_failure err -- "--stop" "$TRAINVISOR" replay pipelines.toml --out x --start 3000 --stop 2000
expect_failure err "no-such-dir" \
  "$TRAINVISOR" replay pipelines.toml --out x --recording no-such-dir:count
expect_failure err "holds no replay" "$TRAINVISOR" replay pipelines.toml --out x --resume
[ ! -e x ] || fail "a refused replay left $(ls -R x)"
echo "replay test: ok"
