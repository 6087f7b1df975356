#!/usr/bin/env bash
# Installs what rollouts and its tests need on a fresh Debian machine: the Python package with its
# test extras, and the system programs the integration tests drive (Prometheus and promtool, Chromium for
# the dashboard's browser tests, driven by Playwright with executable_path=/usr/bin/chromium).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system_packages=${ROLLOUTS_SYSTEM_PACKAGES:-prometheus chromium}
missing=()
for pkg in $want_system_packages; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: cannot install ${missing[*]} (need root and apt-get); the tests that use them will be skipped" >&2
  fi
fi

python3 -m pip install -q -e '.[test]'
