#!/usr/bin/env bash
# Fault campaigns against the fleet as real processes (not part of the test command: a full
# campaign runs for an hour or more).
#   scripts/campaign.sh kill9 [--rounds N] [--kind coordinator|host|trainer|agent|all]
#                             [--seed S] [--jobs J] [--settle SECONDS] [--keep]
#     Kills one kind of process with SIGKILL at a random moment of each round (default 50 rounds
#     per kind), lets the fleet recover, and checks the invariants after each: integrity_check,
#     no job lost or completed twice, no acknowledged config write lost, no two trainers for one
#     job, every trainer read within 16 attempts. Prints a line per round and a summary per
#     kind; exits 1 when a check failed (each failure names the seed that replays its round).
#     Uses build/bin/trainvisor (or $TRAINVISOR); scripts/kill9_campaign.py --help for details.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  kill9) shift; exec /usr/bin/python3 scripts/kill9_campaign.py "$@" ;;
  -h|--help|"") sed -n 2,12p "$0"; exit 0 ;;
  *) echo "campaign.sh: unknown campaign '$1' (known: kill9)" >&2; exit 2 ;;
esac
