#!/usr/bin/env bash
# A supervised run is reproduced by replaying its recorded config history, byte for byte.
#  - `trainvisor local` with a plateau policy that cuts the rate at every evaluation: the config
#    changes mid-run at steps that depend on how the supervisor and the trainer were scheduled;
#  - `trainvisor train --replay-config BUNDLE` into another folder: the same bundle, byte for
#    byte (history, revision numbers, metrics and weights), taking model, parameters, seed, caps
#    and sample caps from the bundle; two revisions at step 0 (the start and the first step
#    boundary) replay as recorded; a replay that runs short of the history says so;
#  - bad input (exit 2, the message names the bundle and the reason): a missing file, a corrupt
#    one, no config history, a history out of step order, a knob out of range, a flag that
#    contradicts the bundle, a flag that a replay excludes, an --out that holds the bundle itself;
#    nothing is written.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT

# history BUNDLE: "revision@step ..." of its config history.
history() {
  "$PY" - "$1" <<'PYEOF'
import json, sys
b = open(sys.argv[1], "rb").read()
first = b.index(b"\n"); second = b.index(b"\n", first + 1)
h = json.loads(b[second + 1:second + 1 + int(b[first + 1:second])])
print(" ".join(f"{e['revision']}@{e['step']}" for e in h["config_history"]))
PYEOF
}
# rewrite SRC DST PYTHON: DST is SRC with its JSON header `h` changed by the PYTHON statement.
rewrite() {
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, sys
b = open(sys.argv[1], "rb").read()
first = b.index(b"\n"); second = b.index(b"\n", first + 1)
n = int(b[first + 1:second])
h = json.loads(b[second + 1:second + 1 + n])
exec(sys.argv[3])
text = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
open(sys.argv[2], "wb").write(b"TVBUNDLE1\n" + str(len(text)).encode() + b"\n" + text + b[second + 1 + n:])
PYEOF
}
replay() { "$TRAINVISOR" train --threads 1 --quiet "$@"; }

step "a supervised run whose config changes mid-run"
# The policy's cuts land where the supervisor's polls meet the trainer's evaluations: a run with
# fewer than three revisions (a starved supervisor) is run again, up to three times.
for attempt in 1 2 3; do
  rm -rf "$dir/original"
  "$TRAINVISOR" local --model tiny --seed 3 --max-train-samples 384 \
    --set training/control/eval_every=3 --set training/control/max_epochs=24 \
    --policy plateau:patience=0,threshold=0.5,factor=0.5 --interval-ms 5 \
    --out "$dir/original" -o json > "$dir/local.json" 2> "$dir/local.err" ||
    fail "local failed: $(tail -5 "$dir/local.err")"
  revisions=$(history "$dir/original/bundle.tvb")
  [ "$(echo "$revisions" | wc -w)" -ge 3 ] && break
done
[ "$(echo "$revisions" | wc -w)" -ge 3 ] || fail "the config changed fewer than twice: $revisions"
original="$dir/original/bundle.tvb"
cp -r "$dir/original" "$dir/kept"

step "the replay is byte-identical"
replay --replay-config "$original" --out "$dir/replayed" > "$dir/replay.out" 2> "$dir/replay.err" ||
  fail "the replay failed: $(cat "$dir/replay.err")"
[ "$(history "$dir/replayed/bundle.tvb")" = "$revisions" ] ||
  fail "replayed history $(history "$dir/replayed/bundle.tvb"), recorded $revisions"
cmp "$original" "$dir/replayed/bundle.tvb" || fail "the replayed bundle differs from the original"
# Flags that agree with the bundle are accepted.
replay --replay-config "$original" --out "$dir/agreeing" --model tiny --seed 3 \
  --max-train-samples 384 > /dev/null 2> "$dir/agree.err" || fail "agreeing flags: $(cat "$dir/agree.err")"
cmp "$original" "$dir/agreeing/bundle.tvb" || fail "the replay with agreeing flags differs"

step "two revisions at step 0 (the start and the first step boundary) replay as recorded"
rewrite "$original" "$dir/zero.tvb" 'h["config_history"][1]["step"] = 0'
replay --replay-config "$dir/zero.tvb" --out "$dir/zero" > /dev/null 2> "$dir/zero.err" ||
  fail "the replay of two revisions at step 0 failed: $(cat "$dir/zero.err")"
[ "$(history "$dir/zero/bundle.tvb")" = "$(history "$dir/zero.tvb")" ] ||
  fail "replayed $(history "$dir/zero/bundle.tvb"), recorded $(history "$dir/zero.tvb")"

