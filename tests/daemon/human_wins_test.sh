#!/usr/bin/env bash
# The human wins (precedence human > freeze > policy), as real processes: a coordinator, a host
# daemon, a tiny trainer and a plateau policy that wants to lower the learning rate all the time.
#  - a human's `config set` is followed by policy evaluations: the human's value stands for the
#    grace (here 10000 steps run with it), the policy says in its reason that it yields, and its
#    next write scales the human's value, not the rate it remembered;
#  - a frozen folder: the policy's repeated refusals are one audit row with a count (also in the
#    text of `config log`), and unfreezing applies one reduction of the live rate, not the many
#    the policy would have walked through in its head.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() {
  echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true
  echo "--- config log:" >&2; "$TRAINVISOR" config log hw 2>&1 | tail -12 >&2 || true
}

# The loss is watched in max mode, so it never improves: plateau asks for a reduction every 1500
# records. The grace here is its step bound: 10000 steps run with the human's value (no
# evaluation comes to end it sooner), longer than the policy's patience.
cat > "$dir/hw.toml" <<'TOML'
[[jobs]]
name = "hw"
model = "tiny"
seed = 1
[jobs.hyper]
training.control.max_epochs = 1000000
training.control.eval_every = 100000000
training.optimizer.learning_rate = 0.05
[[jobs.policies]]
name = "plateau"
monitor = "loss"
mode = "max"
patience = 1500
factor = 0.5
min_lr = 1e-7
human_grace_evals = 2
human_grace_steps = 10000
TOML

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_OPERATOR_NAME=ana
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/hw.toml" --port 0 \
  --stale-after 30 > "$dir/url" 2>> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(tail -5 "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
"$TRAINVISOR" host --name h1 --work-dir "$dir/work" --heartbeat-every 0.5 --poll-every 0.3 \
  --orphan-after 30 2>> "$dir/host.log" &

log_json() { "$TRAINVISOR" config log hw -o json --limit 1000; }
# policy_write_after REVISION: the revision of the first accepted plateau write after REVISION,
# with its old and new value.
policy_write_after() {
  log_json | "$PY" -c "
import json, sys
e = sorted((x for x in json.load(sys.stdin)['entries']
            if x['actor'] == 'policy:plateau' and x['accepted'] and x['revision'] > $1),
           key=lambda x: x['seq'])
assert e
print(e[0]['revision'], e[0]['old'], e[0]['new'])"
}

step "start"
wait_for 40 sh -c "'$TRAINVISOR' jobs show hw | grep -q 'status running'" || fail "the job never ran"
wait_for 30 policy_write_after 1 || fail "the policy never lowered the rate on its own"

step "a human's write stands for the grace"
human=$("$TRAINVISOR" config set hw training/optimizer/learning_rate 0.08 --reason "manual bump" |
  sed 's/revision //')
wait_for 60 policy_write_after "$human" || fail "the policy never wrote again after the grace"
read -r next old new <<< "$(policy_write_after "$human")"
# Its first write after the human's scales the human's value (the live one, not its own).
[ "$old" = 0.08 ] && [ "$new" = 0.04 ] || fail "after the human's 0.08 the policy wrote $old -> $new"
# Held for the grace: the supervisor's hold ends at step S (the trainer's first step with 0.08
# plus 10000, as the policy's yield says: "until step S"), and the policy's write was decided
# there or later. Without the hold it overrides the human right after its patience.
until=$(grep -o "held by human:ana's write of revision $human (0.08) [^:]* until step [0-9]*" \
  "$dir/host.log" | grep -o "[0-9]*$" | tail -1)
[ -n "$until" ] || fail "the policy's reason never said it yields to the human"
at=$(grep -o "learning_rate -> 0.04 (.*) \[at step [0-9]*\]" "$dir/host.log" | head -1 |
  grep -o "[0-9]*\]$" | tr -d ']')
[ -n "$at" ] && [ "$at" -ge "$until" ] ||
  fail "the policy overrode the human at step $at; the hold lasted until step $until"
grep -q "learning_rate held by human:ana's write of revision $human (0.08) .*: not reduced" \
  "$dir/host.log" || fail "the policy's reason never said it yields to the human"

step "a frozen folder: one refusal row with a count"
"$TRAINVISOR" config freeze hw training/optimizer >/dev/null
# The freeze's own entry: a refusal may be logged before this line reads the log.
frozen_at=$(log_json | "$PY" -c "import json,sys; print(max(x['seq'] for x in json.load(sys.stdin)['entries'] if x['kind'] == 'freeze'))")
refusals() {  # rows, the highest count, distinct values: of the refusals since the freeze
  log_json | "$PY" -c "
import json, sys
e = [x for x in json.load(sys.stdin)['entries'] if x['seq'] > $frozen_at and not x['accepted']]
print(len(e), max([x['count'] for x in e] or [0]), len({json.dumps(x['new']) for x in e}))"
}
counted_up_to() { [ "$(refusals | cut -d' ' -f2)" -ge "$1" ]; }
wait_for 60 counted_up_to 3 || fail "no repeated refusal while frozen: $(refusals)"
read -r rows count values <<< "$(refusals)"
# One row per value refused: the same refusal again is counted, not logged again. (A decision
# made just before the host saw the policy's last accepted write may refuse one other value.)
[ "$rows" = "$values" ] && [ "$values" -le 2 ] ||
  fail "the repeated refusals are not one row each: $rows rows of $values values, count $count"
"$TRAINVISOR" config log hw | grep -qE "REFUSED: .*frozen prefix training/optimizer.*\(x[0-9]+\)" ||
  fail "config log does not show the count"

step "unfreezing applies one reduction of the live rate"
live=$("$TRAINVISOR" config get hw training/optimizer/learning_rate)
unfrozen_rev=$("$TRAINVISOR" config get hw -o json | field "['revision']")
"$TRAINVISOR" config unfreeze hw training/optimizer >/dev/null
wait_for 30 policy_write_after "$unfrozen_rev" || fail "the policy did not write after the unfreeze"
read -r _ old new <<< "$(policy_write_after "$unfrozen_rev")"
"$PY" -c "import sys; sys.exit(not (float('$old') == float('$live') and abs(float('$new') - float('$live') / 2) < 1e-15))" ||
  fail "after unfreeze the policy wrote $old -> $new; the live rate was $live"

"$TRAINVISOR" jobs cancel hw >/dev/null
step "ok"
