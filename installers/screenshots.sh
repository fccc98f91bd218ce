#!/usr/bin/env bash
# `make screenshots`: the tray screenshots in docs/screenshots, taken from the real app.
# Xvfb has no panel, so nothing would draw a tray icon: this starts one. In a throwaway HOME, on
# a private session bus (dbus-run-session), it starts Xvfb, xfconfd and an xfce4-panel whose
# only plugins are a separator, the Status Tray (it owns org.kde.StatusNotifierWatcher and
# draws StatusNotifierItems) and a clock; then `installers/demo.sh --app` sets up the demo
# (moto, private keychain, demo key with MFA, three roles, a demo `rolecall daemon`) and runs
# this script again in the app's place (ROLECALL_DEMO_APP), which starts the real app on the
# panel's bus, clicks the tray icon with xdotool and captures the screen with ImageMagick:
#   tray-needs-mfa.png  the menu while a code is needed, with the MFA popup beside it
#   tray-menu.png       after the code was typed into the popup and `rolecall use dev-admin`
# Then it quits the app from its menu (demo.sh stops what it started) and stops the rest by
# PID. Needs Debian's xfce4-panel and xdotool besides what `make deps` installs. Not part of
# `make test`. ROLECALL_SHOTS_KEEP=1 keeps the throwaway directory (logs, raw captures).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
self=$root/installers/screenshots.sh
out=$root/docs/screenshots
fail() { echo "screenshots: $*" >&2; exit 1; }

# wait_for SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it succeeds
wait_for() {
  local secs=$1 what=$2
  shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "gave up after ${secs} s waiting for $what"
}
# the xfconf daemon (not on PATH), from its D-Bus service file
xfconfd() { sed -n 's/^Exec=//p' /usr/share/dbus-1/services/org.xfce.Xfconf.service 2>/dev/null; }
bus_has() {
  gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
    --method org.freedesktop.DBus.NameHasOwner -- "$1" | grep -q true
}

# --- step 1 (run by hand or `make screenshots`): a throwaway HOME and a private session bus ---
outer() {
  for tool in Xvfb xfce4-panel "$(xfconfd)" xdotool import convert identify display gdbus \
              dbus-run-session; do
    command -v "$tool" >/dev/null ||
      fail "${tool:-xfconfd} is missing: make deps, and apt-get install xfce4-panel xdotool"
  done
  [ -x "$root/target/debug/rolecall-app" ] && [ -x "$root/target/debug/rolecall" ] ||
    fail "build first: make build"
  local dir started
  dir=$(mktemp -d /tmp/rolecall-shots.XXXXXX)
  started=$(date +%s)
  # the panel: a separator (pushes the rest right), the Status Tray, a clock
  mkdir -p "$dir/home/.config/xfce4/xfconf/xfce-perchannel-xml" "$dir/run"
  chmod 700 "$dir/run"
  cat >"$dir/home/.config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="length" type="uint" value="100"/>
      <property name="size" type="uint" value="34"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
        <value type="int" value="3"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-2" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>
    </property>
    <property name="plugin-3" type="string" value="clock">
      <property name="digital-layout" type="uint" value="3"/>
      <property name="digital-time-format" type="string" value="%H:%M"/>
    </property>
  </property>
</channel>
XML
  local ok=false
  env -u DISPLAY -u WAYLAND_DISPLAY -u DBUS_SESSION_BUS_ADDRESS -u SESSION_MANAGER \
    HOME="$dir/home" XDG_CONFIG_HOME="$dir/home/.config" XDG_CACHE_HOME="$dir/home/.cache" \
    XDG_DATA_HOME="$dir/home/.local/share" XDG_RUNTIME_DIR="$dir/run" \
    NO_AT_BRIDGE=1 GIO_USE_VFS=local ROLECALL_SHOTS_DIR="$dir" ROLECALL_SHOTS_STEP=session \
    dbus-run-session -- bash "$self" 2>"$dir/session.err" && [ -f "$dir/done" ] && ok=true
  # without the bus's notes on the services it started
  grep -vE '^dbus-daemon\[|^SpiRegistry' "$dir/session.err" >&2 || true
  if $ok; then
    mkdir -p "$out"
    for shot in tray-menu tray-needs-mfa; do
      convert "$dir/$shot.png" -strip "$out/$shot.png"
      echo "screenshots: wrote docs/screenshots/$shot.png ($(identify -format '%wx%h' "$out/$shot.png"))"
    done
    echo "screenshots: done in $(($(date +%s) - started)) s"
  else
    echo "screenshots: failed; the app's log:" >&2
    tail -20 "$dir/app.log" >&2 2>/dev/null || true
  fi
  if [ "${ROLECALL_SHOTS_KEEP:-}" = 1 ]; then
    echo "screenshots: files kept in $dir"
  else
    rm -rf "$dir"
  fi
  $ok
}

