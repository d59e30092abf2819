#!/usr/bin/env bash
# Makes sure a headless Chromium is available for the HTML report tests
# (tests/test_html_report.py). Installs the Debian package when we are root; otherwise
# explains why not and exits 0, so the tests skip with that reason instead of failing.
set -u

if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure-chromium: chromium is not installed and we are not root;" \
         "install it (apt-get install chromium) to run the HTML report browser tests" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: chromium is not installed and there is no apt-get here;" \
         "install a Chromium and put it on PATH to run the HTML report browser tests" >&2
    exit 0
fi
echo "ensure-chromium: installing the Debian package chromium (once)" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2; then
    echo "ensure-chromium: apt-get could not install chromium; the browser tests will skip" >&2
fi
exit 0
