#!/bin/sh
# Installs the pinned memlab (package-lock.json) into this folder once; the tests call it.
# --ignore-scripts and the PUPPETEER_* variables keep puppeteer, a dependency of memlab we
# never run, from downloading a browser.
set -eu
cd "$(dirname "$0")"
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    exit 0
fi
PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 \
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