# --- step 2 (inside dbus-run-session): Xvfb, xfconfd, the panel, then the demo ---
session() {
  local dir=$ROLECALL_SHOTS_DIR
  pids=()
  trap session_cleanup EXIT
  Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$dir/display" >"$dir/xvfb.log" 2>&1 &
  pids+=($!)
  wait_for 10 "Xvfb" test -s "$dir/display"
  export DISPLAY=:$(head -1 "$dir/display")
  # a desktop colour instead of Xvfb's black (`display` sets the root window's background)
  convert -size 1280x800 gradient:'#5b7fa6'-'#2f4a66' "$dir/desktop.png"
  display -window root "$dir/desktop.png" || true  # it sets the background, then exits 1
  "$(xfconfd)" >"$dir/xfconfd.log" 2>&1 &
  pids+=($!)
  wait_for 10 "xfconfd on the bus" bus_has org.xfce.Xfconf
  xfce4-panel --disable-wm-check >"$dir/panel.log" 2>&1 &
  pids+=($!)
  wait_for 20 "the panel's StatusNotifierWatcher" bus_has org.kde.StatusNotifierWatcher
  ROLECALL_SHOTS_STEP=app ROLECALL_DEMO_APP=$self bash "$root/installers/demo.sh" --app
  [ -f "$dir/done" ] || fail "the app step did not finish (see above)"
}
session_cleanup() {
  # what the app's WebKit started on this bus (the accessibility bus launcher)
  local a11y
  a11y=$(gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
    --method org.freedesktop.DBus.GetConnectionUnixProcessID -- org.a11y.Bus 2>/dev/null |
    grep -oE '[0-9]+' | head -1 || true)
  [ -n "$a11y" ] && pids+=("$a11y")
  xfce4-panel --quit >/dev/null 2>&1 || true
  local p
  for ((p = ${#pids[@]} - 1; p >= 0; p--)); do
    kill "${pids[p]}" 2>/dev/null || true
    wait "${pids[p]}" 2>/dev/null || true
  done
}

# --- step 3 (run by demo.sh in the app's place, in the demo's environment) ---
capture() { import -window root "$1"; }
# the visible windows of the panel's plugin process, "X Y W H" each
plugin_windows() {
  local w
  for w in $(xdotool search --onlyvisible --class wrapper-2.0 2>/dev/null); do
    # a window may vanish between search and geometry: skip it
    (eval "$(xdotool getwindowgeometry --shell "$w" 2>/dev/null)" &&
      echo "${X:-} ${Y:-} ${WIDTH:-} ${HEIGHT:-}") 2>/dev/null || true
  done
}
tray_geometry() { plugin_windows | awk 'NF == 4 && $2 == 0 && $3 > 8' | head -1; }
menu_geometry() { plugin_windows | awk 'NF == 4 && $2 > 0 && $4 > 100' | head -1; }
# the tray area shows something (more than the panel's colour)
icon_drawn() {
  local g
  g=$(tray_geometry)
  [ -n "$g" ] || return 1
  set -- $g
  [ "$(import -window root -crop "${3}x${4}+${1}+${2}" -format %k info:)" -gt 8 ]
}
# a screen region that no longer changes: two captures 0.3 s apart are the same
settled() {
  local a b
  a=$(import -window root -crop "$1" rgb:- | md5sum)
  sleep 0.3
  b=$(import -window root -crop "$1" rgb:- | md5sum)
  [ "$a" = "$b" ]
}
layout() {
  LC_ALL=C.UTF-8 gdbus call --session --dest "$app_bus" --object-path "$menu_path" \
    --method com.canonical.dbusmenu.GetLayout -- 0 -1 '[]'
}
# every profile shows its time left and dev-admin is checked
menu_ready() {
  local l
  l=$(layout | tee "$dir/layout.txt")
  l=$(grep -oE "\{[^{}]*\}" <<<"$l")  # each item's properties
  [ "$(grep -cE "'label': <'[a-z-]+ — [^']* left'>" <<<"$l")" = 3 ] &&
    grep -E "'label': <'dev-admin — [^']* left'>" <<<"$l" | grep -q "'toggle-state': <1>"
}
open_menu() {
  set -- $(tray_geometry)
  xdotool mousemove $(($1 + $3 / 2)) $(($2 + $4 / 2)) click 1
  wait_for 10 "the tray menu to open" menu_geometry
  menu=($(menu_geometry))
  wait_for 10 "the tray menu to be drawn" settled "${menu[2]}x${menu[3]}+${menu[0]}+${menu[1]}"
}
menu_closed() { [ -z "$(menu_geometry)" ]; }
close_menu() {
  xdotool key Escape
  wait_for 10 "the tray menu to close" menu_closed
}
popup_closed() { ! xdotool search --onlyvisible --name '^Rolecall: MFA code$'; }
app_gone() { ! kill -0 "$app_pid"; }
# crop the screen from x=LEFT to the right edge, from the top to y=BOTTOM, with a margin
save_crop() {
  local left=$(($2 - 16)) bottom=$(($3 + 16))
  ((left < 0)) && left=0
  convert "$dir/full.png" -crop "$((1280 - left))x${bottom}+${left}+0" +repage "$dir/$1.png"
}

app_step() {
  exec 2>&1
  dir=$ROLECALL_SHOTS_DIR
  NO_AT_BRIDGE=1 "$root/target/debug/rolecall-app" 2>"$dir/app.log" &
  app_pid=$!
  trap 'kill $app_pid 2>/dev/null || true; wait $app_pid 2>/dev/null || true' EXIT
  local items
  wait_for 30 "the app's item in the panel's watcher" bash -c \
    "gdbus call --session --dest org.kde.StatusNotifierWatcher --object-path /StatusNotifierWatcher \
      --method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierWatcher \
      RegisteredStatusNotifierItems | grep -q tray_icon_tray_app_rolecall"
  items=$(gdbus call --session --dest org.kde.StatusNotifierWatcher --object-path /StatusNotifierWatcher \
    --method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierWatcher RegisteredStatusNotifierItems)
  item=$(grep -oE "[^']*tray_icon_tray_app_rolecall" <<<"$items" | head -1)
  app_bus=${item%%/*} menu_path=/${item#*/}/Menu
  wait_for 30 "the tray icon to be drawn" icon_drawn
  echo "screenshots: the tray icon is in the panel"

  # the demo key needs a code: the app opened its MFA popup at start; put it beside the menu
  wait_for 30 "the MFA popup" xdotool search --onlyvisible --name '^Rolecall: MFA code$'
  popup=$(xdotool search --onlyvisible --name '^Rolecall: MFA code$' | head -1)
  open_menu
  close_menu
  local px=$((menu[0] - 380 - 24)) py=$((menu[1] + 12))
  xdotool windowmove --sync "$popup" "$px" "$py"
  wait_for 10 "the MFA popup to be drawn" settled "380x260+$px+$py"
  open_menu
  capture "$dir/full.png"
  save_crop tray-needs-mfa "$px" $((menu[1] + menu[3] > py + 260 ? menu[1] + menu[3] : py + 260))
  close_menu

  # any 6 digits: typed into the popup, which submits on the sixth and closes on success
  xdotool windowfocus --sync "$popup"
  xdotool type --delay 60 123456
  wait_for 30 "the MFA popup to close" popup_closed
  "$root/target/debug/rolecall" use dev-admin
  wait_for 30 "the menu to show the time left and dev-admin checked" menu_ready
  xdotool mousemove 640 400  # no tooltip over the icon
  wait_for 10 "the tray icon to be drawn" settled "$(tray_geometry | awk '{print $3 "x" $4 "+" $1 "+" $2}')"
  open_menu
  capture "$dir/full.png"
  save_crop tray-menu "${menu[0]}" $((menu[1] + menu[3]))
  close_menu

  # Quit from the menu: the app exits, then demo.sh stops its daemon, keychain, bus and moto
  local quit
  quit=$(layout | grep -oE "\(([0-9]+), \{[^{}]*'label': <'Quit'>" | grep -oE '^\([0-9]+' | tr -d '(')
  [ -n "$quit" ] || fail "no Quit item in the tray menu"
  gdbus call --session --dest "$app_bus" --object-path "$menu_path" \
    --method com.canonical.dbusmenu.Event -- "$quit" clicked '<int32 0>' 0 >/dev/null
  wait_for 20 "the app to quit" app_gone
  wait "$app_pid" || true
  touch "$dir/done"
}

case "${ROLECALL_SHOTS_STEP:-}" in
  "") outer ;;
  session) session ;;
  app) app_step ;;
  *) fail "unknown ROLECALL_SHOTS_STEP" ;;
esac
