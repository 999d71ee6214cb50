#!/usr/bin/env bash
# The operator CLI's answers, against a real coordinator (no host: the job stays pending):
#  - a mistyped subcommand, at any level: "unknown command 'X'; did you mean 'Y'?", exit code 2;
#  - config freeze of a prefix no trainer knob is under: refused, naming the closest prefix;
#  - a coordinator with --no-public-reads: the CLI reads with its operator token or a read token,
#    and without one is refused;
#  - config log: a UTC time on each line, newest first (--oldest-first: the other way), JSON as
#    the coordinator pages it;
#  - jobs show of a job `up` trained: state, times, duration, final metrics, the spec as
#    key: value lines; -o json still one machine-readable object;
#  - shm inspect by unique id prefix (an ambiguous one lists the ids) and by job name through the
#    coordinator;
#  - plugins knobs: the trainer's knobs with type, default, range and help, in text and JSON;
#  - an invalid manifest given to `up` or `coordinator` writes nothing (the directory stays empty);
set -euo pipefail
: "${TRAINVISOR:?}" "${TV_SHM_TEST_WRITER:?path to tv_shm_test_writer}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
blocks=()  # the /dev/shm blocks this test created
cleanup() {
  exec 3>&- 2>/dev/null || true
  test_cleanup "$dir"
  for b in "${blocks[@]}"; do rm -f "/dev/shm/$b"; done
}
trap cleanup EXIT
on_fail() { echo "--- coordinator log:" >&2; tail -20 "$dir/coordinator.log" >&2 || true; }

# expect_code CODE COMMAND...: COMMAND exits with CODE (its stderr in $dir/err).
expect_code() {
  local want=$1 rc=0; shift
  "$@" > "$dir/out" 2> "$dir/err" || rc=$?
  [ "$rc" = "$want" ] || fail "$* exited $rc, not $want: $(cat "$dir/err")"
}

step "a mistyped subcommand"
expect_code 2 "$TRAINVISOR" stauts
grep -qx "trainvisor: unknown command 'stauts'; did you mean 'status'?" "$dir/err" \
  || fail "stauts: $(cat "$dir/err")"
expect_code 2 "$TRAINVISOR" jobs shwo
grep -q "unknown command 'shwo'; did you mean 'show'?" "$dir/err" || fail "jobs shwo: $(cat "$dir/err")"
expect_code 2 "$TRAINVISOR" config qqqqqqq
grep -q "unknown command 'qqqqqqq'; expected one of: get, set, freeze" "$dir/err" \
  || fail "config qqqqqqq: $(cat "$dir/err")"
expect_code 2 "$TRAINVISOR" jobs  # a missing subcommand is still CLI11's message
grep -q "A subcommand is required" "$dir/err" || fail "jobs: $(cat "$dir/err")"

cat > "$dir/cli.toml" <<'TOML'
[[jobs]]
name = "first"
model = "tiny"
seed = 1
[jobs.hyper]
training.optimizer.learning_rate = 0.05
TOML
export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_OPERATOR_NAME=ana
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/cli.toml" --port 0 \
  --no-public-reads --read-token rd-token > "$dir/url" 2> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")

step "config freeze of a misspelt prefix"
expect_code 2 "$TRAINVISOR" config freeze first training/optimzer
grep -q "invalid prefix 'training/optimzer'.*did you mean 'training/optimizer'?" "$dir/err" \
  || fail "freeze training/optimzer: $(cat "$dir/err")"
expect_code 0 "$TRAINVISOR" config get first -o json
[ "$(field "['frozen']" < "$dir/out")" = "[]" ] || fail "a refused freeze froze: $(cat "$dir/out")"
"$TRAINVISOR" config freeze first training/optimizer | grep -q training/optimizer || fail "freeze"

