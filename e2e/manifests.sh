#!/usr/bin/env bash
# Renders the plain manifests in deploy/manifests/ from the Helm chart, the
# one source of the Deployment and the RBAC. With --check, fails if the
# committed ones differ from what the chart renders.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm=$("$root/e2e/helm.sh")
out=$root/deploy/manifests
render() { # FILE TEMPLATE... [--set VALUE]
  local args=()
  for t in "${@:2}"; do
    case $t in
      --set=*) args+=(--set "${t#--set=}") ;;
      *) args+=(--show-only "templates/$t") ;;
    esac
  done
  {
    echo "# Rendered from charts/devicelink by \`make manifests\`; edit the chart, not this file."
    "$helm" template devicelink "$root/charts/devicelink" --namespace devicelink-system "${args[@]}"
  } >"$1"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render "$tmp/rbac.yaml" operator-rbac.yaml adaptor-rbac.yaml reference-policy.yaml adaptor-write-policy.yaml operator-policy.yaml adaptor-pod-policy.yaml
render "$tmp/operator.yaml" deployment.yaml service.yaml
render "$tmp/console.yaml" console-rbac.yaml console.yaml --set=console.enabled=true
if [ "${1:-}" = --check ]; then
  for f in rbac.yaml operator.yaml console.yaml; do
    diff -u "$out/$f" "$tmp/$f" || { echo "deploy/manifests/$f is out of date: run make manifests" >&2; exit 1; }
  done
  echo "manifests: in sync with the chart" >&2
else
  cp "$tmp/rbac.yaml" "$tmp/operator.yaml" "$tmp/console.yaml" "$out/"
  echo "manifests: rendered into deploy/manifests/" >&2
fi
