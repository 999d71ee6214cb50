#!/usr/bin/env bash
# A job's lifecycle as real processes (a coordinator, a host daemon, trainers, the operator CLI):
#  - a job stopped by a policy ends `stopped`, naming the policy and its reason (jobs show, list);
#  - `config set` on a finished job is refused with a 409 naming the job and its status;
#  - `jobs requeue` of a completed job trains again from step 0 (a real final loss in the new
#    bundle); `jobs requeue --from-checkpoint` resumes the checkpoint instead;
#  - a reload that changes a job's hyperparameter reports the replaced job by name and ids, and the
#    now ambiguous name is an error listing the ids with their statuses (jobs show, config set);
#  - a host with a wrong worker token (it cannot enrol) stops at once, non-zero, naming the
#    coordinator.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() { echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true; }

manifest() {  # manifest MAX_EPOCHS_OF_SHORT
  cat > "$dir/fleet.toml" <<TOML
[[jobs]]
name = "short"
model = "tiny"
seed = 1
[jobs.hyper]
training.control.max_epochs = $1

# The loss never improves by 1e6, so after 3 records the policy sets early_stop.
[[jobs]]
name = "stops"
model = "tiny"
seed = 2
[jobs.hyper]
training.control.max_epochs = 100000
[[jobs.policies]]
name = "early_stopping"
monitor = "loss"
min_delta = 1e6
patience = 3
TOML
}
manifest 2

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_OPERATOR_NAME=ana
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" \
  > "$dir/url" 2> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(cat "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
