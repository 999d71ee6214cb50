#!/usr/bin/env bash
# The default lease timing as real processes: a coordinator and a host daemon, both with their
# default heartbeat, stale-after and sweep periods. The host claims a job and is killed with
# SIGKILL; the job must be pending again within 45 s (the defaults promise 30 s + one 5 s sweep).
# Slow by design (about 35 s): it waits for the real defaults.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() { echo "--- host log:" >&2; tail -20 "$dir/host.log" >&2 || true; }

cat > "$dir/fleet.toml" <<'TOML'
[[jobs]]
name = "long"
model = "tiny"
[jobs.hyper]
training.control.max_epochs = 1000000
TOML
export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token
"$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" \
  > "$dir/url" 2> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(cat "$dir/coordinator.log")"
export TRAINVISOR_COORDINATOR=$(head -1 "$dir/url")
status_of() { "$TRAINVISOR" jobs show long -o json | field "['status']"; }
is_status() { [ "$(status_of)" = "$1" ]; }

step "a host with the default heartbeat takes the job"
# --poll-every only speeds up the first claim; the lease timing is all defaults.
"$TRAINVISOR" host --name lost --work-dir "$dir/work" --poll-every 0.3 2> "$dir/host.log" &
host=$!
wait_for 30 is_status running || fail "the host never ran the job: $(status_of)"
kill -9 "$host"
killed_at=$SECONDS
step "killed; waiting for the job to come back"
wait_for 45 is_status pending || fail "45 s after the host was killed the job is still $(status_of)"
step "pending again after $((SECONDS - killed_at)) s"
"$TRAINVISOR" jobs show long -o json | field "['last_error']" | grep -q "lease of lost expired" \
  || fail "the job came back for another reason: $("$TRAINVISOR" jobs show long -o json | field "['last_error']")"
echo PASS
