#!/usr/bin/env bash
# The coordinator and the host as systemd Type=notify services, against a datagram socket that
# stands in for systemd (notify_listener.py):
#  - coordinator: READY=1 (with STATUS naming its URL) only once /v1/health answers; WATCHDOG=1
#    every half period (WATCHDOG_USEC=1000000: one every ~0.5 s); SIGHUP after the manifest
#    gained a job: RELOADING=1 with MONOTONIC_USEC, then READY=1, and the job is queued;
#    SIGTERM: STOPPING=1 and a clean exit;
#  - host: READY=1 only once the coordinator lists it among its workers; STOPPING=1 on SIGTERM.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
on_fail() {
  for f in coordinator.log host.log notify-coordinator.log notify-host.log; do
    echo "--- $f:" >&2; tail -20 "$dir/$f" >&2 || true
  done
}
listener="$(dirname "$0")/notify_listener.py"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
# seen LOG PATTERN: a line of LOG matches the extended regular expression PATTERN.
seen() { grep -qE -- "$2" "$1"; }
# at_least N LOG PATTERN: at least N lines of LOG match.
at_least() { [ "$(grep -cE -- "$3" "$2" || true)" -ge "$1" ]; }

cat > "$dir/fleet.toml" <<'TOML'
[[jobs]]
name = "first"
model = "tiny"
TOML
export TRAINVISOR_OPERATOR_TOKEN=op-token TRAINVISOR_WORKER_TOKEN=wk-token
export TRAINVISOR_COORDINATOR=$url

step "coordinator: READY=1 once it serves"
"$PY" "$listener" "$dir/coordinator.sock" "$dir/notify-coordinator.log" "$url/v1/health" &
wait_for 10 test -S "$dir/coordinator.sock" || fail "the listener did not bind"
NOTIFY_SOCKET="$dir/coordinator.sock" WATCHDOG_USEC=1000000 \
  "$TRAINVISOR" coordinator --data-dir "$dir/data" --manifest "$dir/fleet.toml" --port "$port" \
  > /dev/null 2> "$dir/coordinator.log" &
coordinator=$!
log="$dir/notify-coordinator.log"
wait_for 20 seen "$log" "PROBE" || fail "no READY=1 from the coordinator"
seen "$log" "READY=1 STATUS=serving $url\$" || fail "READY=1 without its STATUS: $(cat "$log")"
seen "$log" "PROBE ok" || fail "READY=1 came before /v1/health answered: $(grep PROBE "$log")"

step "coordinator: the watchdog at half its period"
wait_for 10 at_least 5 "$log" "WATCHDOG=1" || fail "fewer than 5 watchdog pings"
"$PY" - "$log" <<'PYEOF' || fail "watchdog pace"
import sys
t = [float(l.split()[0]) for l in open(sys.argv[1]) if l.split()[1:] == ["WATCHDOG=1"]]
gaps = [b - a for a, b in zip(t, t[1:])]
print("watchdog gaps:", ["%.3f" % g for g in gaps], file=sys.stderr)
sys.exit(0 if all(0.35 <= g <= 0.8 for g in gaps[:4]) else 1)
PYEOF

step "coordinator: SIGHUP re-reads the manifest"
cat >> "$dir/fleet.toml" <<'TOML'
[[jobs]]
name = "second"
model = "tiny"
[jobs.hyper]
training.control.max_epochs = 2
TOML
! "$TRAINVISOR" jobs show second > /dev/null 2>&1 || fail "'second' queued before the reload"
kill -HUP "$coordinator"
wait_for 10 at_least 2 "$log" "READY=1" || fail "no READY=1 after the reload"
"$PY" - "$log" <<'PYEOF' || fail "RELOADING=1 then READY=1: $(cat "$log")"
import sys, time
lines = [l.split(None, 1)[1].strip() for l in open(sys.argv[1])]
reloading = [i for i, l in enumerate(lines) if l.startswith("RELOADING=1 MONOTONIC_USEC=")]
ready = [i for i, l in enumerate(lines) if l.startswith("READY=1")]
assert len(reloading) == 1 and len(ready) == 2 and reloading[0] < ready[1], (reloading, ready)
usec = int(lines[reloading[0]].split("=")[-1])
assert abs(usec / 1e6 - time.monotonic()) < 30, usec  # CLOCK_MONOTONIC, as systemd compares it
PYEOF
"$TRAINVISOR" jobs show second -o json | field "['status']" | grep -qx pending \
  || fail "'second' not queued by the reload"
grep -q "manifest reloaded: 1 added, 1 unchanged" "$dir/coordinator.log" \
  || fail "the reload's summary is not logged"

step "host: READY=1 once the coordinator lists it"
"$PY" "$listener" "$dir/host.sock" "$dir/notify-host.log" "$url/v1/workers" '"notified-host"' &
wait_for 10 test -S "$dir/host.sock" || fail "the listener did not bind"
NOTIFY_SOCKET="$dir/host.sock" WATCHDOG_USEC=1000000 \
  "$TRAINVISOR" host --name notified-host --work-dir "$dir/work" --poll-every 0.3 \
  2> "$dir/host.log" &
host=$!
hlog="$dir/notify-host.log"
wait_for 30 seen "$hlog" "PROBE" || fail "no READY=1 from the host"
seen "$hlog" "PROBE ok" || fail "the host was READY before the coordinator listed it: $(cat "$hlog")"
wait_for 10 at_least 2 "$hlog" "WATCHDOG=1" || fail "the host pings no watchdog"

step "SIGTERM: STOPPING=1 from both"
kill -TERM "$host"
wait "$host" || fail "the host exited $? on SIGTERM"
seen "$hlog" "STOPPING=1" || fail "the host sent no STOPPING=1"
kill -TERM "$coordinator"
wait "$coordinator" || fail "the coordinator exited $? on SIGTERM"
seen "$log" "STOPPING=1" || fail "the coordinator sent no STOPPING=1"
echo PASS