start_host() {
  "$TRAINVISOR" host --name h1 --work-dir "$dir/work" --slots 2 --heartbeat-every 0.5 \
    --poll-every 0.3 2>> "$dir/host.log" &
  host=$!
}
status_of() { "$TRAINVISOR" jobs show "$1" -o json | field "['status']"; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
short_id=$("$TRAINVISOR" jobs show short -o json | field "['id']")
# The last line of the trainer's summary (its stdout, in the job folder's log).
summary() { grep '^{"bundle"' "$dir/work/$short_id/trainer.log" | tail -1 | field "$1"; }
# bundle_metric KEY: a metric the bundle's header records.
bundle_metric() {
  "$PY" - "$dir/work/$short_id/bundle.tvb" "$1" <<'PYEOF'
import json, sys
with open(sys.argv[1], "rb") as f:
    assert f.readline() == b"TVBUNDLE1\n"
    n = int(f.readline())
    print(json.dumps(json.loads(f.read(n))["metrics"][sys.argv[2]]))
PYEOF
}

step "a policy stops a job; the other completes"
start_host
wait_for 120 is_status stops stopped || fail "stops is $(status_of stops), not stopped"
wait_for 120 is_status short completed || fail "short is $(status_of short), not completed"
[ "$("$TRAINVISOR" jobs show stops -o json | field "['stopped_by']")" = policy:early_stopping ] \
  || fail "stopped_by: $("$TRAINVISOR" jobs show stops -o json)"
[ -n "$("$TRAINVISOR" jobs show stops -o json | field "['stop_reason']")" ] || fail "no stop reason"
"$TRAINVISOR" jobs show stops | grep -q "status stopped" || fail "jobs show: $("$TRAINVISOR" jobs show stops)"
"$TRAINVISOR" jobs show stops | grep -q "stopped by policy:early_stopping: ." \
  || fail "jobs show names no stopper: $("$TRAINVISOR" jobs show stops)"
"$TRAINVISOR" jobs list | grep -qE "^[0-9a-f]{12} +stops +tiny +stopped " || fail "jobs list: $("$TRAINVISOR" jobs list)"
"$TRAINVISOR" jobs list | grep -q "stopped by policy:early_stopping" || fail "jobs list: $("$TRAINVISOR" jobs list)"
"$TRAINVISOR" status -o json | field "['jobs']['stopped']" | grep -qx 1 || fail "status: $("$TRAINVISOR" status)"

step "config set on a finished job"
before=$("$TRAINVISOR" config log short -o json | field "['entries'].__len__()")
expect_failure "$dir/err" "job 'short' \($short_id\) is completed" \
  "$TRAINVISOR" config set short training/optimizer/learning_rate 0.01 --reason late
[ "$("$TRAINVISOR" config log short -o json | field "['entries'].__len__()")" = "$before" ] \
  || fail "a refused write was recorded"

step "requeue starts over"
first_steps=$(summary "['steps']")
[ "$first_steps" -gt 0 ] || fail "the first run made no steps"
"$TRAINVISOR" jobs requeue short | grep -q "starts over from step 0" || fail "requeue output"
wait_for 120 is_status short completed || fail "the requeued job is $(status_of short)"
grep -q "started short (${short_id:0:12}) started from step 0" "$dir/host.log" \
  || fail "the host did not start over: $(grep "short" "$dir/host.log" | tail -3)"
! grep -q "resumed at step" "$dir/work/$short_id/trainer.log" || fail "the requeued job resumed"
[ "$(summary "['steps']")" = "$first_steps" ] || fail "the new run made $(summary "['steps']") steps, not $first_steps"
[ "$(bundle_metric final_loss)" != null ] || fail "the new bundle has no final loss"

step "requeue --from-checkpoint resumes"
"$TRAINVISOR" jobs requeue short --from-checkpoint | grep -q "resuming from its checkpoint" \
  || fail "requeue --from-checkpoint output"
wait_for 120 sh -c "grep -q 'resumed at step' '$dir/work/$short_id/trainer.log'" \
  || fail "requeue --from-checkpoint did not resume: $(tail -3 "$dir/work/$short_id/trainer.log")"
wait_for 60 is_status short completed || fail "the resumed job is $(status_of short)"
kill -TERM "$host"
wait_for 20 sh -c "! kill -0 $host" || fail "the host did not stop on SIGTERM"

step "reload with a changed hyperparameter"
manifest 3
"$TRAINVISOR" reload > "$dir/reload.out"
new_id=$("$TRAINVISOR" jobs list -o json | "$PY" -c "
import json, sys
print([j['id'] for j in json.load(sys.stdin)['jobs'] if j['name'] == 'short' and j['id'] != '$short_id'][0])")
grep -qx "changed: short is now job ${new_id:0:12}, replacing ${short_id:0:12} (kept; give an id to reach it)" \
  "$dir/reload.out" || fail "reload did not report the change: $(cat "$dir/reload.out")"
"$TRAINVISOR" reload -o json | field "['replaced']" | grep -q '^\[\]$' || fail "a second reload replaced again"
for cmd in "jobs show short" "config set short training/optimizer/learning_rate 0.01 --reason x"; do
  # shellcheck disable=SC2086
  expect_failure "$dir/err" "'short' names 2 jobs" "$TRAINVISOR" $cmd
  grep -q "$short_id (completed)" "$dir/err" || fail "$cmd: $(cat "$dir/err")"
  grep -q "$new_id (pending)" "$dir/err" || fail "$cmd: $(cat "$dir/err")"
done
[ "$("$TRAINVISOR" jobs show "${new_id:0:8}" -o json | field "['status']")" = pending ] || fail "by id prefix"

step "a wrong worker token"
set +e
timeout 20 env TRAINVISOR_WORKER_TOKEN=wrong "$TRAINVISOR" host --name h2 --work-dir "$dir/h2" \
  --poll-every 0.3 --exit-when-idle 2> "$dir/h2.log"
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a host with a refused token exited $rc: $(cat "$dir/h2.log")"
grep -q "the coordinator at $TRAINVISOR_COORDINATOR refused to enrol host h2 (HTTP 401" "$dir/h2.log" \
  || fail "the host did not say why: $(cat "$dir/h2.log")"
[ "$(grep -c "claim refused\|failed  ()" "$dir/h2.log")" = 0 ] || fail "the host retried: $(cat "$dir/h2.log")"
echo PASS
