#!/usr/bin/env bash
# Screenshots a rendered report in headless Chromium, to look at what a reader sees.
#   scripts/screenshot-report.sh reports/quick/report.html [out.png] [width] [height]
# Needs Debian's chromium (apt-get install chromium).
set -euo pipefail
html=$(readlink -f "${1:?usage: $0 REPORT.html [OUT.png] [WIDTH] [HEIGHT]}")
out=$(readlink -f "${2:-${html%.html}.png}")
width=${3:-1200}
height=${4:-6000}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" \
  --window-size="$width,$height" --screenshot="$out" "file://$html" 2>/dev/null
echo "$out"
