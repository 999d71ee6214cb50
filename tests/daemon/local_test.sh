#!/usr/bin/env bash
# `trainvisor local` and `trainvisor train` as a user runs them: --max-epochs N trains N epochs;
# a second run into an --out that holds a checkpoint is refused (the files stay byte for byte)
# unless --resume, which continues from the checkpoint's step, or --overwrite; a hangup, alone or
# to the whole process group as a closed terminal sends it, stops the trainer after a
# checkpoint, removes the block and exits 4 (and `train` alone takes SIGHUP as SIGTERM); a local
# killed outright leaves a trainer that stops itself; the summary is on stdout (JSON with
# -o json), progress on stderr.
# Usage: local_test.sh max_epochs|output|resume|signals (one ctest each).
set -euo pipefail
: "${TRAINVISOR:?}"
unset TRAINVISOR_PLUGIN_PATH  # the build's own plugins, next to the binary
section=${1:?which part: max_epochs, output, resume or signals}
source "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"; rm -f /dev/shm/trainvisor.local-test-$$-*' EXIT
cd "$dir"
# 128 samples in batches of 64: an epoch is two steps.
tiny=(--model tiny --param samples=128 --seed 5)
on_fail() { for f in "$dir"/*.err; do echo "--- $f" >&2; tail -20 "$f" >&2; done; }
# no_json_on_stderr FILE: progress lines only, no summary object.
no_json_on_stderr() { ! grep -q '^{' "$1" || fail "a JSON line on stderr: $(grep '^{' "$1")"; }
# snapshot: the checksums of every file of run/'s checkpoint and bundle.
snapshot() {
  (cd run && find checkpoint bundle.tvb -type f -print0 | sort -z | xargs -0 sha256sum)
}

max_epochs() {
  step "--max-epochs 8 trains 8 epochs, above the knob's default of 5"
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 8 -o json > epochs.json 2> epochs.err
  "$PY" - epochs.json <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["trainer_exit_code"] == 0 and j["steps"] == 16, j
t = j["trainer"]
assert t["result"] == "completed" and t["reason"] == "max_epochs", t
assert t["epochs"] == 8 and t["steps"] == 16 and j["steps"] == 16, j
PYEOF
  "$TRAINVISOR" train "${tiny[@]}" --max-epochs 8 --quiet > train.json 2> train.err
  [ "$(field "['epochs']" < train.json)" = 8 ] || fail "train --max-epochs 8: $(cat train.json)"
  # The same value twice is one wish; two values are refused, naming both.
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 6 --set training/control/max_epochs=6 -o json \
    > same.json 2> same.err
  [ "$(field "['trainer']['epochs']" < same.json)" = 6 ] || fail "same value: $(cat same.json)"
  expect_failure conflict.err \
    "--max-epochs 3 and --set training/control/max_epochs=4 disagree" \
    "$TRAINVISOR" local "${tiny[@]}" --max-epochs 3 --set training/control/max_epochs=4
  expect_failure conflict.err \
    "--max-epochs 3 and --knob training/control/max_epochs=4 disagree" \
    "$TRAINVISOR" train "${tiny[@]}" --max-epochs 3 --knob training/control/max_epochs=4
  "$TRAINVISOR" local --help | grep -q "Epochs to train: sets training/control/max_epochs" ||
    fail "local --help does not say what --max-epochs does"
}

output() {
  step "text output: the summary on stdout, progress on stderr"
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 2 > text.out 2> text.err
  grep -q "^local: completed (max_epochs) at step 4, epoch 2: val_loss" text.out ||
    fail "text summary: $(cat text.out)"
  [ "$(wc -l < text.out)" = 1 ] || fail "stdout holds more than the summary: $(cat text.out)"
  grep -q "^trainer: epoch 1 done at step 4" text.err || fail "no progress on stderr"
  no_json_on_stderr text.err
  step "-o json: the summary alone on stdout, and it parses"
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 2 -o json > json.out 2> json.err
  "$PY" - json.out <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["trainer_exit_code"] == 0 and j["steps"] == 4, j
assert j["trainer"]["result"] == "completed" and j["trainer"]["epochs"] == 2, j
PYEOF
  no_json_on_stderr json.err
}

resume() {
  step "a second run into the same --out: refused, then --resume, then --overwrite"
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 100 --steps 6 --out run > first.out 2> first.err
  [ -f run/checkpoint/state.json ] && [ -f run/bundle.tvb ] || fail "the first run left nothing"
  before=$(snapshot)
  set +e
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 100 --steps 10 --out run \
    --job-id "local-test-$$-again" > again.out 2> again.err
  rc=$?
  set -e
  [ "$rc" = 2 ] || fail "a second run into run/ exited $rc"
  refusal="^trainvisor: error: --out run holds an earlier run's checkpoint/ and bundle.tvb: "
  refusal+="--resume continues that run, --overwrite starts over"
  grep -q "$refusal" again.err || fail "refusal: $(cat again.err)"
  [ "$(snapshot)" = "$before" ] || fail "the refused run changed the checkpoint or the bundle"
  [ ! -e "/dev/shm/trainvisor.local-test-$$-again" ] || fail "the refused run made a block"
  expect_failure both.err "excludes" \
    "$TRAINVISOR" local "${tiny[@]}" --out run --resume --overwrite
  [ "$(snapshot)" = "$before" ] || fail "--resume --overwrite changed the checkpoint"
  expect_failure nockpt.err "--resume: fresh holds no checkpoint" \
    "$TRAINVISOR" local "${tiny[@]}" --out fresh --resume
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 100 --steps 10 --out run --resume \
    > resumed.out 2> resumed.err
  grep -q "^trainer: resumed at step 6, epoch 3" resumed.err || fail "not resumed at step 6"
  grep -q "^local: completed (step cap) at step 10" resumed.out ||
    fail "resumed: $(cat resumed.out)"
  "$TRAINVISOR" local "${tiny[@]}" --max-epochs 100 --steps 4 --out run --overwrite -o json \
    > over.json 2> over.err
  [ "$(field "['trainer']['steps']" < over.json)" = 4 ] || fail "--overwrite: $(cat over.json)"
  [ "$(field "['step']" < run/checkpoint/state.json)" = 4 ] ||
    fail "--overwrite kept the old checkpoint"
}

# start_local NAME LAUNCHER... [-- LOCAL_ARGS...]: a long run in the background, its job id
# local-test-$$-NAME, its --out NAME; sets pid (the launcher's, which is local's when it execs).
start_local() {
  local name=$1 launcher=() extra=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do launcher+=("$1"); shift; done
  [ $# -eq 0 ] || { shift; extra=("$@"); }
  "${launcher[@]}" "$TRAINVISOR" local "${tiny[@]}" --set training/control/max_epochs=1000000 \
    --job-id "local-test-$$-$name" --out "$name" "${extra[@]}" > "$name.out" 2> "$name.err" &
  pid=$!
}
# training NAME: the trainer has pushed telemetry (it runs its loop, its handlers installed).
training() {
  "$TRAINVISOR" shm inspect "local-test-$$-$1" -o json | "$PY" -c '
import json, sys; assert json.load(sys.stdin)["telemetry"]["head"] > 0'
}
# gone PID: no such process, or a zombie (a reparented trainer the test has not reaped).
gone() { [ ! -e "/proc/$1" ] || [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" = Z ]; }
# after_stop NAME CODE TRAINER_PID: local exited CODE (4) with its block and trainer gone and a
# checkpoint written.
after_stop() {
  [ "$2" = 4 ] || fail "$1: local exited $2"
  [ ! -e "/dev/shm/trainvisor.local-test-$$-$1" ] || fail "$1: the block is left in /dev/shm"
  gone "$3" || fail "$1: the trainer (pid $3) is alive: $(cat "/proc/$3/stat")"
  [ "$(field "['step']" < "$1/checkpoint/state.json")" -gt 0 ] || fail "$1: no checkpoint"
  [ "$(cat "$1/exit_code")" = 4 ] || fail "$1: the trainer exited $(cat "$1/exit_code")"
}
# only_child PID: the one process below PID.
only_child() {
  local c
  c=$(descendants "$1")
  [ -n "$c" ] && [ "$c" = "${c%% *}" ] || fail "expected one process below $1, found '$c'"
  echo "$c"
}

signals() {
  step "SIGHUP to local alone"
  start_local hup env
  wait_for 60 training hup || fail "hup: no telemetry"
  trainer=$(only_child $pid)
  kill -HUP $pid
  set +e
  wait $pid
  rc=$?
  set -e
  after_stop hup $rc $trainer
  grep -q "^local: SIGHUP: stopping the trainer" hup.err || fail "hup: no notice on stderr"
  grep -q "^local: trainer exited 4 (interrupted, checkpoint in hup/checkpoint) at step" hup.out ||
    fail "hup: summary $(cat hup.out)"

  step "SIGHUP to the process group, as a closed terminal sends it; the JSON summary on stdout"
  start_local group setsid -- -o json
  wait_for 60 training group || fail "group: no telemetry"
  [ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$TRAINVISOR")" ] || fail "setsid forked"
  trainer=$(only_child $pid)
  group=$(ps -o pgid= -p "$trainer" | tr -d ' ')
  [ "$group" = "$pid" ] && [ "$group" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] ||
    fail "local is not the leader of a group of its own (group $group)"
  kill -HUP -- "-$group"
  set +e
  wait $pid
  rc=$?
  set -e
  after_stop group $rc $trainer
  no_json_on_stderr group.err
  "$PY" - group.out <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["trainer_exit_code"] == 4 and j["trainer"] is None and j["steps"] > 0, j
PYEOF

  step "SIGHUP to \`train\` alone: a checkpoint and exit code 4, as for SIGTERM"
  "$TRAINVISOR" train "${tiny[@]}" --knob training/control/max_epochs=1000000 --out train \
    > train.out 2> train.err &
  pid=$!
  wait_for 60 grep -q "^trainer: epoch 0 done" train.err || fail "train: no epoch done"
  kill -HUP $pid
  set +e
  wait $pid
  rc=$?
  set -e
  [ "$rc" = 4 ] || fail "train: exited $rc after SIGHUP"
  grep -q "^trainer: interrupted at step [1-9][0-9]*: checkpoint written" train.err ||
    fail "train: no checkpoint on SIGHUP"
  [ "$(field "['step']" < train/checkpoint/state.json)" -gt 0 ] || fail "train: no checkpoint"

  step "local killed outright: its trainer checkpoints and stops once the heartbeat is old"
  start_local killed env
  wait_for 60 training killed || fail "killed: no telemetry"
  trainer=$(only_child $pid)
  kill -KILL $pid
  wait $pid 2>/dev/null || true
  wait_for 90 test -s killed/exit_code || fail "killed: the trainer did not stop on its own"
  wait_for 10 gone "$trainer" || fail "killed: the trainer (pid $trainer) is alive"
  [ "$(cat killed/exit_code)" = 4 ] || fail "killed: the trainer exited $(cat killed/exit_code)"
  [ "$(field "['step']" < killed/checkpoint/state.json)" -gt 0 ] || fail "killed: no checkpoint"
  grep -q "no heartbeat from the config agent" killed.err ||
    fail "killed: the trainer did not say why"
}

case "$section" in
  max_epochs | output | resume | signals) "$section" ;;
  *) fail "unknown part '$section'" ;;
esac
echo PASS
