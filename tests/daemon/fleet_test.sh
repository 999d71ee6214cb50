#!/usr/bin/env bash
# The fleet as real processes: a coordinator, host daemons, trainers, the operator CLI.
#  - a host killed with SIGKILL while training: its trainer, seeing the block's heartbeat stop,
#    checkpoints and stops after --orphan-after; the job is pending again after the stale timeout,
#    and another host takes it (attempt 2);
#  - an operator cancels that running job: the host stops the trainer, the job is cancelled;
#  - another host completes the rest and uploads bundles; explain names the constraint that keeps
#    the CUDA-only job off a CPU host; reload is idempotent; bad tokens are refused.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT

cat > "$dir/fleet.toml" <<'TOML'
[[jobs]]
name = "long"
model = "tiny"
seed = 1
priority = 10
[jobs.hyper]
training.control.max_epochs = 100000

[[jobs]]
name = "short-1"
model = "tiny"
seed = 2
[jobs.hyper]
training.control.max_epochs = 2

[[jobs]]
name = "short-2"
model = "tiny"
seed = 3
[jobs.hyper]
training.control.max_epochs = 2

[[jobs]]
name = "gpu-only"
model = "tiny"
require_cuda = true
TOML

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" --stale-after 1.5 \
  > "$dir/url" 2> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(cat "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
