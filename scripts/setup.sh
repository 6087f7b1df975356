#!/usr/bin/env bash
# Installs what one entry point of the README needs on a fresh Debian machine, and nothing more:
#
#   scripts/setup.sh demo   the Python package alone (`make demo`: the demo runs on the local runtime
#                           and needs no system program; `rollouts demo --prometheus` also wants Debian's
#                           `prometheus`, installed with ROLLOUTS_SYSTEM_PACKAGES=prometheus)
#   scripts/setup.sh test   the package with its test extras, and the system programs the integration
#                           tests drive: Prometheus and promtool, Chromium for the dashboard's browser
#                           tests (Playwright with executable_path=/usr/bin/chromium), kubectl when the
#                           machine lacks it (Debian's kubernetes-client), and helm. The default.
#
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:-test}
case "$profile" in
  demo) default_packages="" ; extras="" ;;
  test) default_packages="prometheus chromium" ; extras="[test]" ;;
  *) echo "setup: unknown profile \"$profile\" (use demo or test)" >&2; exit 2 ;;
esac

# kubectl drives the local cluster in the tests; the machine image usually has it, else Debian's package.
if [ "$profile" = test ] && ! command -v kubectl >/dev/null 2>&1; then
  default_packages="$default_packages kubernetes-client"
fi
want_system_packages=${ROLLOUTS_SYSTEM_PACKAGES:-$default_packages}
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

python3 -m pip install -q -e ".${extras}"

# helm for the chart's tests (no Debian package: charts/install-helm.sh says where it comes from).
if [ "$profile" = test ]; then
  bash charts/install-helm.sh || echo "setup: helm is not installed; the Helm chart tests will be skipped" >&2
fi
