#!/usr/bin/env bash
# examples/python-supervisor.py as a process of its own beside a real fleet: a coordinator, a host
# daemon and a tiny trainer. Its explosion rule is made to fire on every round (any gradient norm
# is "above" 0), so that every decision is known:
#  - one round (--once) writes as policy:py-supervisor with its reason; the config log records it
#    and the trainer applies it (its telemetry's config_revision catches up, at the new rate);
#  - under a freeze of training/optimizer its writes are refused with the hub's reason, the
#    refusal is in the config log, and it keeps polling;
#  - when the job finishes (a human's early stop) it stops by itself, with status 0.
set -euo pipefail
: "${TRAINVISOR:?}"
: "${TRAINVISOR_PYTHON:?}"  # the python/ folder of the source tree
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
SUPERVISOR=$(cd "$(dirname "$0")/../../examples" && pwd)/python-supervisor.py
export PYTHONPATH=$TRAINVISOR_PYTHON
on_fail() {
  echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true
  for f in once loop; do
    echo "--- supervisor ($f):" >&2; tail -20 "$dir/$f.log" >&2 || true
  done
  echo "--- config log:" >&2; "$TRAINVISOR" config log sup 2>&1 | tail -12 >&2 || true
}

cat > "$dir/sup.toml" <<'TOML'
[[jobs]]
name = "sup"
model = "tiny"
seed = 1
[jobs.hyper]
training.control.max_epochs = 1000000
training.optimizer.learning_rate = 0.08
TOML

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_OPERATOR_NAME=ana
printf 'wk-token\n' > "$dir/worker-token"
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/sup.toml" --port 0 \
  --stale-after 30 > "$dir/url" 2>> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(tail -5 "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
"$TRAINVISOR" host --name h1 --work-dir "$dir/work" --heartbeat-every 0.5 --poll-every 0.3 \
  --orphan-after 30 2>> "$dir/host.log" &

# The supervisor with the fleet's worker token, its worker token unset in its environment.
supervise() {
  env -u TRAINVISOR_WORKER_TOKEN "$PY" "$SUPERVISOR" --job sup \
    --worker-token-file "$dir/worker-token" --name py-supervisor --grad-norm-above 0 --explosion-cooldown 0 "$@"
}
# query EXPR: EXPR evaluated with `c`, a client of the coordinator, and `job`, the job's id.
query() {
  "$PY" -c "
import os, sys
from trainvisor import Coordinator
c = Coordinator(os.environ['TRAINVISOR_COORDINATOR'])
job = c.job('sup')['id']
print($1)"
}
# The supervisor's entries in the config log: accepted (True/False), revision, paths, refusal.
supervisor_entries() {
  query "'\n'.join(f\"{e['accepted']} {e['revision']} {e['path']} {e['new']} {e['refusal']}\"
                 for e in c.config_log(job, limit=1000) if e['actor'] == 'policy:py-supervisor')"
}

step "start"
wait_for 40 sh -c "'$TRAINVISOR' jobs show sup | grep -q 'status running'" || fail "the job never ran"
has_gradients() {
  [ "$(query "sum(p['grad_norm'] is not None for p in c.telemetry(job)['points'])")" -gt 0 ]
}
wait_for 30 has_gradients || fail "no telemetry with a gradient norm"

step "one round writes as policy:py-supervisor and the trainer applies it"
supervise --once > "$dir/once.log" 2>&1 || fail "the supervisor's round failed"
rev=$(grep -o "wrote revision [0-9]* as policy:py-supervisor" "$dir/once.log" | grep -o "[0-9]*")
[ -n "$rev" ] || fail "the supervisor wrote nothing"
grep -q "training/optimizer/learning_rate 0.08 -> 0.02.*gradient explosion: grad_norm" \
  "$dir/once.log" || fail "the supervisor's log does not say what it changed and why"
entries=$(supervisor_entries)
grep -qx "True $rev training/optimizer/learning_rate 0.02 " <<< "$entries" ||
  fail "the config log has no accepted learning_rate write of revision $rev: $entries"
grep -qx "True $rev training/regularization/grad_clip_max 0.5 " <<< "$entries" ||
  fail "the config log has no accepted grad_clip_max write of revision $rev: $entries"
[ "$(query "[e['reason'] for e in c.config_log(job) if e['revision'] == $rev][0].split(':')[0]")" \
  = "gradient explosion" ] || fail "the write's reason is not the rule's"
applied() {
  [ "$(query "c.telemetry(job)['applied']['revision']")" -ge "$rev" ] &&
    [ "$(query "[p['learning_rate'] for p in c.telemetry(job)['points']
                 if p['config_revision'] >= $rev][-1]")" = 0.02 ]
}
wait_for 30 applied || fail "the trainer never ran with revision $rev at rate 0.02"

step "frozen: refused with the hub's reason, logged, and it keeps polling"
"$TRAINVISOR" config freeze sup training/optimizer > /dev/null
supervise --poll-every 0.3 > "$dir/loop.log" 2>&1 &
sup=$!
refusals() {
  grep -c "refused (409): .*under the frozen prefix training/optimizer" "$dir/loop.log"
}
refused_twice() { [ "$(refusals)" -ge 2 ]; }
wait_for 30 refused_twice || fail "the supervisor was not refused twice under the freeze"
kill -0 "$sup" 2> /dev/null || fail "the supervisor stopped after a refusal"
entries=$(supervisor_entries)
grep -q "^False .*frozen prefix training/optimizer" <<< "$entries" ||
  fail "the refusal is not in the config log: $entries"
[ "$(query "c.config(job)['values']['training/optimizer/learning_rate']")" = 0.02 ] ||
  fail "a refused write changed the rate"

step "the job finishes: the supervisor stops by itself"
"$TRAINVISOR" config set sup training/control/early_stop true --reason "enough" > /dev/null
wait_for 60 sh -c "! kill -0 $sup 2> /dev/null" || fail "the supervisor did not stop with the job"
rc=0
wait "$sup" || rc=$?
[ "$rc" = 0 ] || fail "the supervisor exited $rc"
grep -q "job sup (.*) is stopped: done" "$dir/loop.log" ||
  fail "the supervisor did not say why it stopped"
step "ok"
