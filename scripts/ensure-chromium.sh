#!/usr/bin/env bash
# The status-page test drives Debian's headless Chromium; install it when it is missing
# (CI machines start without it). Needs root or sudo and Debian's package registry.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q chromium >/dev/null
}
command -v chromium >/dev/null