step "reads with a token"
expect_code 0 "$TRAINVISOR" jobs list
grep -q "^[0-9a-f]\{12\}  first " "$dir/out" || fail "jobs list with the operator token: $(cat "$dir/out")"
expect_code 0 env -u TRAINVISOR_OPERATOR_TOKEN TRAINVISOR_READ_TOKEN=rd-token "$TRAINVISOR" config get first
expect_code 2 env -u TRAINVISOR_OPERATOR_TOKEN "$TRAINVISOR" jobs list
grep -q "reads need a token" "$dir/err" || fail "a read without a token: $(cat "$dir/err")"

step "shm inspect by id prefix and by name"
id=$("$TRAINVISOR" jobs show first -o json | field "['id']")
mkfifo "$dir/in"
exec 3<>"$dir/in"  # keeps the writers alive until closed
for b in "trainvisor.$id" "trainvisor.${id:0:8}-other"; do
  blocks+=("$b")
  "$TV_SHM_TEST_WRITER" create "$b" training/optimizer/learning_rate=f64:0.05 <&3 > "$dir/$b.out" &
  wait_for 10 grep -q ready "$dir/$b.out" || fail "writer of $b did not start"
done
expect_code 0 "$TRAINVISOR" shm inspect "${id:0:10}" -o json
[ "$(field "['block']" < "$dir/out")" = "trainvisor.$id" ] || fail "by prefix: $(cat "$dir/out")"
expect_code 2 "$TRAINVISOR" shm inspect "${id:0:8}"
grep -q "starts 2 block ids" "$dir/err" && grep -q "^  $id$" "$dir/err" && grep -q "^  ${id:0:8}-other$" "$dir/err" \
  || fail "an ambiguous prefix: $(cat "$dir/err")"
expect_code 0 "$TRAINVISOR" shm inspect first
grep -q "^block  *trainvisor.$id " "$dir/out" || fail "by name: $(cat "$dir/out")"
expect_code 2 env -u TRAINVISOR_COORDINATOR "$TRAINVISOR" shm inspect first
grep -q "a job name needs a coordinator" "$dir/err" || fail "by name, no coordinator: $(cat "$dir/err")"
exec 3>&-

step "config log"
for lr in 0.01 0.02 0.03; do
  "$TRAINVISOR" config set first training/optimizer/learning_rate $lr --reason "to $lr" >/dev/null
done
expect_code 0 "$TRAINVISOR" config log first
iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
[ "$(grep -cE "^$iso " "$dir/out")" = "$(wc -l < "$dir/out")" ] || fail "a log line without its time: $(cat "$dir/out")"
head -1 "$dir/out" | grep -q '0.02 -> 0.03 to 0.03' || fail "newest not first: $(cat "$dir/out")"
tail -1 "$dir/out" | grep -q 'null -> 0.05 seeded' || fail "oldest not last: $(cat "$dir/out")"
expect_code 0 "$TRAINVISOR" config log first --limit 2
[ "$(wc -l < "$dir/out")" = 2 ] && grep -q '0.01 -> 0.02' "$dir/out" || fail "--limit 2: $(cat "$dir/out")"
expect_code 0 "$TRAINVISOR" config log first --oldest-first
head -1 "$dir/out" | grep -qE "^$iso .*null -> 0.05 seeded" || fail "--oldest-first: $(cat "$dir/out")"
expect_code 0 "$TRAINVISOR" config log first --after 1 --limit 1  # paging forward, as before
[ "$(wc -l < "$dir/out")" = 2 ] && head -1 "$dir/out" | grep -qE "^$iso .*FROZEN" \
  && tail -1 "$dir/out" | grep -qx "(more: --after 2)" || fail "--after 1 --limit 1: $(cat "$dir/out")"
expect_code 0 "$TRAINVISOR" config log first -o json
"$PY" -c "
import json, sys
e = json.load(open('$dir/out'))['entries']
assert [x['kind'] for x in e] == ['write', 'freeze', 'write', 'write', 'write'], e
assert all(x['time_ms'] > 0 for x in e), e
" || fail "config log -o json"

