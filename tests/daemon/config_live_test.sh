#!/usr/bin/env bash
# The live config loop as real processes. First `trainvisor up` with a tiny job: config set ->
# the trainer reports the new rate at a step boundary with the new revision; desired == applied.
# Then a coordinator (whose config stream loses every 2nd
# delta and drops its connection after every 9th message, a test hook), a host daemon, a tiny
# trainer with a plateau policy that keeps writing, and the operator CLI.
#  - config set -> the trainer applies the new value at a step boundary with the new revision
#    (its telemetry says so); desired == applied; the block equals the hub's tree;
#  - freeze: the policy's writes are refused and audited, a human's goes through; unfreeze: the
#    policy's next write applies;
#  - invalid writes (wrong type, out of range, unknown key): an error naming it, no revision;
#  - the coordinator killed while the job trains: the trainer keeps stepping, the policy's writes
#    wait in the host; restarted, the agent resumes, and neither those writes nor one made right
#    away are lost;
#  - the coordinator hung (SIGSTOP): the trainer keeps stepping; resumed, a write gets through;
#  - lost deltas and dropped streams: gaps detected, resynced, trees equal;
#  - the host daemon killed and started again: it adopts the running trainer and its block.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT  # trainers outlive a killed host by design: they are killed too
on_fail() { echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true; }

