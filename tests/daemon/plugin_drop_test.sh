#!/usr/bin/env bash
# Dropping a newly built model library into a plugin directory is all it takes: `plugins list`
# shows it, `plugins show` gives its schema, and a job trains with it. Also the CLI's refusals.
# Then where plugins are looked for: TRAINVISOR_PLUGIN_PATH, --plugin-dir before it, and an
# installed binary's lib/trainvisor/plugins. Every plugin this test copies goes into its own
# temporary folder; TEST_PLUGIN_DIR (built test plugins, scanned by other tests) is only read.
set -euo pipefail
: "${TRAINVISOR:?}" "${EXAMPLE_PLUGIN:?}" "${TEST_PLUGIN_DIR:?}"
unset TRAINVISOR_PLUGIN_PATH
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

# TRAINVISOR_PLUGIN_PATH: entries in order, a missing one skipped, the first of two plugins of one
# name kept (good_policy is test_policy 1.0.0, dup_policy the same name at 2.0.0).
mkdir "$dir/first" "$dir/second"
cp "$TEST_PLUGIN_DIR/libgood_policy.so" "$dir/first/"
cp "$TEST_PLUGIN_DIR/libdup_policy.so" "$dir/second/"
# which_policy: "<version> <path>" of test_policy, then one "refused <path>: <reason>" per error.
which_policy() {
  "$PY" -c '
import json, sys
j = json.load(sys.stdin)
print(*[p["version"] + " " + p["path"] for p in j["plugins"] if p["name"] == "test_policy"])
for e in j["errors"]:
    print("refused " + e["path"] + ": " + e["reason"])'
}
out=$(TRAINVISOR_PLUGIN_PATH="$dir/first:$dir/absent:$dir/second" "$TRAINVISOR" plugins list -o json | which_policy)
[ "$out" = "1.0.0 $dir/first/libgood_policy.so
refused $dir/second/libdup_policy.so: duplicate plugin name 'test_policy': already loaded from $dir/first/libgood_policy.so" ] ||
  fail "TRAINVISOR_PLUGIN_PATH first:absent:second: $out"
out=$(TRAINVISOR_PLUGIN_PATH="$dir/second:$dir/first" "$TRAINVISOR" plugins list -o json | which_policy)
[ "$out" = "2.0.0 $dir/second/libdup_policy.so
refused $dir/first/libgood_policy.so: duplicate plugin name 'test_policy': already loaded from $dir/second/libdup_policy.so" ] ||
  fail "TRAINVISOR_PLUGIN_PATH second:first: $out"
# --plugin-dir is searched before the variable.
out=$(TRAINVISOR_PLUGIN_PATH="$dir/first" "$TRAINVISOR" plugins list --plugin-dir "$dir/second" -o json | which_policy)
[ "$out" = "2.0.0 $dir/second/libdup_policy.so
refused $dir/first/libgood_policy.so: duplicate plugin name 'test_policy': already loaded from $dir/second/libdup_policy.so" ] ||
  fail "--plugin-dir second, TRAINVISOR_PLUGIN_PATH first: $out"
# An entry that is a file is refused by name, in the text listing too.
out=$(TRAINVISOR_PLUGIN_PATH="$dir/first/libgood_policy.so" "$TRAINVISOR" plugins list)
echo "$out" | grep -qxF "  $dir/first/libgood_policy.so: not a directory (a plugin path names folders of .so files)" ||
  fail "a file in TRAINVISOR_PLUGIN_PATH: $out"

# An installed binary, the variable unset, finds <prefix>/lib/trainvisor/plugins, and nothing of
# the build tree. A hard link keeps /proc/self/exe inside the prefix without copying the binary.
prefix="$dir/prefix"
mkdir -p "$prefix/bin" "$prefix/lib/trainvisor/plugins"
ln "$TRAINVISOR" "$prefix/bin/trainvisor" 2>/dev/null || cp "$TRAINVISOR" "$prefix/bin/trainvisor"
cp "$TEST_PLUGIN_DIR/libgood_policy.so" "$prefix/lib/trainvisor/plugins/"
"$prefix/bin/trainvisor" plugins list -o json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
found = [(p["name"], p["path"]) for p in j["plugins"]]
assert found == [("test_policy", sys.argv[1] + "/lib/trainvisor/plugins/libgood_policy.so")], found
assert j["errors"] == [], j["errors"]' "$prefix" || fail "the installed plugin folder"
echo PASS