step "plugins knobs"
expect_code 0 "$TRAINVISOR" plugins knobs
head -1 "$dir/out" | grep -qE "^KNOB +TYPE +DEFAULT +RANGE +HELP$" || fail "plugins knobs: $(cat "$dir/out")"
grep -qE "^training/optimizer/learning_rate +float64 +[0-9.e+-]+ +\[[0-9.e+-]+, [0-9.e+-]+\] +learning rate$" "$dir/out" \
  || fail "plugins knobs lacks the learning rate: $(cat "$dir/out")"
knob_lines=$(($(wc -l < "$dir/out") - 1))
grep -qE "^training/optimizer/name +string +\"[a-z]+\" +[a-z]+\|[a-z]+ " "$dir/out" || fail "plugins knobs: $(cat "$dir/out")"
expect_code 0 "$TRAINVISOR" plugins knobs -o json
"$PY" -c "
import json
k = {x['key']: x for x in json.load(open('$dir/out'))['knobs']}
lr = k['training/optimizer/learning_rate']
assert lr['type'] == 'float64' and lr['min'] <= lr['default'] <= lr['max'] and lr['help'], lr
assert k['training/optimizer/name']['allowed'], k
assert len(k) == $knob_lines, (len(k), $knob_lines)  # the text lists every knob
" || fail "plugins knobs -o json: $(cat "$dir/out")"

step "an invalid manifest writes nothing"
mkdir "$dir/empty"
printf '[[jobs]]\nname = "bad"\nmodel = "tinny"\n' > "$dir/bad.toml"
(cd "$dir/empty" && expect_code 2 "$TRAINVISOR" up "$dir/bad.toml")
grep -q "did you mean 'tiny'" "$dir/err" || fail "up bad.toml: $(cat "$dir/err")"
(cd "$dir/empty" && expect_code 2 "$TRAINVISOR" coordinator --data-dir data --manifest "$dir/bad.toml")
[ -z "$(ls -A "$dir/empty")" ] || fail "an invalid manifest left files: $(find "$dir/empty")"

step "jobs show of a finished job"
cat > "$dir/done.toml" <<'TOML'
[[jobs]]
name = "done"
model = "tiny"
seed = 1
[jobs.hyper]
training.control.max_epochs = 2
TOML
"$TRAINVISOR" up "$dir/done.toml" --data-dir "$dir/up" > "$dir/up.out" 2> "$dir/up.err" \
  || fail "up: $(cat "$dir/up.err")"
"$TRAINVISOR" coordinator --data-dir "$dir/up" --port 0 > "$dir/url2" 2>> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url2" || fail "coordinator on up's data did not start"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url2")
expect_code 0 "$TRAINVISOR" jobs show done
show=$dir/out
for pattern in "^done \([0-9a-f]{64}\), status completed$" "^  host +[^ -]" "^  attempt +1 of 3$" \
  "^  created +$iso$" "^  started +$iso$" "^  ended +$iso$" "^  duration +[0-9.]+s$" \
  "^  loss +[0-9.]+ \(step [0-9]+\)$" "^  val accuracy +[0-9.]+ \(step [0-9]+\)$" \
  "^  val loss +[0-9.]+$" "^    model: tiny$" "^    hyper\.training/control/max_epochs: 2$" \
  "^    seed: 1$" "config: desired revision"; do
  grep -qE "$pattern" "$show" || fail "jobs show lacks /$pattern/: $(cat "$show")"
done
expect_code 0 "$TRAINVISOR" jobs show done -o json
"$PY" -c "
import json
j = json.load(open('$dir/out'))
assert j['status'] == 'completed' and j['finished_ms'] >= j['claimed_ms'] > 0, j
assert j['spec']['name'] == 'done' and j['telemetry']['points'], j
" || fail "jobs show -o json"

echo "cli_test: ok"