cat > "$dir/live.toml" <<'TOML'
[[jobs]]
name = "live"
model = "tiny"
seed = 1
[jobs.hyper]
training.control.max_epochs = 1000000
training.optimizer.learning_rate = 0.05
# Never "improves" (loss is watched in max mode), so it lowers the rate every few thousand steps.
[[jobs.policies]]
name = "plateau"
monitor = "loss"
mode = "max"
patience = 4000
cooldown = 4000
factor = 0.99
TOML

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_OPERATOR_NAME=ana
# The first start binds port 0 and prints its URL; a restart takes the same port again, since the
# host's agent knows only that URL.
port=0
start_coordinator() {
  : > "$dir/url"
  "$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/live.toml" --port "$port" \
    --stale-after 30 --test-stream-fault skip:2,close:9 > "$dir/url" 2>> "$dir/coordinator.log" &
  coordinator=$!
  wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(tail -5 "$dir/coordinator.log")"
  export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
  port=${TRAINVISOR_COORDINATOR##*:}
}
start_host() {
  "$TRAINVISOR" host --name h1 --work-dir "$dir/work" --heartbeat-every 0.5 --poll-every 0.3 \
    --orphan-after 30 2>> "$dir/host.log" &
  host=$!
}

block() { "$TRAINVISOR" shm inspect "$id" -o json; }
block_get() { block | "$PY" -c "import json,sys; b=json.load(sys.stdin); print([k['value'] for k in b['keys'] if k['path']=='$1'][0])"; }
steps_done() { block | field "['telemetry']['head']"; }
steps_beyond() { [ "$(steps_done)" -gt "$1" ]; }  # steps_beyond N: the trainer has passed step N
desired() { "$TRAINVISOR" config get live -o json | field "['revision']"; }
applied() { "$TRAINVISOR" jobs show live -o json | field "['telemetry']['applied']['revision']"; }
hub_get() { "$TRAINVISOR" config get live "$1"; }
in_sync() {  # desired == applied, and the block holds the hub's revision and learning rate
  local d; d=$(desired)
  [ "$(applied)" = "$d" ] && [ "$(block_get trainvisor/revision)" = "$d" ] &&
    "$PY" -c "import sys; sys.exit(abs(float('$(block_get training/optimizer/learning_rate)') - float('$(hub_get training/optimizer/learning_rate)')) > 1e-15)"
}
set_lr() {  # set_lr VALUE -> prints the revision
  "$TRAINVISOR" config set live training/optimizer/learning_rate "$1" --reason "test $1" | sed 's/revision //'
}

check_applied_at() {  # check_applied_at REVISION RATE: the first step with REVISION ran at RATE
  "$TRAINVISOR" jobs show live -o json | "$PY" -c "
import json, sys
t = json.load(sys.stdin)['telemetry']
p = [p for p in t['points'] if p['config_revision'] == $1]
assert p, 'no telemetry point with revision $1'
assert abs(p[0]['learning_rate'] - $2) < 1e-12, p[0]
assert t['applied']['since_step'] <= p[0]['step'] or t['applied']['revision'] > $1, t['applied']
"
}
applied_reached() {  # applied_reached REVISION
  [ "$("$TRAINVISOR" jobs show live -o json | "$PY" -c "import json,sys; a=json.load(sys.stdin)['telemetry']['applied']; print(bool(a) and a['revision'] >= $1)")" = True ]
}

step "up"
sed -e '/^\[\[jobs.policies\]\]/,$d' "$dir/live.toml" > "$dir/up.toml"  # no policy: only our writes
"$TRAINVISOR" up "$dir/up.toml" --data-dir "$dir/up" --orphan-after 10 > "$dir/up.out" 2> "$dir/up.err" &
up=$!
wait_for 20 test -s "$dir/up/coordinator.env" || fail "up did not start: $(cat "$dir/up.err")"
(
  set -a; . "$dir/up/coordinator.env"; set +a
  wait_for 30 sh -c "'$TRAINVISOR' jobs show live | grep -q 'status running'" || fail "up never ran the job"
  rev=$(set_lr 0.02)
  wait_for 20 applied_reached "$rev" || fail "up: revision $rev never applied"
  check_applied_at "$rev" 0.02 || fail "up: the trainer did not report revision $rev at 0.02"
  [ "$(desired)" = "$rev" ] && [ "$(applied)" = "$rev" ] || fail "up: desired $(desired), applied $(applied)"
  "$TRAINVISOR" jobs cancel live >/dev/null
)
wait_for 30 sh -c "! kill -0 $up" || fail "up did not finish after the cancel"

step "start"
start_coordinator
start_host
wait_for 30 sh -c "[ \"\$('$TRAINVISOR' jobs show live -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = running ]" \
  || fail "the job never ran"
id=$("$TRAINVISOR" jobs show live -o json | field "['id']")
wait_for 10 test -s "$dir/work/$id/holder.json" || fail "the host recorded no trainer"
trainer=$(holder_pid "$dir/work" "$id")
kill -0 "$trainer" || fail "no trainer process $trainer"

step "a human write reaches the trainer at a step boundary"
rev=$(set_lr 0.02)
wait_for 20 applied_reached "$rev" \
  || fail "revision $rev never applied: $("$TRAINVISOR" jobs show live -o json | field "['telemetry']['applied']")"
check_applied_at "$rev" 0.02 || fail "the trainer did not report revision $rev at learning rate 0.02"
# Two keys in one revision: one batch in the block.
rev=$("$TRAINVISOR" config set live training/optimizer/momentum 0.5 \
  --also training/regularization/grad_clip_max=2.5 --reason batch | sed 's/revision //')
wait_for 20 sh -c "[ \"\$('$TRAINVISOR' shm inspect $id -o json | $PY -c 'import json,sys; k={e[\"path\"]: e[\"value\"] for e in json.load(sys.stdin)[\"keys\"]}; print(k[\"trainvisor/revision\"] >= $rev and k[\"training/optimizer/momentum\"], k[\"training/regularization/grad_clip_max\"])')\" = '0.5 2.5' ]" \
  || fail "the batch of revision $rev did not reach the block"
"$TRAINVISOR" config log live -o json | "$PY" -c "
import json, sys
e = [x for x in json.load(sys.stdin)['entries'] if x['revision'] == $rev and x['accepted']]
assert sorted(x['path'] for x in e) == ['training/optimizer/momentum', 'training/regularization/grad_clip_max'], e
" || fail "the batch is not one revision in the log"

step "freeze refuses the policy, not the human"
"$TRAINVISOR" config freeze live training/optimizer >/dev/null
wait_for 40 sh -c "'$TRAINVISOR' config log live -o json | $PY -c '
import json,sys
e=json.load(sys.stdin)[\"entries\"]
sys.exit(not any(x[\"actor\"]==\"policy:plateau\" and not x[\"accepted\"] and \"frozen prefix\" in x[\"refusal\"] for x in e))'" \
  || fail "no refused policy write while frozen: $("$TRAINVISOR" config log live | tail -5)"
grep -q "not applied: the coordinator refused it (409)" "$dir/host.log" || fail "the host did not report the refusal"
human=$(set_lr 0.03)
wait_for 20 in_sync || fail "the human write under a frozen prefix was not applied"
"$TRAINVISOR" config unfreeze live training/optimizer >/dev/null
unfrozen_at=$(desired)
wait_for 40 sh -c "'$TRAINVISOR' config log live -o json | $PY -c '
import json,sys
e=json.load(sys.stdin)[\"entries\"]
sys.exit(not any(x[\"actor\"]==\"policy:plateau\" and x[\"accepted\"] and x[\"revision\"] > $unfrozen_at for x in e))'" \
  || fail "the policy's write after unfreeze did not apply"
# Frozen again for the rest: only this script's writes move the tree, so the checks can compare.
"$TRAINVISOR" config freeze live training/optimizer >/dev/null

step "invalid writes change nothing"
before=$(desired)
for bad in "training/optimizer/learning_rate abc" "training/optimizer/learning_rate 50" \
           "training/optimizer/learnin_rate 0.1"; do
  # shellcheck disable=SC2086
  if "$TRAINVISOR" config set live $bad --reason bad 2> "$dir/err"; then fail "accepted: $bad"; fi
  grep -q "training/optimizer/learnin\?g\?_\?rate" "$dir/err" || fail "error does not name the key: $(cat "$dir/err")"
done
grep -q "did you mean" "$dir/err" || fail "no suggestion for an unknown key: $(cat "$dir/err")"
# training/optimizer is frozen, so the policy cannot have written meanwhile: no new revision.
[ "$(desired)" = "$before" ] || fail "an invalid write made revision $(desired) (was $before)"
case "$(hub_get training/optimizer/learning_rate)" in abc|50|50.0) fail "a bad value was stored" ;; esac

step "the coordinator dies while the job trains"
"$TRAINVISOR" config unfreeze live training/optimizer >/dev/null  # the policy writes meanwhile
kill -9 "$coordinator"
wait "$coordinator" 2>/dev/null || true
s0=$(steps_done)
wait_for 20 steps_beyond $((s0 + 200)) || fail "the trainer stopped stepping without its coordinator ($s0 -> $(steps_done))"
wait_for 20 grep -q "queued: the coordinator is unreachable" "$dir/host.log" \
  || fail "no policy write was made (and queued) while the coordinator was down"
start_coordinator
rev=$(set_lr 0.011)  # made before the agent is back: must not be lost
wait_for 30 grep -q "queued write applied as revision" "$dir/host.log" \
  || fail "the policy's writes made during the outage were lost"
"$TRAINVISOR" config freeze live training/optimizer >/dev/null
wait_for 30 in_sync || fail "after the restart: desired $(desired), applied $(applied), block $(block_get trainvisor/revision)"
"$TRAINVISOR" config log live -o json | "$PY" -c "
import json, sys
e = json.load(sys.stdin)['entries']
assert any(x['revision'] == $rev and x['actor'] == 'human:ana' and x['accepted'] for x in e), 'r$rev'
" || fail "the write made at the restart was lost"

step "the coordinator hangs (SIGSTOP) while the job trains"
kill -STOP "$coordinator"
stopped_at=$SECONDS
s0=$(steps_done)
wait_for 30 steps_beyond $((s0 + 200)) || { kill -CONT "$coordinator"; fail "the trainer stopped stepping while its coordinator hung ($s0 -> $(steps_done))"; }
# The hang lasts 4 s however fast the trainer is (the fault's length, not a synchronisation):
# long enough for the host's heartbeats and telemetry to meet a coordinator that never answers.
while [ $((SECONDS - stopped_at)) -lt 4 ]; do sleep 0.2; done
kill -CONT "$coordinator"
set_lr 0.012 >/dev/null
wait_for 40 in_sync || fail "after the hang: desired $(desired), applied $(applied), block $(block_get trainvisor/revision)"

step "lost deltas and dropped streams are resynced"
for v in 0.021 0.022 0.023 0.024 0.025 0.026 0.027 0.028; do set_lr "$v" >/dev/null; done
wait_for 30 in_sync || fail "trees differ: hub r$(desired) vs block r$(block_get trainvisor/revision)"
grep -q "config stream gap" "$dir/host.log" || fail "no gap was detected although deltas were lost"

step "the host daemon dies and comes back"
kill -9 "$host"
wait "$host" 2>/dev/null || true
s0=$(steps_done)
wait_for 20 steps_beyond $((s0 + 200)) || fail "the trainer stopped stepping when its host died"
kill -0 "$trainer" || fail "the trainer died with its host"
start_host
wait_for 20 grep -q "adopted its running trainer (pid $trainer)" "$dir/host.log" \
  || fail "the restarted host did not adopt the trainer"
set_lr 0.031 >/dev/null
wait_for 20 in_sync || fail "the adopted block did not follow the hub"
s0=$(steps_done)
wait_for 20 steps_beyond $((s0 + 200)) || fail "the adopted trainer is not stepping ($s0 -> $(steps_done))"

d=$(desired)
"$TRAINVISOR" jobs list | grep -qE "live +tiny +running +[0-9]+ +$d/$d " \
  || fail "jobs list does not show applied/desired $d/$d: $("$TRAINVISOR" jobs list)"

step "cancel"
"$TRAINVISOR" jobs cancel live >/dev/null
wait_for 30 sh -c "! kill -0 $trainer" || fail "the trainer did not stop on cancel"
"$TRAINVISOR" jobs show live | grep -q "config: desired revision" || fail "jobs show lacks the config line"
step "ok"
