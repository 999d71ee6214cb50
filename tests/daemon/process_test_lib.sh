# Helpers shared by the process tests (sourced, not run): the caller sets `set -euo pipefail`,
# TRAINVISOR, and may define on_fail to print what helps when a check fails.
PY=/usr/bin/python3
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
