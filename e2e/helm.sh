#!/usr/bin/env bash
# Makes sure Helm is installed (built once from its Go module, cached under
# $DEVICELINK_CACHE/tools) and prints the path of the binary.
set -euo pipefail
version=v3.19.0
tools=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}/tools/helm-$version
helm=$tools/bin/helm
if ! [ -x "$helm" ]; then
  echo "helm: building $version (once; cached in $tools)" >&2
  GOBIN=$tools/bin go install "helm.sh/helm/v3/cmd/helm@$version" >&2
fi
echo "$helm"
