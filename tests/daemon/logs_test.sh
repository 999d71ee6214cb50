#!/usr/bin/env bash
# `trainvisor logs JOB -f` follows a running trainer's log from its host through the coordinator,
# as real processes (a coordinator, a host daemon, an mlp trainer):
#  - lines appear while the trainer runs, each once and in order (epochs only go up);
#  - a cancel ends the job: the follower prints the trainer's last lines (sent when it exits)
#    and stops by itself;
#  - `logs` without -f prints the tail and returns; an unknown job is refused by name.
# The daemons log JSON lines here (stderr is a file), checked with a parser.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() {
  echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true
  echo "--- follower:" >&2; tail -20 "$dir/follow.out" >&2 || true
}
cat > "$dir/fleet.toml" <<'TOML'
[[jobs]]
name = "talky"
model = "mlp"
seed = 1
[jobs.params]
hidden = 32
layers = 1
[jobs.data]
max_train_samples = 2000
max_val_samples = 500
[jobs.hyper]
training.control.batch_size = 100
training.control.max_epochs = 100000
TOML
export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token
unset TRAINVISOR_LOG_FORMAT
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" --port 0 \
  > "$dir/url" 2>> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(tail -5 "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
"$TRAINVISOR" host --name h1 --work-dir "$dir/work" --heartbeat-every 0.3 --poll-every 0.2 \
  2>> "$dir/host.log" &

step "follow the trainer's log"
"$TRAINVISOR" logs talky -f --every 0.2 > "$dir/follow.out" 2> "$dir/follow.err" &
follower=$!
epochs() { grep -c '^trainer: epoch [0-9]* done' "$dir/follow.out" || true; }
followed_more_than() { [ "$(epochs)" -gt "$1" ]; }  # evaluated at each try of wait_for
wait_for 60 followed_more_than 2 || fail "no epoch lines followed: $(cat "$dir/follow.err")"
first=$(epochs)
wait_for 30 followed_more_than "$first" || fail "the follower stopped taking new lines"

step "cancel: the last lines arrive and the follower ends by itself"
"$TRAINVISOR" jobs cancel talky > /dev/null
wait_for 30 bash -c "! kill -0 $follower 2>/dev/null" || fail "logs -f did not end with the job"
wait "$follower" || fail "logs -f exited $?: $(cat "$dir/follow.err")"
grep -q '^trainer: interrupted at step [0-9]*: checkpoint written' "$dir/follow.out" ||
  fail "the trainer's last lines were not followed"
"$PY" - "$dir/follow.out" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
epochs = [int(m.group(1)) for l in lines if (m := re.match(r"trainer: epoch (\d+) done", l))]
assert epochs == sorted(set(epochs)), f"epoch lines repeated or out of order: {epochs}"
assert len(lines) == len(set(lines)) or all(l.startswith("...") for l in lines if lines.count(l) > 1), \
    "a line was printed twice"
print(f"followed {len(lines)} lines, epochs {epochs[0]}..{epochs[-1]}")
PY

step "the tail without -f, and an unknown job"
"$TRAINVISOR" logs talky > "$dir/tail.out"
tail -1 "$dir/tail.out" | grep -q '^trainer: ' || fail "logs printed no tail: $(cat "$dir/tail.out")"
expect_failure "$dir/err" "no job named or with an id starting 'nope'" "$TRAINVISOR" logs nope

step "the daemons' stderr is JSON lines, one object each"
"$PY" - "$dir/host.log" "$dir/coordinator.log" <<'PY'
import json, sys
for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path) if l.strip()]
    assert rows, f"{path}: no log lines"
    for r in rows:
        assert {"time", "level", "component", "message"} <= r.keys(), (path, r)
    print(f"{path.rsplit('/', 1)[1]}: {len(rows)} JSON lines, components {sorted({r['component'] for r in rows})}")
host = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
claimed = [r for r in host if r["message"].startswith("claimed talky")]
assert claimed and len(claimed[0]["job"]) == 64 and claimed[0]["event"] == "claimed", claimed
PY
echo "logs_test: ok"
