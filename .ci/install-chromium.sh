#!/usr/bin/env bash
# Installs Chromium from Debian's packages when it is missing: the HTML report's tests
# (tests/test_html_report.py) render the page in a real headless browser.  Called by
# .ci/run before tox.  Without chromium those tests fail; B12DRUGS_NO_BROWSER=1 skips them.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
source "$(dirname "$0")/apt.sh"
apt_install chromium
chromium --version
