#!/usr/bin/env bash
# `trainvisor plugins show` for the trigger plugins: every parameter with its type, default,
# range (or allowed values) and help, in text and in JSON.
set -euo pipefail
: "${TRAINVISOR:?}" "${TRIGGER_PLUGIN_DIR:?}"
unset TRAINVISOR_PLUGIN_PATH
PY=/usr/bin/python3
fail() { echo "FAIL: $*" >&2; exit 1; }
show() { "$TRAINVISOR" plugins show "$@" --plugin-dir "$TRIGGER_PLUGIN_DIR"; }

out=$(show time)
echo "$out" | grep -qE "^time 1\.0\.0 \(trigger plugin\)$" || fail "time heading: $out"
echo "$out" | grep -qE "^every_s +float64 +3600 +\[0\.001, 3\.2e\+09\] +interval in seconds" ||
  fail "time every_s row: $out"

out=$(show data_count)
echo "$out" | grep -qE "^every +int64 +1000 +\[1, 1e\+12\] +samples per firing" ||
  fail "data_count every row: $out"

out=$(show ensemble)
echo "$out" | grep -qE "^ensemble 1\.0\.0 \(trigger plugin\)$" || fail "ensemble heading: $out"
echo "$out" | grep -qE '^members +string +"data_count\(every=1000\); time\(every_s=86400\)" +the member triggers' ||
  fail "ensemble members row: $out"
echo "$out" | grep -qE '^mode +string +"any" +any\|all\|at_least +how many raised votes' ||
  fail "ensemble mode row: $out"
echo "$out" | grep -qE "^n +int64 +2 +\[1, 1024\] +votes needed with mode=at_least" ||
  fail "ensemble n row: $out"

out=$(show data_drift)
echo "$out" | grep -qE "^data_drift 1\.0\.0 \(trigger plugin\)$" || fail "data_drift heading: $out"
echo "$out" | grep -qE '^metric +string +"mmd" +mmd\|ks +two-sample test' || fail "metric row: $out"
echo "$out" | grep -qE "^permutations +int64 +100 +\[1, 1e\+05\] +mmd: permutations" ||
  fail "data_drift permutations row: $out"
echo "$out" | grep -qE "^p_value +float64 +0\.05 +\[1e-09, 1\] +decision p_value" ||
  fail "data_drift p_value row: $out"
for key in windowing reference_size current_size reference_s current_s reference overlap \
           evaluate_every decision threshold dynamic_window quantile deviation \
           deviation_absolute warmup_evaluations warmup_every seed correction; do
  echo "$out" | grep -qE "^$key " || fail "data_drift lists no $key: $out"
done

# Every parameter of every trigger plugin has a default of its type, a help text and, for a
# number, both bounds; a choice lists its values.
for name in time data_count ensemble data_drift; do
  show "$name" -o json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
assert j["kind"] == "trigger", j
assert j["params"], j
for p in j["params"]:
    assert p["help"], p
    if p["type"] in ("int64", "float64"):
        assert "min" in p and "max" in p and p["min"] <= p["default"] <= p["max"], p
for p in j["params"]:
    if p["key"] == "mode":
        assert p["allowed"] == ["any", "all", "at_least"], p'
done

set +e
msg=$(show tmie 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown plugin exited $rc"
echo "$msg" | grep -q "no plugin named 'tmie' (did you mean 'time'?)" || fail "message: $msg"
echo "ok"
