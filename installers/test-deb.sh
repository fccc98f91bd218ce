#!/usr/bin/env bash
# `make test-package`: the packages `make package` built, checked for real (issue 16).
#
# The .deb is installed on this machine with `apt-get install ./….deb` (as root: CI runs as root
# on Debian 12; under `flock /tmp/rolecall-apt.lock`, since dpkg allows one install at a time),
# then:
#   - `rolecall --version`, `man rolecall` (and a subcommand's page), the completions loaded
#     by bash, zsh and fish from their standard directories, the icons at every size,
#     `desktop-file-validate` on the desktop entry, `systemd-analyze verify` on the user unit;
#   - the integration tests' desktop and unit tests run against the INSTALLED binaries
#     (ROLECALL_BIN=/usr/bin/rolecall; the app is found beside it): the app starts under Xvfb
#     on a private bus and its tray item and menu answer, "Start at login" writes an autostart
#     entry whose Exec is /usr/bin/rolecall-app, `daemon --install-unit` names /usr/bin/rolecall;
#   - a throwaway user (HOME, config, credentials file, a key in a private gnome-keyring, stored
#     by the installed CLI) is left untouched, byte for byte, by installing a newer version over
#     this one (this .deb repacked with a higher version) and by removing the package, whose
#     files are then all gone; the key is still readable after both.
# The .rpm is not installed (Debian): its file list and dependencies are read with rpm -qlp/-qpR.
# The package must not be installed beforehand; it is removed on exit whatever happens.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
say() { echo "test-package: $*"; }
fail() {
  echo "test-package: FAIL: $*" >&2
  exit 1
}
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
apt() { flock /tmp/rolecall-apt.lock $sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@"; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

shopt -s nullglob
debs=(target/release/bundle/deb/*.deb)
rpms=(target/release/bundle/rpm/*.rpm)
shopt -u nullglob
[ ${#debs[@]} = 1 ] || fail "want one .deb in target/release/bundle/deb, found ${#debs[@]}: make package"
[ ${#rpms[@]} = 1 ] || fail "want one .rpm in target/release/bundle/rpm, found ${#rpms[@]}: make package"
deb=$root/${debs[0]} rpm=$root/${rpms[0]}
pkg=$(dpkg-deb -f "$deb" Package)
version=$(dpkg-deb -f "$deb" Version)
installed "$pkg" && fail "$pkg is installed on this machine already: remove it first (apt-get remove $pkg)"

tmp=$(mktemp -d /tmp/rolecall-test-package.XXXXXX)
cleanup() {
  local rc=$?
  if installed "$pkg"; then apt remove "$pkg" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT

# --- what the package holds, before installing it ----------------------------------------------
man_pages=(rolecall rolecall-refresh rolecall-keys-add rolecall-daemon)
icon_sizes=(16 24 32 48 64 128 256 512)
want=(/usr/bin/rolecall /usr/bin/rolecall-app /usr/share/applications/Rolecall.desktop
  /usr/lib/systemd/user/rolecall.service
  /usr/share/bash-completion/completions/rolecall
  /usr/share/fish/vendor_completions.d/rolecall.fish)
for page in "${man_pages[@]}"; do want+=("/usr/share/man/man1/$page.1.gz"); done
for size in "${icon_sizes[@]}"; do
  want+=("/usr/share/icons/hicolor/${size}x${size}/apps/rolecall-app.png")
done
deb_files=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|')
for f in "${want[@]}" /usr/share/zsh/vendor-completions/_rolecall; do
  grep -qxF "$f" <<<"$deb_files" || fail ".deb: no $f in it"
done
depends=$(dpkg-deb -f "$deb" Depends) recommends=$(dpkg-deb -f "$deb" Recommends)
for dep in libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1 libdbus-1-3; do
  grep -qw -- "$dep" <<<"$depends" || fail ".deb: Depends has no $dep: $depends"
done
grep -qw gnome-keyring <<<"$recommends" || fail ".deb: Recommends no Secret Service: $recommends"
# no debug info, symbols or paths of this machine inside
dpkg-deb -x "$deb" "$tmp/deb"
for f in "$tmp"/deb/usr/bin/*; do
  readelf -S "$f" | grep -qE '\.(debug_[a-z]+|symtab)\b' && fail ".deb: ${f#"$tmp"/deb} has debug sections or symbols"
done
for path in "$root" "${CARGO_HOME:-$HOME/.cargo}"; do
  hits=$(grep -rlaF "$path" "$tmp/deb" || true)
  [ -z "$hits" ] || fail ".deb: the build path $path is inside: ${hits//$tmp\/deb/}"
done
deb_size=$(stat -c %s "$deb")
say "the .deb ($((deb_size / 1024)) KiB) holds the app, the CLI, man pages, completions, icons and the unit"

# --- the .rpm: contents and dependencies ---------------------------------------------------------
rpm_files=$(rpm -qlp "$rpm" 2>/dev/null)
for f in "${want[@]}" /usr/share/zsh/site-functions/_rolecall; do
  grep -qxF "$f" <<<"$rpm_files" || fail ".rpm: no $f in it"
done
rpm_requires=$(rpm -qpR "$rpm" 2>/dev/null)
for dep in 'libwebkit2gtk-4.1.so.0()(64bit)' 'libgtk-3.so.0()(64bit)' \
  'libayatana-appindicator3.so.1()(64bit)' 'libdbus-1.so.3()(64bit)'; do
  grep -qxF "$dep" <<<"$rpm_requires" || fail ".rpm: does not require $dep: $rpm_requires"
done
rpm -qp --recommends "$rpm" 2>/dev/null | grep -qw gnome-keyring || fail ".rpm: recommends no Secret Service"
say "the .rpm ($(($(stat -c %s "$rpm") / 1024)) KiB) holds the same files and requires the libraries"

# --- install ------------------------------------------------------------------------------------
apt install "$deb" >"$tmp/apt-install.log" 2>&1 || {
  cat "$tmp/apt-install.log" >&2
  fail "apt-get install $deb"
}
installed "$pkg" || fail "$pkg is not installed after apt-get install"
for f in "${want[@]}" /usr/share/zsh/vendor-completions/_rolecall; do
  [ -e "$f" ] || fail "installed: $f is missing"
done
say "installed $pkg $version"

# a throwaway user: nothing of this machine's user or session is seen
home=$tmp/home
mkdir -p "$home/.config" "$home/.local/share" "$home/.cache" "$home/.local/state" "$tmp/run"
chmod 700 "$tmp/run"
user_env=(env -i PATH=/usr/bin:/bin HOME="$home" XDG_CONFIG_HOME="$home/.config"
  XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache"
  XDG_STATE_HOME="$home/.local/state" XDG_RUNTIME_DIR="$tmp/run" LANG=C.UTF-8 TERM=dumb)
as_user() { "${user_env[@]}" "$@"; }

[ "$(command -v rolecall)" = /usr/bin/rolecall ] || fail "rolecall is not /usr/bin/rolecall on PATH"
got=$(as_user rolecall --version)
[ "$got" = "rolecall ${version%%[-+~]*}" ] || fail "rolecall --version says '$got', the package is $version"
say "ok: rolecall --version: $got"

[ "$(as_user man -w rolecall)" = /usr/share/man/man1/rolecall.1.gz ] || fail "man -w rolecall: $(as_user man -w rolecall 2>&1)"
shown=$(as_user MANWIDTH=120 man -P cat rolecall 2>&1)
grep -q 'rolecall-refresh(1)' <<<"$shown" || fail "man rolecall lists no subcommand pages:
$shown"
as_user MANWIDTH=120 man -P cat rolecall-keys-add | grep -q -- '--mfa-serial' || fail "man rolecall-keys-add shows no --mfa-serial"
say "ok: man rolecall, man rolecall-keys-add"

# completions, from where each shell looks by itself (no rc file): subcommands come back
bash_words=$(as_user bash --norc --noprofile -c '
  source /usr/share/bash-completion/completions/rolecall
  COMP_WORDS=(rolecall ref); COMP_CWORD=1; COMP_TYPE=9
  _clap_complete_rolecall rolecall ref rolecall
  printf "%s\n" "${COMPREPLY[@]}"')
grep -qx 'refresh' <<<"$bash_words" || fail "bash: completing 'rolecall ref' gave: $bash_words"
# zsh completes only in its line editor: an interactive zsh on a pseudo-terminal (zpty), whose
# FIRST Tab after `compinit` must complete (that Tab autoloads _rolecall from the fpath)
zsh_line=$(as_user timeout 30 zsh -f -c '
  zmodload zsh/zpty
  zpty z "zsh -f -i"
  zpty -w z "autoload -Uz compinit; compinit -u -D; PS1=\"> \""
  zpty -w -n z $'"'"'rolecall refr\t\x01echo LINE=\n'"'"'
  zpty -r z out $'"'"'*\nLINE=*\n*'"'"'
  print -r -- ${${(M)${(f)out}:#LINE=*}//$'"'"'\r'"'"'/}' || true)
[ "$zsh_line" = 'LINE=rolecall refresh' ] || fail "zsh: the first Tab after 'rolecall refr' gave '$zsh_line'"
fish_words=$(as_user fish -c 'complete -C "rolecall ref"')
grep -q '^refresh' <<<"$fish_words" || fail "fish: completing 'rolecall ref' gave: $fish_words"
say "ok: completions load and complete in bash, zsh and fish"

desktop-file-validate /usr/share/applications/Rolecall.desktop || fail "desktop-file-validate Rolecall.desktop"
exec_line=$(sed -n 's/^Exec=//p' /usr/share/applications/Rolecall.desktop)
[ "$(command -v "${exec_line%% *}")" = /usr/bin/rolecall-app ] || fail "the desktop entry runs '$exec_line', not /usr/bin/rolecall-app"
grep -qx 'Icon=rolecall-app' /usr/share/applications/Rolecall.desktop || fail "the desktop entry's icon is not rolecall-app"
say "ok: the desktop entry validates and starts /usr/bin/rolecall-app"

unit=/usr/lib/systemd/user/rolecall.service
grep -qx 'ExecStart="/usr/bin/rolecall" daemon --log-format json' "$unit" || fail "$unit does not run /usr/bin/rolecall:
$(grep ExecStart "$unit")"
as_user systemd-analyze --user verify "$unit" || fail "systemd-analyze --user verify $unit"
say "ok: systemd-analyze accepts $unit"

# the installed app and CLI, through the integration tests (the bed starts Xvfb, a private bus
# with gnome-keyring, moto): tray item and menu, autostart entry, the unit the CLI writes
tests=(desktop::tray_lists_profiles_and_a_click_makes_one_active
  desktop::the_tray_icon_and_tooltip_say_all_fresh_or_who_needs_a_code
  desktop::start_at_login_writes_and_removes_a_quoted_entry_that_starts_hidden
  cli::issue_14_daemon_install_unit_names_this_binary_and_systemd_accepts_it
  package::issue_16_man_pages_come_from_the_clap_definition_and_man_renders_them)
ROLECALL_BIN=/usr/bin/rolecall ${CARGO:-cargo} test --workspace --locked --test integration \
  -- --exact "${tests[@]}" >"$tmp/cargo-test.log" 2>&1 || true
n=$(grep -cE '^test .* \.\.\. ok$' "$tmp/cargo-test.log" || true)
[ "$n" = ${#tests[@]} ] || {
  cat "$tmp/cargo-test.log" >&2
  fail "the installed binaries passed $n of ${#tests[@]} integration tests"
}
say "ok: the installed app and CLI pass ${tests[*]}"

# --- a user's data across an upgrade and the removal ---------------------------------------------
# a session bus and a gnome-keyring whose login keyring lives in the throwaway HOME
password=rolecall-test-package
in_session() { # bash script, run inside a private session bus with the keyring unlocked
  as_user PW="$password" dbus-run-session -- bash -euo pipefail -c '
    printf "%s" "$PW" | gnome-keyring-daemon --unlock --components=secrets --foreground \
      >"$XDG_RUNTIME_DIR/keyring.log" 2>&1 &
    keyring=$!
    trap "kill $keyring" EXIT
    # ready when it owns the name (else a client would have D-Bus start another daemon) and a
    # probe secret can be stored and read back (as the test bed waits)
    owned() {
      gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
        --method org.freedesktop.DBus.NameHasOwner org.freedesktop.secrets | grep -q true
    }
    for _ in $(seq 150); do
      owned && break
      kill -0 $keyring || { cat "$XDG_RUNTIME_DIR/keyring.log" >&2; exit 1; }
      sleep 0.1
    done
    for _ in $(seq 150); do
      printf probe | secret-tool store --label=probe service rolecall-probe username probe 2>/dev/null &&
        [ "$(secret-tool lookup service rolecall-probe username probe 2>/dev/null)" = probe ] && break
      kill -0 $keyring || { cat "$XDG_RUNTIME_DIR/keyring.log" >&2; exit 1; }
      sleep 0.1
    done
    '"$1" 2> >(grep -vE '^dbus-daemon\[' >&2)
}
mkdir -p "$home/.aws"
printf '[personal]\naws_access_key_id = AKIAI44QH8DHBEXAMPLE\naws_secret_access_key = users-own\n' \
  >"$home/.aws/credentials"
in_session 'printf "AKIAIOSFODNN7EXAMPLE\nsecret-of-the-test\n" | rolecall keys add work >/dev/null
  rolecall keys list' | grep -q work || fail "the installed rolecall did not store a key"
for f in "$home/.config/rolecall/config.toml" "$home/.aws/credentials"; do
  [ -s "$f" ] || fail "no $f to keep"
done
ls "$home"/.local/share/keyrings/*.keyring >/dev/null 2>&1 || fail "no keyring file in the throwaway HOME"
snapshot() { (cd "$home" && find . -type f ! -path './.cache/*' -print0 | sort -z | xargs -0 sha256sum); }
snapshot >"$tmp/before"
# the files first: a keychain session (ours included) may rewrite the keyring file, so the
# baseline is taken again after each one
key_still_there() {
  snapshot | diff "$tmp/before" - >&2 || fail "after $1: the user's files changed"
  in_session 'rolecall keys list' | grep -q work || fail "after $1: the key is not in the keychain"
  snapshot >"$tmp/before"
}

# a newer version of the same package (this .deb with a higher version), installed over it
dpkg-deb -R "$deb" "$tmp/newer"
sed -i "s/^Version: .*/Version: $version+pkgtest1/" "$tmp/newer/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -b "$tmp/newer" "$tmp/${pkg}_newer.deb" >/dev/null
apt install "$tmp/${pkg}_newer.deb" >"$tmp/apt-upgrade.log" 2>&1 || {
  cat "$tmp/apt-upgrade.log" >&2
  fail "apt-get install (upgrade) $tmp/${pkg}_newer.deb"
}
[ "$(dpkg-query -W -f='${Version}' "$pkg")" = "$version+pkgtest1" ] || fail "the upgrade did not take"
key_still_there "the upgrade to $version+pkgtest1"
say "ok: upgrading to $version+pkgtest1 keeps the user's config, credentials file and keychain"

apt remove "$pkg" >"$tmp/apt-remove.log" 2>&1 || {
  cat "$tmp/apt-remove.log" >&2
  fail "apt-get remove $pkg"
}
installed "$pkg" && fail "$pkg is still installed after apt-get remove"
left=()
for f in $deb_files; do [ -f "$f" ] || [ -L "$f" ] && left+=("$f"); done
[ ${#left[@]} = 0 ] || fail "left after removal: ${left[*]}"
command -v rolecall >/dev/null && fail "rolecall is still on PATH after removal"
snapshot | diff "$tmp/before" - >&2 || fail "after the removal: the user's files changed"
# the key, read without rolecall now: secret-tool finds Rolecall's entry by its service
in_session 'secret-tool search --all service rolecall 2>&1' | grep -qx 'attribute.username = source:work' ||
  fail "after the removal: the key is not in the keychain"
say "ok: removing $pkg removes its files and keeps the user's config, credentials file and keychain"

say "passed in $(($(date +%s) - started)) s (.deb $((deb_size / 1024)) KiB)"
