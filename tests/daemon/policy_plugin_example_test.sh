#!/usr/bin/env bash
# The out-of-tree policy example (examples/policy-plugin), built against the plugin header alone:
# dropped into a plugin directory it is listed with its schema, refuses a bad combination of
# parameters, and drives a real trainer's learning rate through warm-up and cosine decay under
# `trainvisor local`.
set -euo pipefail
: "${TRAINVISOR:?}" "${EXAMPLE_POLICY:?}"
unset TRAINVISOR_PLUGIN_PATH
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT

cp "$EXAMPLE_POLICY" "$dir/"
"$TRAINVISOR" plugins show warmup_cosine --plugin-dir "$dir" -o json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
assert j["kind"] == "policy", j
assert [p["key"] for p in j["params"]] == ["base_lr", "min_lr", "warmup_steps", "total_steps",
                                           "update_every", "dry_run"], j["params"]' ||
  fail "warmup_cosine is not listed with its schema"

expect_failure "$dir/err" "total_steps 100 must be above warmup_steps 500" \
  "$TRAINVISOR" local --model tiny --plugin-dir "$dir" \
  --policy warmup_cosine:warmup_steps=500,total_steps=100

# The supervisor's grace keys sit beside the plugin's own, and are checked like them.
expect_failure "$dir/err" "has no parameter 'human_grace_evalz' \(did you mean 'human_grace_evals'\?\)" \
  "$TRAINVISOR" local --model tiny --plugin-dir "$dir" --policy warmup_cosine:human_grace_evalz=1

step "local"
"$TRAINVISOR" local --model tiny --seed 3 --plugin-dir "$dir" --steps 1500 \
  --set training/control/max_epochs=100000 \
  --policy warmup_cosine:base_lr=0.2,warmup_steps=300,total_steps=1500,update_every=50,human_grace_evals=1,human_grace_steps=100 \
  --interval-ms 5 -o json 2> "$dir/local.err" > "$dir/local.json" ||
  fail "local failed: $(tail -5 "$dir/local.err")"
"$PY" - "$dir/local.json" <<'PYEOF' || fail "the schedule did not drive the rate: $(cat "$dir/local.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["trainer_exit_code"] == 0, j
writes = [(e["step"], float(w["value"]), w["reason"]) for e in j["events"]
          if e["actor"] == "policy:warmup_cosine" and e["applied"] for w in e["writes"]]
up = [w for w in writes if w[0] < 300]
down = [w for w in writes if 300 <= w[0] < 1500]
# The supervisor may see the trainer's last record, past the schedule: the floor, said so.
past = [w for w in writes if w[0] >= 1500]
assert all(w[1] == 0.0 and "past the schedule" in w[2] for w in past), past
assert len(up) >= 2 and len(down) >= 2, writes
assert all(a[1] < b[1] for a, b in zip(up, up[1:])), up        # warm-up: rising
assert all(a[1] > b[1] for a, b in zip(down, down[1:])), down  # decay: falling
assert all("warm-up step" in w[2] for w in up) and all("cosine decay" in w[2] for w in down), writes
assert max(w[1] for w in writes) <= 0.2 + 1e-12, writes
PYEOF
step "ok"
