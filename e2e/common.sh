# Shared by test.sh and demo.sh: prerequisites, a cached build, and the
# control plane with devicelink's CRDs and RBAC installed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEVICELINK_CACHE=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}
# Builds are cached outside the repository so a fresh clone reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$DEVICELINK_CACHE/target}

"$root/e2e/prereqs.sh"

start_control_plane() { # [--real-node NAME] NODE...
  eval "$("$root/e2e/controlplane/cluster.sh" up "$@")"
  trap '"$root/e2e/controlplane/cluster.sh" down' EXIT
  kubectl apply -f "$root/crds/generated/" -f "$root/deploy/manifests/namespace.yaml" >/dev/null
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
  # The RBAC the chart installs (rendered into deploy/manifests/rbac.yaml).
  kubectl apply -f "$root/deploy/manifests/rbac.yaml" >/dev/null
}
