#!/usr/bin/env bash
# Dropping a newly built model library into a plugin directory is all it takes: `plugins list`
# shows it, `plugins show` gives its schema, and a job trains with it. Also the CLI's refusals.
set -euo pipefail
: "${TRAINVISOR:?}" "${EXAMPLE_PLUGIN:?}" "${TEST_PLUGIN_DIR:?}"
PY=/usr/bin/python3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$TRAINVISOR" plugins list --plugin-dir "$dir" -o json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
names = {p["name"] for p in j["plugins"]}
assert "logreg" not in names, names
assert {"tiny", "mlp", "cnn", "plateau", "grad_explosion", "divergence", "early_stopping"} <= names, names
assert j["errors"] == [], j["errors"]'

cp "$EXAMPLE_PLUGIN" "$dir/"
"$TRAINVISOR" plugins list --plugin-dir "$dir" | grep -qE "^logreg +model +0\.1\.0" || fail "logreg not listed"
"$TRAINVISOR" plugins show logreg --plugin-dir "$dir" -o json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
assert j["kind"] == "model" and j["params"][0]["key"] == "bias" and j["params"][0]["default"] is True, j'
out=$("$TRAINVISOR" train --model logreg --plugin-dir "$dir" --steps 30 --max-train-samples 2000 \
      --max-val-samples 500 --quiet)
echo "$out" | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
assert j["result"] == "completed" and j["steps"] == 30 and j["val_accuracy"] > 0.3, j'

# Broken plugins in a directory are listed as refused, and the good ones still load.
"$TRAINVISOR" plugins list --plugin-dir "$TEST_PLUGIN_DIR" -o json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
refused = {e["path"].rsplit("/", 1)[1]: e["reason"] for e in j["errors"]}
assert "libwrong_abi.so" in refused and "ABI version" in refused["libwrong_abi.so"], refused
assert any(p["name"] == "test_policy" for p in j["plugins"])
assert any(p["name"] == "tiny" for p in j["plugins"])'

set +e
msg=$("$TRAINVISOR" plugins show logrge --plugin-dir "$dir" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown plugin exited $rc"
echo "$msg" | grep -q "no plugin named 'logrge' (did you mean 'logreg'?)" || fail "message: $msg"
set +e
msg=$("$TRAINVISOR" local --model tiny --policy plateau:patiense=2 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "bad policy parameter exited $rc"
echo "$msg" | grep -q "policy 'plateau' has no parameter 'patiense' (did you mean 'patience'?)" || fail "message: $msg"
# `trainvisor local`: the agent, the supervisor and the trainer together; plateau cuts the rate.
"$TRAINVISOR" local --model tiny --seed 3 --set training/control/eval_every=4 \
  --set training/control/max_epochs=40 --policy plateau:patience=1,threshold=0.5,factor=0.5 \
  --interval-ms 5 -o json 2>/dev/null | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
assert j["trainer_exit_code"] == 0, j
cuts = [e for e in j["events"] if e["actor"] == "policy:plateau" and e["applied"]]
assert cuts and j["config_revision"] >= 2, j
assert j["learning_rate"] < 0.05 and j["telemetry_missed"] == 0, j'
echo PASS
