#!/usr/bin/env bash
# Runs token_compare_ct under memcheck twice: the real comparison must be clean, and an
# early-exit comparison must be reported (else the check could not fail).
set -euo pipefail
: "${TOKEN_COMPARE_CT:?}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
memcheck() { valgrind --tool=memcheck --error-exitcode=3 --track-origins=no "$@" >"$out" 2>&1; }
if ! memcheck "$TOKEN_COMPARE_CT"; then
  cat "$out" >&2
  echo "FAIL: tokens_equal depends on the tokens' contents (memcheck output above)" >&2
  exit 1
fi
rc=0
memcheck "$TOKEN_COMPARE_CT" --control || rc=$?
if [ "$rc" -ne 3 ] || ! grep -q "Conditional jump or move depends on uninitialised value" "$out"; then
  cat "$out" >&2
  echo "FAIL: memcheck did not report the early-exit comparison (exit $rc): the check is blind" >&2
  exit 1
fi
echo PASS
