#!/usr/bin/env bash
# `trainvisor host --print-capability` reports what this process may really use: the CPUs of its
# affinity mask, and the RAM under the memory limit of its cgroup, a real cgroup made for the
# test (as root, on cgroup v1 or v2). Where no cgroup can be made, the test says so and is skipped.
set -euo pipefail
: "${TRAINVISOR:?}"
. "$(dirname "$0")/process_test_lib.sh"
dir=$(mktemp -d)
cg=
trap 'test_cleanup "$dir"; [ -z "$cg" ] || rmdir "$cg" 2>/dev/null || true' EXIT

cap() { "$@" "$TRAINVISOR" host --print-capability -o json; }
cap env > "$dir/cap.json"
"$PY" - "$dir/cap.json" <<'PYEOF' || fail "--print-capability -o json: $(cat "$dir/cap.json")"
import json, os, socket, sys
c = json.load(open(sys.argv[1]))
assert c["hostname"] == socket.gethostname(), c
assert c["cores"] == len(os.sched_getaffinity(0)), c
assert 0 < c["ram_gib"] <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30 + 1e-9, c
assert c["torch_version"].startswith("1.13"), c
assert isinstance(c["cuda"], bool) and c["cuda_detail"], c
PYEOF
"$TRAINVISOR" host --print-capability | grep -qE "^cores +[0-9]+$" || fail "text output: $("$TRAINVISOR" host --print-capability)"

step "affinity"
cpu=$("$PY" -c 'import os; print(min(os.sched_getaffinity(0)))')
[ "$(cap taskset -c "$cpu" | field "['cores']")" = 1 ] || fail "one allowed CPU is not one core"

step "cgroup memory limit"
limit=$((3 << 30))
v1=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
if [ -n "$v1" ] && [ -w "/sys/fs/cgroup/memory$v1" ]; then
  cg="/sys/fs/cgroup/memory${v1%/}/tv-capability-$$"
  mkdir "$cg" && echo "$limit" > "$cg/memory.limit_in_bytes" || cg=
elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
  cg="/sys/fs/cgroup/tv-capability-$$"
  mkdir "$cg" && echo "$limit" > "$cg/memory.max" || cg=
fi
if [ -z "$cg" ]; then
  echo "SKIPPED: no memory cgroup can be made here (needs root and a writable hierarchy)" >&2
  exit 77
fi
got=$(sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" host --print-capability -o json' sh "$cg" "$TRAINVISOR" \
  | field "['ram_gib']")
"$PY" -c "import sys; sys.exit(abs($got - 3.0) > 1e-9)" || fail "RAM under a 3 GiB cgroup limit reported as $got GiB"
echo PASS
