#!/usr/bin/env bash
# Installs Chromium from Debian's packages when it is missing: the HTML report's tests
# (tests/test_html_report.py) render the page in a real headless browser.  Called by
# .ci/run before tox.  Without chromium those tests fail; B12DRUGS_NO_BROWSER=1 skips them.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: chromium is missing and apt-get is not available;" \
       "install Chromium, or set B12DRUGS_NO_BROWSER=1 to skip the browser tests" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium >/dev/null
chromium --version
