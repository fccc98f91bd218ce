#!/usr/bin/env bash
# `make demo`: Rolecall end to end on this machine, touching nothing of yours.
# A throwaway HOME, a local STS (moto), a private D-Bus session with its own gnome-keyring,
# a DEMO key (AWS's documented example key), three roles. Everything started here is stopped
# by PID on exit, and the throwaway HOME (it holds live demo credentials) is removed, unless
# ROLECALL_DEMO_KEEP=1.
# `make run` (`--app`): the same set-up, then the tray app in your real panel: a demo
# `rolecall daemon` hosts the engine on the private bus (so the demo keychain is the only one
# touched) and the app, on your own session bus so that your panel shows it, attaches to it.
# Answer its MFA popup with any 6 digits; quitting the app stops everything.
set -euo pipefail
app_mode=false
[ "${1:-}" = --app ] && app_mode=true
user_bus=${DBUS_SESSION_BUS_ADDRESS:-}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${ROLECALL_VENV:-$root/build/venv}
bin=$root/target/debug/rolecall
[ -x "$bin" ] || { echo "demo: build first: make build" >&2; exit 2; }
[ -x "$venv/bin/moto_server" ] || { echo "demo: run make deps first" >&2; exit 2; }

demo_home=$(mktemp -d /tmp/rolecall-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # wait for them, so that nothing writes into the directory while it is removed
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${ROLECALL_DEMO_KEEP:-}" = 1 ]; then
    echo "demo: stopped ${#pids[@]} processes; files kept in $demo_home (ROLECALL_DEMO_KEEP=1)"
  else
    rm -rf "$demo_home"
    echo "demo: stopped ${#pids[@]} processes; removed $demo_home (ROLECALL_DEMO_KEEP=1 keeps it)"
  fi
}
trap cleanup EXIT

# a clean environment: nothing of the developer's AWS or keychain setup leaks in
export HOME=$demo_home XDG_CONFIG_HOME=$demo_home/.config XDG_DATA_HOME=$demo_home/.local/share \
       XDG_RUNTIME_DIR=$demo_home/run
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_CONFIG_FILE \
      AWS_SHARED_CREDENTIALS_FILE ROLECALL_CONFIG DBUS_SESSION_BUS_ADDRESS

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$demo_home/moto.log" 2>&1 &
pids+=($!)
export AWS_ENDPOINT_URL_STS=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL_STS/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done

# private session bus + Secret Service (the demo keychain; unlocked with a throwaway password)
dbus-daemon --session --nofork --print-address=1 >"$demo_home/dbus.addr" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -s "$demo_home/dbus.addr" ] && break; sleep 0.05; done
export DBUS_SESSION_BUS_ADDRESS=$(head -1 "$demo_home/dbus.addr")
printf demo | gnome-keyring-daemon --unlock --components=secrets --foreground >/dev/null 2>&1 &
pids+=($!)
# ready once the login keyring it creates from the password exists as the default collection
# (it owns its bus name before that: a `keys add` then finds "no default keyring")
for _ in $(seq 200); do
  gdbus call --session --dest org.freedesktop.secrets --object-path /org/freedesktop/secrets \
    --method org.freedesktop.Secret.Service.ReadAlias default 2>/dev/null |
    grep -q /org/freedesktop/secrets/collection/ && break
  sleep 0.05
done

run() { echo; echo "\$ $*"; "$@"; }
rolecall() { "$bin" "$@"; }
mkdir -p "$XDG_CONFIG_HOME/rolecall" "$HOME/.aws"
printf '# my own profile: Rolecall never touches it\n[personal]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = not-a-real-secret\n' >"$HOME/.aws/credentials"
chmod 600 "$HOME/.aws/credentials"

echo "demo HOME: $demo_home   local STS: $AWS_ENDPOINT_URL_STS"
echo
echo "\$ rolecall keys add demo --mfa-serial arn:aws:iam::123456789012:mfa/demo   (DEMO key on stdin)"
printf 'AKIAIOSFODNN7EXAMPLE\nwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n' |
  rolecall keys add demo --mfa-serial arn:aws:iam::123456789012:mfa/demo
# keys add created [sources.demo]; now three roles on it (one chained)
cat >>"$XDG_CONFIG_HOME/rolecall/config.toml" <<'TOML'
# Rolecall demo config
[profiles.dev-admin]
source = "demo"
role_arn = "arn:aws:iam::222222222222:role/Admin"
region = "eu-west-1"

[profiles.prod-readonly]
source = "demo"
role_arn = "arn:aws:iam::333333333333:role/ReadOnly"
duration = "2h"

[profiles.audit]
source = "dev-admin"
role_arn = "arn:aws:iam::444444444444:role/Audit"
TOML
if $app_mode; then
  # ROLECALL_DEMO_APP: a program run in the app's place (installers/screenshots.sh starts the
  # real app from it, photographs it and quits it)
  app=${ROLECALL_DEMO_APP:-$root/target/debug/rolecall-app}
  [ -x "$app" ] || { echo "run: build first: make build" >&2; exit 2; }
  [ -n "$user_bus" ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] ||
    { echo "run: needs a desktop session (DISPLAY and a session bus)" >&2; exit 2; }
  "$bin" daemon >"$demo_home/daemon.log" 2>&1 &  # the binary itself: its pid is what cleanup kills
  pids+=($!)
  for _ in $(seq 100); do [ -S "$XDG_RUNTIME_DIR/rolecall/agent.sock" ] && break; sleep 0.05; done
  echo "run: the tray app is starting; it asks for an MFA code (any 6 digits). Quit it from its menu."
  DBUS_SESSION_BUS_ADDRESS=$user_bus "$app" 2>"$demo_home/app.log" || true
  exit 0
fi
run cat "$XDG_CONFIG_HOME/rolecall/config.toml"   # the config this demo uses
run rolecall status
run rolecall refresh --mfa-code - <<<123456   # the code on stdin, not in `ps`
run rolecall use dev-admin
run rolecall status
run cat "$HOME/.aws/credentials"
run "$venv/bin/aws" sts get-caller-identity --profile audit --region us-east-1
run rolecall refresh
