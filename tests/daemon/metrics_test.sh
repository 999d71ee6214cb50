#!/usr/bin/env bash
# Prometheus metrics as real processes: a coordinator (GET /metrics on its API port) and a host
# daemon with --metrics-port 0. A tiny job trains until an operator's config write lowers its
# max_epochs, then completes. Both expositions must pass the real `promtool check metrics`
# (its output is printed) while the job runs and after it ended, and hold the values that job
# left: the host's per-job gauges while it runs and none after, the coordinator's completed job,
# its human write and the apply lag of that write.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
command -v promtool >/dev/null || fail "promtool is missing: run scripts/setup.sh (package prometheus)"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() {
  echo "--- coordinator log:" >&2; tail -20 "$dir/coordinator.log" >&2 || true
  echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true
}

cat > "$dir/fleet.toml" <<'TOML'
[[jobs]]
name = "metered"
model = "tiny"
seed = 4
[jobs.hyper]
training.control.max_epochs = 1000000
TOML
export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" \
  > "$dir/url" 2> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(cat "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
"$TRAINVISOR" host --name metered-host --work-dir "$dir/work" --heartbeat-every 0.3 \
  --poll-every 0.3 --metrics-port 0 2> "$dir/host.log" &
wait_for 10 grep -q "host: metrics at " "$dir/host.log" || fail "the host never said where its metrics are"
host_metrics=$(grep -o "http://[0-9.:]*/metrics" "$dir/host.log" | head -1)
# Loopback by default: the metrics name jobs and ask for no token.
[ "$(listening_address "$(echo "$host_metrics" | sed 's|.*:\([0-9]*\)/metrics|\1|')")" = 0100007F ] \
  || fail "the host's metrics listener is not on loopback only"

status_of() { "$TRAINVISOR" jobs show metered -o json | field "['status']"; }
# scrape NAME URL: the exposition into $dir/NAME.prom, checked by promtool (its words printed).
scrape() {
  curl -fsS -D "$dir/$1.headers" "$2" > "$dir/$1.prom" || fail "GET $2 failed"
  grep -qi "^content-type: text/plain; version=0.0.4; charset=utf-8" "$dir/$1.headers" \
    || fail "$1: wrong Content-Type: $(cat "$dir/$1.headers")"
  local words rc=0
  words=$(promtool check metrics < "$dir/$1.prom" 2>&1) || rc=$?
  echo "promtool check metrics ($1, $(grep -c '^# TYPE' "$dir/$1.prom") families): exit $rc${words:+: $words}"
  [ $rc = 0 ] || fail "promtool refused the $1 metrics"
}
# value NAME SERIES: the sample of SERIES (as written, labels included) in NAME's last scrape.
value() { awk -v s="$2" '$1 == s { print $2 }' "$dir/$1.prom"; }
expect() {  # expect NAME SERIES VALUE
  [ "$(value "$1" "$2")" = "$3" ] || fail "$1: $2 is '$(value "$1" "$2")', expected $3"
}

step "the job runs"
wait_for 60 sh -c "[ \"\$('$TRAINVISOR' jobs show metered -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = running ]" \
  || fail "the host never ran the job: $(status_of)"
id=$("$TRAINVISOR" jobs show metered -o json | field "['id']")
has_loss() { curl -fsS "$host_metrics" | grep -q "^trainvisor_host_job_loss{job=\"$id\"} "; }
wait_for 30 has_loss || fail "the host never showed the job's loss"
scrape host "$host_metrics"
expect host trainvisor_host_jobs_running 1
expect host trainvisor_host_claims_granted_total 1
grep -q "^trainvisor_host_job_step_rate{job=\"$id\"} " "$dir/host.prom" \
  || fail "no step rate for the running job"

step "an operator's write ends it"
"$TRAINVISOR" config set metered training/control/max_epochs 1 --reason "enough" >/dev/null
wait_for 60 sh -c "[ \"\$('$TRAINVISOR' jobs show metered -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = completed ]" \
  || fail "the job did not complete after max_epochs was lowered: $(status_of)"
ended() { curl -fsS "$host_metrics" | grep -q '^trainvisor_host_trainer_exits_total{class="completed"} 1$'; }
wait_for 10 ended || fail "the host never counted the trainer's exit"

scrape coordinator "$TRAINVISOR_COORDINATOR/metrics"
scrape host "$host_metrics"
expect coordinator 'trainvisor_jobs{status="completed"}' 1
expect coordinator 'trainvisor_jobs{status="running"}' 0
expect coordinator 'trainvisor_claims_total{outcome="granted"}' 1
expect coordinator 'trainvisor_config_writes_total{actor_kind="human",outcome="accepted"}' 1
expect coordinator trainvisor_config_apply_lag_seconds_count 1
expect coordinator 'trainvisor_http_requests_total{route="/v1/job/{id}/complete",method="POST",code="200"}' 1
[ "$(value coordinator trainvisor_telemetry_points_total)" -gt 0 ] || fail "no telemetry points counted"
[ "$(value coordinator trainvisor_artifact_uploaded_bytes_total)" -gt 0 ] || fail "no bundle bytes counted"
expect host trainvisor_host_jobs_running 0
[ "$(value host trainvisor_host_config_revisions_applied_total)" -ge 1 ] \
  || fail "the host counted no config revision applied"
grep -q "$id" "$dir/host.prom" && fail "the ended job's series are still shown"
grep -q "$id" "$dir/coordinator.prom" && fail "a job id is in the coordinator's labels"
echo PASS
