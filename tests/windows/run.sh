#!/usr/bin/env bash
# `make test-windows`: the engine's unit tests (the agent's named-pipe transport among them)
# built for x86_64-pc-windows-gnu and run under Wine, and the CLI built for Windows and run end
# to end under Wine (e2e.sh).
#
# This machine's rustup toolchain has only the Linux standard library and cannot download
# another, so the Windows std is built from source (-Zbuild-std) by Debian's rustc-web, whose
# std source Debian ships as rust-web-src; RUSTC_BOOTSTRAP=1 unlocks -Z on that stable
# compiler. mingw-w64 links; Wine runs. Wine is not Windows: what this proves is that the
# Windows code compiles, links and behaves on Wine's implementation of the same Win32 calls.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export WINEPREFIX="$PWD/build/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
export ROLECALL_VENV="${ROLECALL_VENV:-$PWD/build/venv}"  # moto and the AWS CLI (make deps)
TARGET=x86_64-pc-windows-gnu
TARGET_DIR="$PWD/target/windows"
WINE=/usr/lib/wine/wine64
# every Wine process of this prefix ends with the run, whatever happens
trap '"$(dirname "$WINE")/wineserver" -k 2>/dev/null || true' EXIT
cargo_w() { "$CARGO" "$@" --locked -Zbuild-std --target "$TARGET" --target-dir "$TARGET_DIR"; }

echo "== building for $TARGET with $("$RUSTC" --version)"
cargo_w build -p rolecall-cli
# built first with its messages shown (a compile error must be read in CI), then asked for
# the executable's path (nothing left to build)
cargo_w test -p rolecall-core --lib --no-run
exe=$(cargo_w test -p rolecall-core --lib --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -n "$exe" ] || { echo "no test executable was built" >&2; exit 1; }

shim="$TARGET_DIR/bcryptprimitives.dll"
x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" tests/windows/bcryptprimitives.c -ladvapi32
for dir in "$(dirname "$exe")" "$TARGET_DIR/$TARGET/debug"; do cp "$shim" "$dir/"; done

mkdir -p "$WINEPREFIX"
echo "== rolecall.exe under $("$WINE" --version)"
"$WINE" "$TARGET_DIR/$TARGET/debug/rolecall.exe" --version
echo "== the engine's unit tests under Wine"
timeout -k 10 1200 "$WINE" "$exe" --test-threads 2
echo "== end to end under Wine"
WINE="$WINE" EXE="$TARGET_DIR/$TARGET/debug/rolecall.exe" timeout -k 10 600 bash tests/windows/e2e.sh
