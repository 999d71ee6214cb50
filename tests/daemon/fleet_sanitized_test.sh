#!/usr/bin/env bash
# The fleet as real processes, run with a trainvisor built under a sanitizer (the asan and tsan
# presets): a coordinator; one host daemon with two slots, which trains a short job with a
# plateau policy to the end and uploads its bundle while a long job runs beside it; a live config
# write that the long job's trainer applies; an operator's cancel of the long job; the host's and
# the coordinator's clean stop on SIGTERM. Every process (the CLI and the trainers too) writes
# its sanitizer reports into the test's folder: any report fails the test, and so does an unclean
# exit of the coordinator or the host.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
mkdir "$dir/reports"
trap 'test_cleanup "$dir"' EXIT
reports() { cat "$dir"/reports/* 2>/dev/null | head -200; }
on_fail() {
  echo "--- sanitizer reports:" >&2; reports >&2
  echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true
  echo "--- trainer logs:" >&2; tail -n 5 "$dir"/host/*/trainer.log >&2 || true
}
# Reports go to files (one per process, named by its pid) rather than to stderr, where a
# trainer's would only reach its log. The presets' own options stay.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$dir/reports/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$dir/reports/ubsan:print_stacktrace=1"
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS }log_path=$dir/reports/tsan"

cat > "$dir/fleet.toml" <<'TOML'
[[jobs]]
name = "short"
model = "tiny"
seed = 1
priority = 10
[jobs.hyper]
training.control.max_epochs = 2
[[jobs.policies]]
name = "plateau"
monitor = "loss"
patience = 5

[[jobs]]
name = "long"
model = "tiny"
seed = 2
[jobs.hyper]
training.control.max_epochs = 100000
TOML

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token TRAINVISOR_OPERATOR_NAME=ana
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" > "$dir/url" \
  2> "$dir/coordinator.log" &
coordinator=$!
wait_for 60 test -s "$dir/url" || fail "coordinator did not start: $(cat "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
status_of() { "$TRAINVISOR" jobs show "$1" -o json | field "['status']"; }
applied_of() { "$TRAINVISOR" jobs show "$1" -o json | field "['telemetry']['applied']['revision']"; }

step "a host with two slots"
"$TRAINVISOR" host --name san-host --work-dir "$dir/host" --slots 2 --heartbeat-every 0.3 \
  --poll-every 0.3 2> "$dir/host.log" &
host=$!
wait_for 180 sh -c "[ \"\$('$TRAINVISOR' jobs show long -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = running ]" \
  || fail "the long job never ran: $(status_of long)"

step "a live config write reaches the long job's trainer"
TRAINVISOR_OPERATOR_NAME=ana "$TRAINVISOR" config set long training/optimizer/learning_rate 0.02 \
  --reason "sanitized fleet" | grep -qx "revision 2" || fail "config set"
wait_for 180 sh -c "[ \"\$('$TRAINVISOR' jobs show long -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"telemetry\"][\"applied\"][\"revision\"])' 2>/dev/null)\" = 2 ]" \
  || fail "the trainer never applied revision 2 (applied: $(applied_of long 2>&1))"

step "the short job completes and uploads its bundle"
wait_for 300 sh -c "[ \"\$('$TRAINVISOR' jobs show short -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = completed ]" \
  || fail "short did not complete: $(status_of short)"
"$TRAINVISOR" artifacts short | grep -q "bundle.tvb" || fail "no bundle for short"

step "cancel the long job"
"$TRAINVISOR" jobs cancel long | grep -q "host san-host stops its trainer" || fail "cancel did not reach the host"
wait_for 120 sh -c "grep -q 'cancelled long' '$dir/host.log'" || fail "the host never stopped the trainer"
wait_for 60 sh -c "[ \"\$('$TRAINVISOR' jobs show long -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = cancelled ]" \
  || fail "long is $(status_of long)"

step "SIGTERM stops the host and the coordinator cleanly"
kill -TERM "$host"
rc=0; wait "$host" || rc=$?
[ "$rc" = 0 ] || fail "the host exited $rc"
grep -q "host: done, 1 job(s) completed here" "$dir/host.log" || fail "the host did not report: $(tail -3 "$dir/host.log")"
kill -TERM "$coordinator"
rc=0; wait "$coordinator" || rc=$?
[ "$rc" = 0 ] || fail "the coordinator exited $rc: $(tail -3 "$dir/coordinator.log")"
[ -z "$(ls -A "$dir/reports")" ] || fail "sanitizer reports: $(ls "$dir/reports")"
echo PASS