# Without --bind it listens on loopback only.
[ "$(listening_address "${TRAINVISOR_COORDINATOR##*:}")" = 0100007F ] \
  || fail "the default bind is not loopback only: $(listening_address "${TRAINVISOR_COORDINATOR##*:}")"
status_of() { "$TRAINVISOR" jobs show "$1" -o json | field "['status']"; }
attempt_of() { "$TRAINVISOR" jobs show "$1" -o json | field "['attempt']"; }

[ "$("$TRAINVISOR" jobs list -o json | field "['jobs'].__len__()")" = 4 ] || fail "not 4 jobs"
# Tokens: a wrong operator token changes nothing.
expect_failure "$dir/err" "X-Operator-Token" env TRAINVISOR_OPERATOR_TOKEN=wrong "$TRAINVISOR" jobs cancel long
[ "$(status_of long)" = pending ] || fail "a refused cancel changed the job: $(status_of long)"

step "host A takes the long job"
# Host A takes the long job (highest priority) and is killed with SIGKILL while it trains.
"$TRAINVISOR" host --name host-a --work-dir "$dir/a" --heartbeat-every 0.3 --poll-every 0.3 \
  --orphan-after 2 2> "$dir/a.log" &
a=$!
wait_for 20 sh -c "[ \"\$('$TRAINVISOR' jobs show long -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = running ]" \
  || fail "host A never ran the long job: $(cat "$dir/a.log")"
long_id=$("$TRAINVISOR" jobs show long -o json | field "['id']")
wait_for 10 test -s "$dir/a/$long_id/holder.json" || fail "host A recorded no trainer for the long job"
trainer=$(holder_pid "$dir/a" "$long_id")
[ "$(ps -o ppid= -p "$trainer" | tr -d ' ')" = "$a" ] || fail "the long job's trainer $trainer is not host A's child"
kill -9 "$a"
wait_for 10 sh -c "! kill -0 $trainer" || fail "the orphaned trainer did not stop"
grep -q "no heartbeat from the config agent" "$dir"/a/*/trainer.log \
  || fail "the orphaned trainer did not say why it stopped: $(tail -3 "$dir"/a/*/trainer.log)"
wait_for 10 sh -c "[ \"\$('$TRAINVISOR' jobs show long -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = pending ]" \
  || fail "the long job never went back to pending: $(status_of long)"

step "host B takes over"
# Host B takes it over (attempt 2, resuming host A's checkpoint is not possible: other disk) ...
"$TRAINVISOR" host --name host-b --work-dir "$dir/b" --heartbeat-every 0.3 --poll-every 0.3 \
  2> "$dir/b.log" &
b=$!
wait_for 20 sh -c "[ \"\$('$TRAINVISOR' jobs show long -o json | $PY -c 'import json,sys; j=json.load(sys.stdin); print(j[\"status\"], j[\"worker\"])')\" = 'running host-b' ]" \
  || fail "host B did not take the long job over: $(cat "$dir/b.log")"
[ "$(attempt_of long)" = 2 ] || fail "attempt is $(attempt_of long), not 2"
# ... and an operator cancels it: the trainer stops and the job ends cancelled.
"$TRAINVISOR" jobs cancel long | grep -q "host host-b stops its trainer" || fail "cancel did not reach the host"
wait_for 20 sh -c "grep -q 'cancelled long' '$dir/b.log'" || fail "host B never stopped the trainer: $(cat "$dir/b.log")"
[ "$(status_of long)" = cancelled ] || fail "long is $(status_of long)"

step "short jobs"
# Host B goes on with the short jobs; the CUDA-only one stays pending, and explain says why.
wait_for 60 sh -c "[ \"\$('$TRAINVISOR' jobs show short-2 -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = completed ]" \
  || fail "short-2 did not complete: $(cat "$dir/b.log")"
[ "$(status_of short-1)" = completed ] || fail "short-1 is $(status_of short-1)"
"$TRAINVISOR" artifacts short-1 | grep -q "bundle.tvb" || fail "no bundle for short-1"
[ "$(status_of gpu-only)" = pending ] || fail "gpu-only is $(status_of gpu-only)"
"$TRAINVISOR" jobs explain gpu-only | grep -q "host-b *require_cuda: the host has no CUDA device" \
  || fail "explain: $("$TRAINVISOR" jobs explain gpu-only)"
"$TRAINVISOR" workers | grep -q "host-b" || fail "host-b not in workers"
"$TRAINVISOR" reload --dry-run | grep -q "added: none" || fail "reload --dry-run: $("$TRAINVISOR" reload --dry-run)"
"$TRAINVISOR" status -o json | field "['jobs']['completed']" | grep -qx 2 || fail "status: $("$TRAINVISOR" status)"

step "config hub"
# The config hub through the CLI: a human write is a new, audited revision; a frozen prefix shows.
TRAINVISOR_OPERATOR_NAME=ana "$TRAINVISOR" config set gpu-only training/optimizer/learning_rate 0.02 --reason "test" \
  | grep -qx "revision 2" || fail "config set"
"$TRAINVISOR" config freeze gpu-only training/optimizer | grep -q training/optimizer || fail "config freeze"
"$TRAINVISOR" config get gpu-only training/optimizer/learning_rate | grep -qx 0.02 || fail "config get"
"$TRAINVISOR" config log gpu-only | grep -q "human:ana .*training/optimizer/learning_rate" || fail "config log"
expect_failure "$dir/err" "training/optimizer/learning_rate.*(range|between|<=|maximum)" \
  "$TRAINVISOR" config set gpu-only training/optimizer/learning_rate 50 --reason x
# The log pages by sequence number: --after skips what was seen, --limit bounds a page, and a
# full page says where the next one starts.
for v in 0.03 0.04 0.05; do
  TRAINVISOR_OPERATOR_NAME=ana "$TRAINVISOR" config set gpu-only training/optimizer/learning_rate "$v" \
    --reason "page $v" >/dev/null
done
seqs() { "$PY" -c "import json,sys; print(' '.join(str(e['seq']) for e in json.load(sys.stdin)['entries']))"; }
all=$("$TRAINVISOR" config log gpu-only -o json | seqs)
read -r -a all_seqs <<< "$all"
[ "${#all_seqs[@]}" -ge 5 ] || fail "config log has only: $all"
page=$("$TRAINVISOR" config log gpu-only -o json --after "${all_seqs[1]}" --limit 2 | seqs)
[ "$page" = "${all_seqs[2]} ${all_seqs[3]}" ] \
  || fail "config log --after ${all_seqs[1]} --limit 2 gave '$page' of '$all'"
"$TRAINVISOR" config log gpu-only --after "${all_seqs[1]}" --limit 2 | grep -qx "(more: --after ${all_seqs[3]})" \
  || fail "a full page does not say where the next starts: $("$TRAINVISOR" config log gpu-only --after "${all_seqs[1]}" --limit 2)"
n=${#all_seqs[@]}
last=$("$TRAINVISOR" config log gpu-only -o json --after "${all_seqs[n-2]}" | seqs)
[ "$last" = "${all_seqs[n-1]}" ] || fail "config log --after ${all_seqs[n-2]} gave '$last' of '$all'"
"$TRAINVISOR" config log gpu-only --after "${all_seqs[n-2]}" | grep -q "0.04 -> 0.05" \
  || fail "the last page lacks the newest write: $("$TRAINVISOR" config log gpu-only --after "${all_seqs[n-2]}")"

step "host B SIGTERM"
# SIGTERM: host B stops cleanly.
kill -TERM "$b"
wait_for 20 sh -c "! kill -0 $b" || fail "host B did not stop on SIGTERM"
grep -q "host: done" "$dir/b.log" || fail "host B did not report: $(tail -3 "$dir/b.log")"
step "TLS"
# TLS: a coordinator with a certificate; the CLI and a host verify it with --ca-file and refuse
# it without.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost" -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1
"$TRAINVISOR" coordinator --data-dir "$dir/tls-data" --manifest "$dir/fleet.toml" \
  --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" > "$dir/tls-url" 2> "$dir/tls.log" &
wait_for 10 test -s "$dir/tls-url" || fail "TLS coordinator did not start: $(cat "$dir/tls.log")"
tls_url="https://localhost:$(head -1 "$dir/tls-url" | sed 's/.*://')"
"$TRAINVISOR" status --coordinator "$tls_url" --ca-file "$dir/cert.pem" -o json | field "['jobs']['pending']" \
  | grep -qx 4 || fail "status over TLS"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost" -keyout "$dir/other-key.pem" -out "$dir/other.pem" >/dev/null 2>&1
expect_failure "$dir/err" "certificate verify failed" \
  "$TRAINVISOR" status --coordinator "$tls_url" --ca-file "$dir/other.pem"
expect_failure "$dir/err" "reading from http://127.0.0.1" \
  "$TRAINVISOR" status --coordinator "http://127.0.0.1:$(head -1 "$dir/tls-url" | sed 's/.*://')"

step "up"
# `trainvisor up`: the embedded default runs a manifest to the end and prints the final table.
cat > "$dir/up.toml" <<'TOML'
[[jobs]]
name = "up-a"
model = "tiny"
[jobs.hyper]
training.control.max_epochs = 2
[[jobs.policies]]
name = "plateau"
[[jobs]]
name = "up-b"
model = "tiny"
seed = 5
TOML
timeout 120 "$TRAINVISOR" up "$dir/up.toml" --data-dir "$dir/up-data" > "$dir/up.out" 2> "$dir/up.err" \
  || fail "up failed: $(tail -5 "$dir/up.err")"
grep -qE "^up-a +completed +1 " "$dir/up.out" || fail "up table: $(cat "$dir/up.out")"
grep -qE "^up-b +completed +1 " "$dir/up.out" || fail "up table: $(cat "$dir/up.out")"
grep -q "JOB.*STATUS.*EPOCH.*LOSS.*VAL_ACC.*LR" "$dir/up.err" || fail "no progress board"
echo PASS
