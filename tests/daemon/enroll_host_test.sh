#!/usr/bin/env bash
# scripts/enroll-host.sh against a real coordinator:
#  - the right worker token: the host's capability printed, the env file written (mode 0600) with
#    the coordinator's URL, the host's own credential and its options, not the worker token; a
#    `trainvisor host` started from that file is listed, which the script waits for;
#  - nobody starts the host: the script's wait fails, naming the host;
#  - the same name again: refused (already enrolled), the env file untouched;
#  - a wrong token: refused naming the token file; an unreachable URL: refused naming the URL;
#    neither writes an env file.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() {
  for f in coordinator.log host.log enroll.out enroll.err; do
    echo "--- $f:" >&2; tail -20 "$dir/$f" >&2 || true
  done
}
enroll=("$(dirname "$0")/../../scripts/enroll-host.sh" --trainvisor "$TRAINVISOR")

export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token
"$TRAINVISOR" coordinator --data-dir "$dir/data" > "$dir/url" 2> "$dir/coordinator.log" &
wait_for 10 test -s "$dir/url" || fail "coordinator did not start: $(cat "$dir/coordinator.log")"
url=$(head -1 "$dir/url")
unset TRAINVISOR_WORKER_TOKEN TRAINVISOR_OPERATOR_TOKEN
echo wk-token > "$dir/worker-token"
echo not-the-token > "$dir/wrong-token"

step "the right token: enrolled, env file written, listed once the host runs"
"${enroll[@]}" --coordinator "$url" --worker-token-file "$dir/worker-token" --name enrolled \
  --slots 2 --env-file "$dir/host.env" --no-start --wait 60 > "$dir/enroll.out" 2> "$dir/enroll.err" &
enroller=$!
wait_for 30 test -s "$dir/host.env" || fail "no env file written"
[ "$(stat -c %a "$dir/host.env")" = 600 ] || fail "host.env is mode $(stat -c %a "$dir/host.env")"
grep -q wk-token "$dir/host.env" && fail "the worker token was written to host.env"
grep -qx "TRAINVISOR_COORDINATOR=\"$url\"" "$dir/host.env" || fail "no URL: $(cat "$dir/host.env")"
grep -qE '^TRAINVISOR_HOST_CREDENTIAL="enrolled:[^"]+"$' "$dir/host.env" || fail "no credential"
grep -qx 'TRAINVISOR_HOST_OPTIONS="--name enrolled --slots 2"' "$dir/host.env" \
  || fail "options: $(cat "$dir/host.env")"
# As the unit does: the env file's variables, the options as arguments.
(
  set -a; . "$dir/host.env"; set +a
  # shellcheck disable=SC2086
  exec "$TRAINVISOR" host --work-dir "$dir/work" --poll-every 0.3 $TRAINVISOR_HOST_OPTIONS
) 2> "$dir/host.log" &
wait "$enroller" || fail "enroll-host.sh exited $?"
grep -q "lists enrolled among its workers" "$dir/enroll.out" || fail "not waited for"
grep -qE "^  (hostname|cores) " "$dir/enroll.out" || fail "no capability printed"
grep -q "not starting trainvisor-host.service (--no-start)" "$dir/enroll.out" \
  || fail "--no-start not said"

step "nobody starts the host: the wait fails naming it"
expect_failure "$dir/err" "does not list lonely among its workers after 2 s" \
  "${enroll[@]}" --coordinator "$url" --worker-token-file "$dir/worker-token" --name lonely \
  --env-file "$dir/lonely.env" --no-start --wait 2

step "a name enrolled already: refused, the env file kept"
cp "$dir/host.env" "$dir/host.env.before"
expect_failure "$dir/err" "refused to enrol 'enrolled' \(HTTP 409\): host enrolled is already enrolled" \
  "${enroll[@]}" --coordinator "$url" --worker-token-file "$dir/worker-token" --name enrolled \
  --env-file "$dir/host.env" --no-start
cmp -s "$dir/host.env" "$dir/host.env.before" || fail "a refused enrolment changed host.env"

step "a wrong token, an unreachable coordinator, bad arguments"
expect_failure "$dir/err" "coordinator at $url refused the worker token in $dir/wrong-token" \
  "${enroll[@]}" --coordinator "$url" --worker-token-file "$dir/wrong-token" --name other \
  --env-file "$dir/wrong.env" --no-start
closed=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_failure "$dir/err" "coordinator at http://127.0.0.1:$closed is unreachable" \
  "${enroll[@]}" --coordinator "http://127.0.0.1:$closed" --worker-token-file "$dir/worker-token" \
  --name other --env-file "$dir/unreachable.env" --no-start
[ ! -e "$dir/wrong.env" ] && [ ! -e "$dir/unreachable.env" ] || fail "a refusal wrote an env file"
expect_failure "$dir/err" "cannot read the worker token file $dir/missing" \
  "${enroll[@]}" --coordinator "$url" --worker-token-file "$dir/missing" --no-start
expect_failure "$dir/err" "--slots 'many' is not a whole number" \
  "${enroll[@]}" --coordinator "$url" --worker-token-file "$dir/worker-token" --slots many
expect_failure "$dir/err" "is not http\(s\)://HOST:PORT" \
  "${enroll[@]}" --coordinator "$url/v1" --worker-token-file "$dir/worker-token"
echo PASS
