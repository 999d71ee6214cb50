# Helpers shared by the process tests (sourced, not run): the caller sets `set -euo pipefail`,
# TRAINVISOR, and may define on_fail to print what helps when a check fails.
PY=/usr/bin/python3
# The daemons' human log lines, which the tests read (JSON lines are logs_test.sh's to check).
export TRAINVISOR_LOG_FORMAT=text

# Every process a test starts is its descendant, even a trainer that outlives its host (trainers
# start their own session, so a process group cannot hold them): the test re-executes itself as
# a child subreaper (prctl PR_SET_CHILD_SUBREAPER, kept across exec), so orphans are reparented
# to it, and its exit kills all of them. Nothing is found by name or pattern.
if [ -z "${TV_TEST_SUBREAPER:-}" ]; then
  export TV_TEST_SUBREAPER=1
  exec "$PY" -c '
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("process test: cannot become a child subreaper: " + os.strerror(ctypes.get_errno()))
os.execvp("bash", ["bash"] + sys.argv[1:])' "$0" "$@"
fi

# descendants PID: every live process below PID, children first listed after their parent.
descendants() {
  "$PY" - "$1" <<'PYEOF'
import os, sys
children = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        with open(f"/proc/{p}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        continue
    children.setdefault(ppid, []).append(int(p))
root = int(sys.argv[1])
me = {os.getpid(), os.getppid()} - {root}  # this lookup and the subshell running it
out, todo = [], [root]
while todo:
    for c in children.get(todo.pop(), []):
        if c not in me:
            out.append(c)
            todo.append(c)
print(" ".join(map(str, out)))
PYEOF
}
# Kills everything this test started, until nothing is left (a dying host may spawn nothing new,
# but a trainer it spawned is reparented here and found on the next round).
kill_descendants() {
  local round left
  for round in 1 2 3 4 5 6 7 8 9 10; do
    left=$(descendants $$)
    [ -n "$left" ] || return 0
    # shellcheck disable=SC2086
    kill -9 $left 2>/dev/null || true
    wait 2>/dev/null || true
  done
  echo "process test: processes left behind: $(descendants $$)" >&2
}
# test_cleanup DIR: the EXIT trap of every process test.
test_cleanup() { kill_descendants; rm -rf "$1"; }

fail() {
  echo "FAIL: $*" >&2
  if declare -F on_fail >/dev/null; then on_fail; fi
  exit 1
}
# Where a timeout stopped a test, in CI's output.
step() { echo "$(basename "$0" .sh): $(date +%T) $*" >&2; }
# field EXPR: a value of the JSON on stdin (objects and lists as JSON).
field() { "$PY" -c "import json,sys; v=json.load(sys.stdin)$1; print(json.dumps(v) if isinstance(v,(dict,list)) else v)"; }
wait_for() {  # wait_for SECONDS COMMAND...
  local until=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $until ] || return 1; sleep 0.2; done
}
# expect_failure ERRFILE PATTERN COMMAND...: COMMAND must fail, and its stderr (kept in ERRFILE)
# must match the extended regular expression PATTERN: an unrelated failure does not pass.
expect_failure() {
  local err=$1 pattern=$2; shift 2
  if "$@" 2> "$err"; then fail "accepted: $*"; fi
  grep -qE -- "$pattern" "$err" || fail "$* failed, but not with /$pattern/: $(cat "$err")"
}
# listening_address PORT: the local addresses (kernel hex, 0100007F = 127.0.0.1) listening on PORT.
listening_address() {
  "$PY" - "$1" <<'PYEOF'
import sys
port = "%04X" % int(sys.argv[1])
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).readlines()[1:]:
        f = line.split()
        addr, p = f[1].rsplit(":", 1)
        if p == port and f[3] == "0A":
            print(addr)
PYEOF
}
# holder_pid WORK_DIR JOB_ID: the trainer pid the host daemon recorded for the job.
holder_pid() { field "['pid']" < "$1/$2/holder.json"; }
