#!/usr/bin/env bash
# The operator CLI's answers, against a real coordinator (no host: the job stays pending):
#  - a mistyped subcommand, at any level: "unknown command 'X'; did you mean 'Y'?", exit code 2;
#  - config freeze of a prefix no trainer knob is under: refused, naming the closest prefix;
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
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
  > "$dir/url" 2> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")

step "config freeze of a misspelt prefix"
expect_code 2 "$TRAINVISOR" config freeze first training/optimzer
grep -q "invalid prefix 'training/optimzer'.*did you mean 'training/optimizer'?" "$dir/err" \
  || fail "freeze training/optimzer: $(cat "$dir/err")"
expect_code 0 "$TRAINVISOR" config get first -o json
[ "$(field "['frozen']" < "$dir/out")" = "[]" ] || fail "a refused freeze froze: $(cat "$dir/out")"
"$TRAINVISOR" config freeze first training/optimizer | grep -q training/optimizer || fail "freeze"

echo "cli_test: ok"
