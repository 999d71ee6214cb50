#!/usr/bin/env bash
# Enrols this machine as a host of a Trainvisor fleet and starts its service.
#
#   enroll-host.sh --coordinator URL --worker-token-file FILE [--name NAME] [--slots N]
#                  [--ca-file FILE] [--env-file PATH] [--no-start] [--wait SECONDS]
#                  [--trainvisor PATH]
#
# 1. checks that the coordinator answers GET /v1/health;
# 2. prints what this host can run (trainvisor host --print-capability);
# 3. enrols NAME (default: the hostname) with the worker token: the coordinator returns the
#    host's own credential, so the worker token never stays on the host;
# 4. writes the service's settings, TRAINVISOR_COORDINATOR, TRAINVISOR_HOST_CREDENTIAL and
#    TRAINVISOR_HOST_OPTIONS, to /etc/trainvisor/host.env (mode 0600; --env-file elsewhere);
# 5. enables and (re)starts trainvisor-host.service, unless --no-start or systemd does not run
#    here (both said);
# 6. waits until the coordinator lists the host in GET /v1/workers (--wait SECONDS, default 60
#    when it started the service; with --no-start, only when --wait is given: the host is
#    started some other way meanwhile).
# Exits non-zero, naming the URL or the file, when the coordinator is unreachable, refuses the
# worker token or the name, or the host is not listed in time.
set -euo pipefail

PY=/usr/bin/python3
coordinator="" token_file="" name="" slots=1 ca_file="" env_file=/etc/trainvisor/host.env
start=1 wait_s="" trainvisor=""

die() { echo "enroll-host: $*" >&2; exit 1; }
usage() { sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --coordinator) coordinator=${2:?--coordinator needs a URL}; shift 2 ;;
      --worker-token-file) token_file=${2:?--worker-token-file needs a file}; shift 2 ;;
      --name) name=${2:?--name needs a name}; shift 2 ;;
      --slots) slots=${2:?--slots needs a number}; shift 2 ;;
      --ca-file) ca_file=${2:?--ca-file needs a file}; shift 2 ;;
      --env-file) env_file=${2:?--env-file needs a path}; shift 2 ;;
      --no-start) start=0; shift ;;
      --wait) wait_s=${2:?--wait needs seconds}; shift 2 ;;
      --trainvisor) trainvisor=${2:?--trainvisor needs a path}; shift 2 ;;
      -h|--help) usage ;;
      *) echo "enroll-host: unknown argument '$1'" >&2; usage ;;
    esac
  done
  [ -n "$coordinator" ] || die "give --coordinator URL (e.g. http://coordinator:8700)"
  [[ "$coordinator" =~ ^https?://[^/]+$ ]] \
    || die "--coordinator '$coordinator' is not http(s)://HOST:PORT (no path)"
  [ -n "$token_file" ] || die "give --worker-token-file FILE (the coordinator's worker token)"
  [ -r "$token_file" ] || die "cannot read the worker token file $token_file"
  [[ "$slots" =~ ^[1-9][0-9]*$ ]] || die "--slots '$slots' is not a whole number of jobs >= 1"
  [ -z "$wait_s" ] || [[ "$wait_s" =~ ^[1-9][0-9]*$ ]] \
    || die "--wait '$wait_s' is not a whole number of seconds >= 1"
  [ -z "$ca_file" ] || [ -r "$ca_file" ] || die "cannot read the CA file $ca_file"
  [ -n "$name" ] || name=$(hostname)
  [ -n "$trainvisor" ] || trainvisor=$(command -v trainvisor || echo /usr/bin/trainvisor)
  [ -x "$trainvisor" ] || die "no trainvisor binary at $trainvisor (give --trainvisor PATH)"
}

# http METHOD URL [HEADER]: prints "STATUS BODY"; STATUS 0 when the request could not be made
# (BODY then says why). The coordinator's own answers are the caller's to judge.
http() {
  "$PY" - "$@" "$ca_file" <<'PYEOF'
import ssl, sys, urllib.error, urllib.request
method, url, header, ca = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
if header:
    key, value = header.split(": ", 1)
    req.add_header(key, value)
ctx = ssl.create_default_context(cafile=ca or None) if url.startswith("https:") else None
try:
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except Exception as e:  # unreachable: the reason is the message
    print(0, getattr(e, "reason", e))
PYEOF
}
# json_field FIELD: FIELD of the JSON object on stdin ("" when absent).
json_field() { "$PY" -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }

check_reachable() {
  local reply
  reply=$(http GET "$coordinator/v1/health" "")
  [ "${reply%% *}" = 200 ] \
    || die "the coordinator at $coordinator is unreachable (GET /v1/health: ${reply#* })"
  echo "enroll-host: the coordinator at $coordinator answers"
}

# Prints the credential the coordinator issues to $name for the worker token.
enrol() {
  local token reply status body
  token=$(tr -d '[:space:]' < "$token_file")
  [ -n "$token" ] || die "the worker token file $token_file is empty"
  reply=$(http POST "$coordinator/v1/hosts/$name/enrol" "X-Worker-Token: $token")
  status=${reply%% *} body=${reply#* }
  case "$status" in
    200) echo "$body" | json_field credential ;;
    401) die "the coordinator at $coordinator refused the worker token in $token_file" ;;
    0) die "the coordinator at $coordinator is unreachable (enrolment: $body)" ;;
    *) die "the coordinator at $coordinator refused to enrol '$name' (HTTP $status): $(echo "$body" | json_field error)" ;;
  esac
}

