#!/usr/bin/env bash
# A PyTorch script as a fleet job: examples/python-trainer/train.py run by a real host daemon
# (shipped from beside the manifest, started through trainer-exec with the job's block), with the
# plateau policy made to fire at every evaluation:
#  - the policy's write and an operator's `config set` each reach the optimizer's param groups at
#    the next step (the trainer's log says so) and its telemetry carries their revisions;
#  - a cancel stops it with a checkpoint (exit 4); a requeue from the checkpoint resumes it on
#    the same host, an early stop ends it, and its output directory is uploaded as bundle.tar;
#  - a trainer that attaches to another job's block, a command that does not exist, and one that
#    exits at once fail their jobs with the reason, and the host goes on.
set -euo pipefail
: "${TRAINVISOR:?}"
: "${TRAINVISOR_PYTHON:?}"  # the folder holding the trainvisor package the trainer imports
: "${TV_SHM_TEST_WRITER:?}"  # serves a block of another job's lease
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
EXAMPLE=$(cd "$(dirname "$0")/../../examples/python-trainer" && pwd)
on_fail() {
  echo "--- host log:" >&2; tail -30 "$dir/host.log" >&2 || true
  for f in "$dir"/work/*/trainer.log; do echo "--- $f:" >&2; tail -30 "$f" >&2 || true; done
  echo "--- config log:" >&2; "$TRAINVISOR" config log torch 2>&1 | tail -12 >&2 || true
}

mkdir -p "$dir/bad"
cat > "$dir/bad/other_block.py" <<'PY'
import os, sys
import trainvisor
os.environ["TRAINVISOR_BLOCK"] = sys.argv[1]  # another job's block, not the one it was given
try:
    trainvisor.attach()
except trainvisor.TrainerError as e:
    print(f"refused: {e}", file=sys.stderr)
    sys.exit(2)
sys.exit(0)
PY
cat > "$dir/fleet.toml" <<TOML
[[jobs]]
name = "torch"
trainer = ["/usr/bin/python3", "train.py", "--max-train-samples", "2000", "--max-val-samples", "500"]
workdir = "$EXAMPLE"
seed = 3
priority = 10
[jobs.hyper]
training.optimizer.learning_rate = 0.1
training.control.batch_size = 50
training.control.max_epochs = 100000
training.control.eval_every = 5
# No evaluation ever counts as an improvement: every one past the first halves the rate.
[[jobs.policies]]
name = "plateau"
monitor = "val_loss"
patience = 0
factor = 0.5
threshold = 1000
threshold_mode = "abs"
min_lr = 0.0001
TOML

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_OPERATOR_NAME=ana
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" --port 0 \
  --stale-after 30 > "$dir/url" 2>> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(tail -5 "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
"$TRAINVISOR" host --name h1 --work-dir "$dir/work" --heartbeat-every 0.5 --poll-every 0.3 \
  --python-path "$TRAINVISOR_PYTHON" 2>> "$dir/host.log" &
host=$!

# query EXPR: EXPR evaluated with `c`, a client of the coordinator, and `job`, the job's id.
query() {
  PYTHONPATH=$TRAINVISOR_PYTHON "$PY" -c "
import os
from trainvisor import Coordinator
c = Coordinator(os.environ['TRAINVISOR_COORDINATOR'], operator_token='op-token')
job = c.job('torch')['id']
print($1)"
}
id=$(query job)
log="$dir/work/$id/trainer.log"
# The learning rate of the trainer's telemetry points at revision REV (the last one), or nothing.
rate_at() { query "([p['learning_rate'] for p in c.telemetry(job)['points'] if p['config_revision'] == $1] or [''])[-1]"; }
# applied REV RATE: the trainer logged the change of revision REV and its telemetry ran at RATE.
applied() {
  grep -q "revision $1: .*learning_rate" "$log" && [ "$(rate_at "$1")" = "$2" ]
}

step "the job runs under its policy"
wait_for 60 sh -c "'$TRAINVISOR' jobs show torch | grep -q 'status running'" || fail "the job never ran"
"$TRAINVISOR" jobs show torch > "$dir/show.out"
grep -q "trainer      /usr/bin/python3 train.py --max-train-samples 2000" "$dir/show.out" &&
  grep -q "workdir      shipped, sha256 " "$dir/show.out" ||
  fail "jobs show does not name the command and its shipped workdir: $(cat "$dir/show.out")"
"$TRAINVISOR" jobs list | grep -q "torch .*\$ python3 .*running" ||
  fail "jobs list does not show the command: $("$TRAINVISOR" jobs list)"
"$TRAINVISOR" artifacts torch | grep -q "^workdir.tar " ||
  fail "the shipped workdir is not among the job's artifacts: $("$TRAINVISOR" artifacts torch)"
# The plateau policy's first accepted write: "REVISION RATE", or nothing.
policy_write() {
  query "([f\"{e['revision']} {e['new']}\" for e in c.config_log(job, limit=1000)
          if e['actor'] == 'policy:plateau' and e['accepted']] or [''])[0]"
}
policy_wrote() { [ -n "$(policy_write)" ]; }
wait_for 90 policy_wrote || fail "the plateau policy never wrote"
read -r prev prate <<< "$(policy_write)"
wait_for 60 applied "$prev" "$prate" ||
  fail "the trainer never applied the policy's revision $prev at $prate"

step "an operator's change reaches the optimizer at the next step"
"$TRAINVISOR" config set torch training/optimizer/learning_rate 0.0123 --reason "by hand" > "$dir/set.out"
hrev=$(grep -o "revision [0-9]*" "$dir/set.out" | grep -o "[0-9]*")
[ -n "$hrev" ] || fail "config set printed no revision: $(cat "$dir/set.out")"
wait_for 60 applied "$hrev" 0.0123 || fail "the trainer never ran revision $hrev at 0.0123"
grep -Eq "revision $hrev: \{'training/optimizer/learning_rate': \([0-9.e-]+, 0.0123\)\}" "$log" ||
  fail "the trainer's log does not show the param groups moving to 0.0123 at revision $hrev"

step "cancel: a checkpoint, then a requeue resumes it"
"$TRAINVISOR" jobs cancel torch > /dev/null
wait_for 60 sh -c "'$TRAINVISOR' jobs show torch | grep -q 'status cancelled'" || fail "not cancelled"
wait_for 30 test -s "$dir/work/$id/exit_code" || fail "trainer-exec wrote no exit code"
[ "$(cat "$dir/work/$id/exit_code")" = 4 ] || fail "the trainer did not exit 4 on SIGTERM"
[ -s "$dir/work/$id/out/checkpoint.pt" ] || fail "no checkpoint in the output directory"
grep -q "interrupted at step" "$log" || fail "the trainer did not say it was interrupted"
"$TRAINVISOR" jobs requeue torch --from-checkpoint > /dev/null
wait_for 60 grep -q "resumed at step" "$log" || fail "the requeued job did not resume its checkpoint"

step "an early stop ends it and its output is the job's bundle"
"$TRAINVISOR" config set torch training/control/early_stop true --reason "enough" > /dev/null
wait_for 60 sh -c "'$TRAINVISOR' jobs show torch | grep -q 'status stopped'" ||
  fail "the job did not stop early: $("$TRAINVISOR" jobs show torch)"
digest=$("$TRAINVISOR" artifacts torch | awk '$1 == "bundle.tar" {print $3}')
[ -n "$digest" ] || fail "no bundle.tar among the job's artifacts: $("$TRAINVISOR" artifacts torch)"
"$PY" - "$TRAINVISOR_COORDINATOR/v1/artifact/$digest" "$dir/bundle.tar" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"X-Operator-Token": "op-token"})
with urllib.request.urlopen(req) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PY
tar -tf "$dir/bundle.tar" > "$dir/bundle.list"
for f in model.pt metrics.json; do
  grep -qx "$f" "$dir/bundle.list" || fail "bundle.tar lacks $f: $(cat "$dir/bundle.list")"
done
tar -xOf "$dir/bundle.tar" metrics.json | grep -q '"result": "early_stop' ||
  fail "metrics.json does not say it stopped early: $(tar -xOf "$dir/bundle.tar" metrics.json)"

step "bad trainers fail their jobs, the host goes on"
# Another job's block, live, stamped with its own lease.
other="trainvisor.$(printf 'b%.0s' $(seq 64))"
sleep 300 | "$TV_SHM_TEST_WRITER" serve "$other" "7:$(printf 'c%.0s' $(seq 64))" \
  "training/optimizer/learning_rate=f64:0.5" > "$dir/other.out" &
wait_for 10 grep -q ready "$dir/other.out" || fail "the other job's block was not served"
cat >> "$dir/fleet.toml" <<TOML
[[jobs]]
name = "thief"
trainer = ["/usr/bin/python3", "other_block.py", "$other"]
workdir = "$dir/bad"
max_attempts = 1
[[jobs]]
name = "missing"
trainer = ["no-such-python", "train.py"]
host_workdir = "$EXAMPLE"
max_attempts = 1
[[jobs]]
name = "crash"
trainer = ["/usr/bin/python3", "-c", "import sys; sys.exit('cannot find my data')"]
max_attempts = 1
TOML
"$TRAINVISOR" reload > /dev/null
failed_with() {
  "$TRAINVISOR" jobs show "$1" > "$dir/$1.show" 2>&1 && grep -q "status failed" "$dir/$1.show" &&
    grep -q -- "$2" "$dir/$1.show"
}
wait_for 60 failed_with missing "trainer command 'no-such-python' is not an executable on this host's PATH" ||
  fail "missing: $(cat "$dir/missing.show")"
wait_for 60 failed_with crash "trainer exited 1 (/usr/bin/python3 -c .*cannot find my data" ||
  fail "crash: $(cat "$dir/crash.show")"
wait_for 60 failed_with thief "trainer exited 2 .*refused: .*$other" || fail "thief: $(cat "$dir/thief.show")"
kill -0 "$host" || fail "the host daemon died"
grep -h "error\|reason" "$dir"/thief.show "$dir"/missing.show "$dir"/crash.show >&2 || true
step "ok"
