#!/usr/bin/env bash
# `trainvisor --version` and `trainvisor shm inspect` against a block held by a live writer
# process, in text and JSON, and their errors for a bad or missing block.
set -euo pipefail
: "${TRAINVISOR:?path to the trainvisor binary}" "${TV_SHM_TEST_WRITER:?path to tv_shm_test_writer}"
. "$(dirname "$0")/process_test_lib.sh"
job="cli-inspect-$$"
name="trainvisor.$job"
dir=$(mktemp -d)
cleanup() {
  exec 3>&- 2>/dev/null || true
  [ -n "${holder:-}" ] && wait "$holder" 2>/dev/null || true
  kill_descendants
  rm -rf "$dir" "/dev/shm/$name"
}
trap cleanup EXIT

"$TRAINVISOR" --version | grep -q "^trainvisor [0-9]" || fail "--version prints no version"
"$TRAINVISOR" --version | grep -q "^shm layout: 2\." || fail "--version omits the shm layout"

mkfifo "$dir/in"
"$TV_SHM_TEST_WRITER" create "$name" training/optimizer/learning_rate=f64:0.001 \
  training/control/max_epochs=i64:12 training/control/early_stop=bool:false \
  training/optimizer/name=str:adamw < "$dir/in" > "$dir/out" &
holder=$!
exec 3>"$dir/in"  # keeps the writer alive until closed
wait_for 10 grep -q ready "$dir/out" || fail "writer did not start: $(cat "$dir/out")"
"$TV_SHM_TEST_WRITER" telemetry-push "$name" 5 >/dev/null

"$TRAINVISOR" shm inspect "$job" -o json > "$dir/inspect.json"
"$PY" - "$dir/inspect.json" "$name" "$holder" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
name, pid = sys.argv[2], int(sys.argv[3])
assert j["block"] == name, j["block"]
assert j["layout"]["major"] == 2
assert j["writer"]["pid"] == pid and j["writer"]["alive"] is True, j["writer"]
assert 0 <= j["heartbeat"]["age_seconds"] < 30, j["heartbeat"]
assert j["write_in_progress"] is False and j["tree_generation"] >= 1
keys = {k["path"]: (k["type"], k["value"]) for k in j["keys"]}
assert keys == {
    "training/optimizer/learning_rate": ("float64", 0.001),
    "training/control/max_epochs": ("int64", 12),
    "training/control/early_stop": ("bool", False),
    "training/optimizer/name": ("string", "adamw"),
}, keys
assert j["key_table_generation"] == 4
t = j["telemetry"]
assert t["head"] == 5 and t["unread"] == 5 and t["dropped"] == 0 and t["capacity"] == 1024, t
PYEOF

# Text output, by full block name.
"$TRAINVISOR" shm inspect "$name" > "$dir/inspect.txt"
grep -q "training/optimizer/learning_rate  float64  0.001" "$dir/inspect.txt" || fail "text lacks a key: $(cat "$dir/inspect.txt")"
grep -q "(alive)" "$dir/inspect.txt" || fail "text lacks writer liveness"
grep -q "telemetry        head 5" "$dir/inspect.txt" || fail "text lacks the ring head"

# The writer goes away: the block stays, and says so.
exec 3>&-
wait "$holder"; holder=
"$TRAINVISOR" shm inspect "$job" -o json | "$PY" -c 'import json,sys; assert json.load(sys.stdin)["writer"]["alive"] is False'

# The lease: the test writer stamps none.
"$TRAINVISOR" shm inspect "$job" -o json | "$PY" -c 'import json,sys; assert json.load(sys.stdin)["lease"] == {"attempt": 0, "digest": "0" * 64}'
grep -q "^lease            attempt 0" "$dir/inspect.txt" || fail "text lacks the lease"

# Errors: exit 2 and a message naming the thing.
# A block cut short by any process of the user: a clear error, never a crash.
inspect_fails() {  # WHAT PATTERN
  set +e
  out=$("$TRAINVISOR" shm inspect "$job" 2>&1); rc=$?
  set -e
  [ "$rc" = 2 ] || fail "$1 exited $rc"
  echo "$out" | grep -q "$2" || fail "$1 message: $out"
}
cp "/dev/shm/$name" "$dir/block"
truncate -s 100 "/dev/shm/$name"
inspect_fails "a truncated block" "'$name' is 100 bytes, smaller than a block header"
cp "$dir/block" "/dev/shm/$name"
truncate -s 8192 "/dev/shm/$name"
inspect_fails "a block cut past its header" "is truncated: it is 8192 bytes but its header says"
set +e
out=$("$TRAINVISOR" shm inspect "no/such" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "bad name exited $rc"
echo "$out" | grep -q "invalid job id 'no/such'" || fail "bad name message: $out"
set +e
out=$("$TRAINVISOR" shm inspect "missing-$$" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "missing block exited $rc"
echo "$out" | grep -q "trainvisor.missing-$$' does not exist" || fail "missing block message: $out"
set +e
out=$("$TRAINVISOR" shm inspect "$job" -o yaml 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "bad -o exited $rc"
echo "$out" | grep -q "yaml" || fail "bad -o message does not name the value: $out"
echo "PASS"