step "a replay that is not the recorded run says so"
# A last revision past the run's end, as a run on other data would leave it.
rewrite "$original" "$dir/beyond.tvb" 'h["config_history"][-1]["step"] = h["metrics"]["steps"] + 10'
"$TRAINVISOR" train --threads 1 --replay-config "$dir/beyond.tvb" --out "$dir/beyond" \
  > /dev/null 2> "$dir/beyond.err" || fail "the replay failed: $(cat "$dir/beyond.err")"
grep -qE "replay: the recorded revision from step [0-9]+ was never reached" "$dir/beyond.err" ||
  fail "no word of the unreached revision: $(tail -3 "$dir/beyond.err")"

step "bad input is refused with the bundle and the reason"
# bad NAME PATTERN ARGS...: exit code 2 and stderr matching PATTERN.
bad() {
  local name=$1 pattern=$2 rc=0; shift 2
  replay "$@" --out "$dir/bad-$name" > /dev/null 2> "$dir/$name.err" || rc=$?
  [ "$rc" = 2 ] || fail "$name: exit code $rc, not 2: $(cat "$dir/$name.err")"
  grep -qE -- "$pattern" "$dir/$name.err" || fail "$name: not /$pattern/: $(cat "$dir/$name.err")"
  [ ! -e "$dir/bad-$name" ] || fail "$name: --out was written although the replay was refused"
}
bad missing "$dir/none.tvb: cannot read it" --replay-config "$dir/none.tvb"
head -c 300 "$original" > "$dir/cut.tvb"
bad cut "cut.tvb: corrupt: its header is cut short" --replay-config "$dir/cut.tvb"
head -c -8 "$original" > "$dir/short.tvb"
bad short "short.tvb: corrupt: its header lists [0-9]+ bytes of tensors, the file holds" \
  --replay-config "$dir/short.tvb"
echo "not a bundle" > "$dir/text.tvb"
bad text "text.tvb: not a bundle" --replay-config "$dir/text.tvb"
rewrite "$original" "$dir/nohistory.tvb" 'del h["config_history"]'
bad nohistory "nohistory.tvb: it records no config history" --replay-config "$dir/nohistory.tvb"
rewrite "$original" "$dir/order.tvb" 'c = h["config_history"]; c[1]["step"], c[2]["step"] = c[2]["step"], c[1]["step"]'
bad order "order.tvb: its config history is not in step order: revision [0-9]+ \(from step [0-9]+\) follows" \
  --replay-config "$dir/order.tvb"
rewrite "$original" "$dir/twice.tvb" 'c = h["config_history"]; c[2]["step"] = c[1]["step"]'
bad twice "twice.tvb: its config history has two revisions at one step boundary: revision [0-9]+ \(from step [0-9]+\) follows" \
  --replay-config "$dir/twice.tvb"
rewrite "$original" "$dir/range.tvb" 'h["config_history"][1]["knobs"]["training/optimizer/learning_rate"] = 50.0'
bad range "range.tvb: revision [0-9]+ \(from step [0-9]+\): knob training/optimizer/learning_rate: 50 is above" \
  --replay-config "$dir/range.tvb"
bad seed "--seed 4 contradicts the bundle, which records seed 3" --replay-config "$original" --seed 4
bad param "--param samples=99 contradicts the bundle, which records samples=512" \
  --replay-config "$original" --param samples=99
bad steps "--steps 7 contradicts the bundle, which records no step cap \(0\): its run stopped" \
  --replay-config "$original" --steps 7
bad knob "--replay-config: --knob cannot go with it" \
  --replay-config "$original" --knob training/optimizer/learning_rate=0.1
bad resume "--replay-config: --resume cannot go with it: a replay runs the recorded job from step 0" \
  --replay-config "$original" --resume
rc=0
replay --replay-config "$original" --out "$dir/original" > /dev/null 2> "$dir/self.err" || rc=$?
[ "$rc" = 2 ] && grep -q "holds this very bundle" "$dir/self.err" ||
  fail "--out of the bundle itself: $rc $(cat "$dir/self.err")"
diff -r "$dir/original" "$dir/kept" || fail "the original run's folder was changed"
rc=0
"$TRAINVISOR" train --out "$dir/nomodel" > /dev/null 2> "$dir/nomodel.err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--model is required" "$dir/nomodel.err" ||
  fail "no --model: $rc $(cat "$dir/nomodel.err")"
step "ok"
