#!/usr/bin/env bash
# Makes sure Helm is installed (built once from its Go module, cached under
# $DEVICELINK_CACHE/tools) and prints the path of the binary.
set -euo pipefail
version=v3.19.0
# What Helm's own release build sets: without it `helm template` assumes
# Kubernetes 1.20 and refuses the chart's kubeVersion (1.31 or newer).
kube_minor=34   # Helm 3.19 is built with client-go v0.34
tools=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}/tools/helm-$version-k1.$kube_minor
helm=$tools/bin/helm
if ! [ -x "$helm" ]; then
  echo "helm: building $version (once; cached in $tools)" >&2
  flags="-X helm.sh/helm/v3/internal/version.version=$version"
  for pkg in chartutil lint/rules; do
    flags+=" -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMinor=$kube_minor"
  done
  GOBIN=$tools/bin go install -ldflags "$flags" "helm.sh/helm/v3/cmd/helm@$version" >&2
fi
echo "$helm"