# write_env CREDENTIAL: the service's settings, root's (or the caller's) alone.
write_env() {
  local options="--name $name --slots $slots"
  [ -z "$ca_file" ] || options+=" --ca-file $ca_file"
  mkdir -p "$(dirname "$env_file")"
  local tmp
  tmp=$(umask 077 && mktemp "$env_file.XXXXXX")
  cat > "$tmp" <<ENV
# Written by enroll-host.sh: the settings of trainvisor-host.service (systemd EnvironmentFile).
TRAINVISOR_COORDINATOR="$coordinator"
TRAINVISOR_HOST_CREDENTIAL="$1"
TRAINVISOR_HOST_OPTIONS="$options"
ENV
  chmod 0600 "$tmp"
  mv -f "$tmp" "$env_file"
  echo "enroll-host: wrote $env_file (mode 0600)"
}

# Enables and (re)starts the service; false when it was not started here (said why).
start_service() {
  if [ "$start" = 0 ]; then
    echo "enroll-host: not starting trainvisor-host.service (--no-start)"
    return 1
  fi
  if [ ! -d /run/systemd/system ]; then
    echo "enroll-host: systemd is not running here: start trainvisor host with the settings" \
         "in $env_file yourself"
    return 1
  fi
  systemctl enable trainvisor-host.service
  systemctl restart trainvisor-host.service  # a new credential needs a new process
  echo "enroll-host: started trainvisor-host.service"
}

# wait_listed SECONDS CREDENTIAL: until GET /v1/workers names $name.
wait_listed() {
  local until=$((SECONDS + $1)) reply
  while [ $SECONDS -lt "$until" ]; do
    reply=$(http GET "$coordinator/v1/workers" "X-Host-Credential: $2")
    if [ "${reply%% *}" = 200 ] && echo "${reply#* }" | "$PY" -c "
import json, sys
sys.exit(0 if any(w['name'] == sys.argv[1] for w in json.load(sys.stdin)['workers']) else 1)" \
      "$name"; then
      echo "enroll-host: $coordinator lists $name among its workers"
      return 0
    fi
    sleep 1
  done
  die "$coordinator does not list $name among its workers after $1 s (journalctl -u trainvisor-host)"
}

main() {
  parse_args "$@"
  check_reachable
  echo "enroll-host: this host:"
  "$trainvisor" host --print-capability | sed 's/^/  /'
  local credential
  credential=$(enrol)
  [ -n "$credential" ] || die "the coordinator at $coordinator returned no credential for $name"
  echo "enroll-host: enrolled $name"
  write_env "$credential"
  if start_service; then
    wait_listed "${wait_s:-60}" "$credential"
  elif [ -n "$wait_s" ]; then
    wait_listed "$wait_s" "$credential"
  fi
}

main "$@"
