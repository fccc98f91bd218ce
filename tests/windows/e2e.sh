#!/usr/bin/env bash
# End to end on Wine, called by run.sh: the Windows `rolecall.exe` renews a profile from a real
# STS (moto, on loopback), the Linux AWS CLI uses what it wrote, and `rolecall.exe daemon`
# serves `rolecall.exe status` over its named pipe, refuses a second daemon and stops cleanly
# on Ctrl-C (SIGINT, which Wine turns into a console Ctrl-C event).
# Needs: WINE, EXE (rolecall.exe), ROLECALL_VENV (moto and the AWS CLI), WINEPREFIX.
#
# Every Wine call writes into a file, never straight into a `$(...)` pipe: the first Wine
# process of a prefix starts Wine's services (winedevice.exe), which inherit its stdout and
# stderr and live as long as the wineserver, here as long as the daemon. Reading their pipe
# would wait for an end of file that never comes (it hung CI for an hour once).
set -euo pipefail

work=$(mktemp -d)
moto_pid="" daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; cat "$f" >&2; done; exit 1; }
pass() { echo "ok: $*"; }
winpath() { printf 'Z:%s' "${1//\//\\}"; }
# until CMD succeeds, for at most $1 tenths of a second of wall-clock time
retry() {
  local end=$(($(date +%s%N) / 100000000 + $1)); shift
  until "$@" >/dev/null 2>&1; do
    (($(date +%s%N) / 100000000 < end)) || return 1
    sleep 0.1
  done
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ROLECALL_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto_pid=$!
retry 300 curl -sf "http://127.0.0.1:$port/moto-api/" || fail "moto did not start"

cat > "$work/config.toml" <<'TOML'
[settings]
sts_timeout = "5s"

[sources.env]
kind = "environment"

[profiles.dev]
source = "env"
role_arn = "arn:aws:iam::222222222222:role/Dev"
TOML
export ROLECALL_CONFIG AWS_SHARED_CREDENTIALS_FILE
ROLECALL_CONFIG=$(winpath "$work/config.toml")
AWS_SHARED_CREDENTIALS_FILE=$(winpath "$work/credentials")
export AWS_ENDPOINT_URL_STS="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY
# rolecall.exe ARGS..., bounded; prints what it wrote once it has exited
rc() {
  local s=0
  timeout -k 5 60 "$WINE" "$EXE" "$@" > "$work/rc.out" 2>&1 < /dev/null || s=$?
  cat "$work/rc.out"
  return "$s"
}

out=$(rc refresh --all 2>&1) || fail "refresh: $out"
grep -q '^dev  *renewed' <<<"$out" || fail "refresh said: $out"
pass "rolecall.exe refresh renewed dev from moto"

arn=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE="$work/credentials" \
  AWS_CONFIG_FILE=/dev/null "$ROLECALL_VENV/bin/aws" sts get-caller-identity --profile dev \
  --query Arn --output text 2>&1) || fail "aws cli: $arn"
[[ $arn == *":assumed-role/Dev/"* ]] || fail "aws cli saw $arn"
pass "the AWS CLI used what rolecall.exe wrote ($arn)"

"$WINE" "$EXE" daemon > "$work/daemon.log" 2>&1 < /dev/null &
daemon_pid=$!
# in-process, status marks renewals as only due ("no daemon runs"); the daemon's has its plan
from_agent() { out=$(rc status 2>&1) && grep -q '^dev ' <<<"$out" && ! grep -q "no daemon runs" <<<"$out"; }
retry 300 from_agent || fail "no live status from the daemon over its pipe"
pass "rolecall.exe status answered by the daemon over the named pipe"

if out=$(rc daemon 2>&1); then fail "a second daemon started: $out"; fi
grep -q "already running" <<<"$out" || fail "second daemon said: $out"
pass "a second daemon is refused"

runtime="$WINEPREFIX/drive_c/users/$(id -un)/Temp/rolecall-$(id -un)"
[ -f "$runtime/agent.pipe" ] || fail "no agent.pipe in $runtime"
kill -INT "$daemon_pid"
gone() { ! kill -0 "$daemon_pid"; }
retry 300 gone || fail "the daemon did not stop within 30 s of Ctrl-C"
wait "$daemon_pid" || true
daemon_pid=""
grep -q "rolecall daemon stopped" "$work/daemon.log" || fail "the daemon did not stop cleanly"
[ ! -e "$runtime/agent.pipe" ] || fail "agent.pipe left behind"
pass "Ctrl-C stops the daemon cleanly and unpublishes its pipe"

out=$(rc status 2>&1) || fail "status without an agent: $out"
grep -q "no daemon runs" <<<"$out" || fail "status without an agent said: $out"
pass "with the daemon gone, status works in-process"
