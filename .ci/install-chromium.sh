#!/usr/bin/env bash
# Chromium from Debian, for the report's layout test (tests/browser.py: the home page at 1400 x 900,
# headless). Only installs; without it that test skips, except under CI=true, where it fails.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    echo "install-chromium: chromium is already installed"
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium
