#!/usr/bin/env bash
# What the browser tests need: Debian's Chromium (Playwright drives it; no browser download).
set -euo pipefail
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian's chromium for the browser tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[setup] the browser tests need Chromium at /usr/bin/chromium: install Debian's 'chromium' package" >&2
    exit 1
  fi
fi
