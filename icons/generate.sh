#!/usr/bin/env bash
# Makes every PNG under icons/ from icons/rolecall.svg (the one source): the app icon sizes the
# bundler wants, and the tray's state variants (fresh, expiring, needs-mfa, error) in a dark
# glyph for light panels and a light glyph for dark panels. The PNGs are committed; run this
# after editing the SVG. Needs rsvg-convert (librsvg2-bin) or gdk-pixbuf-thumbnailer
# (libgdk-pixbuf2.0-bin with librsvg's pixbuf loader).
set -euo pipefail
cd "$(dirname "$0")"

render() { # svg-text size out.png
  local tmp
  tmp=$(mktemp --suffix=.svg)
  printf '%s' "$1" >"$tmp"
  if command -v rsvg-convert >/dev/null; then
    rsvg-convert -w "$2" -h "$2" -o "$3" "$tmp"
  else
    gdk-pixbuf-thumbnailer -s "$2" "$tmp" "$3"
  fi
  rm -f "$tmp"
}

src=$(cat rolecall.svg)
paint() { # glyph state
  local s=${src//#GLYPH/#$1}
  printf '%s' "${s//#STATE/#$2}"
}

# app icon: dark glyph, fresh dot; every size of the hicolor theme a desktop asks for (the Linux
# packages install them all), and the 256 px one again under the names the bundler's other
# platforms want
for size in 16 24 32 48 64 128 256 512; do
  render "$(paint 1f2933 2e9e5b)" "$size" "${size}x${size}.png"
done
cp 256x256.png icon.png
cp 256x256.png 128x128@2x.png

declare -A states=([fresh]=2e9e5b [expiring]=e0a100 [needs-mfa]=2f6fde [error]=d64545)
for state in "${!states[@]}"; do
  render "$(paint 1f2933 "${states[$state]}")" 64 "tray-$state-light.png" # for light panels
  render "$(paint f5f7fa "${states[$state]}")" 64 "tray-$state-dark.png"  # for dark panels
done
