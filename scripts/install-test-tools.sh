#!/usr/bin/env bash
# System tools `npm test` drives for real, installed from Debian's archive when missing:
# rsync (the reload contract's `rsync -a --delete` row) and chromium (the web console's browser
# test, driven by playwright-core). Needs root and apt; the tests never install anything and fail
# with a message pointing here when a tool is missing. Idempotent: `npm run setup:test-tools`.
set -euo pipefail
missing=()
command -v rsync >/dev/null || missing+=(rsync)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools: rsync and chromium present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "test tools: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "test tools: installing ${missing[*]} needs root (or sudo)" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
  { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
echo "test tools: installed ${missing[*]}"
