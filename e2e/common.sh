# Shared by test.sh and demo.sh: prerequisites, a cached build, and the
# control plane with devicelink's CRDs and RBAC installed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEVICELINK_CACHE=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}
# Builds are cached outside the repository so a fresh clone reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$DEVICELINK_CACHE/target}

# One run at a time per cache: the control planes, brokers and node live at
# fixed places in it, and a second run would restart them under the first
# (a CI run once failed so, beside a test run left going). A later run
# waits for the earlier to end. The claim is a file naming this shell, not
# a lock on a descriptor, which the servers started here would inherit.
claim_cache() {
  local claim=$DEVICELINK_CACHE/run.pid holder said=
  mkdir -p "$DEVICELINK_CACHE"
  [ "${DEVICELINK_RUN:-}" = "$$" ] && return 0
  until (set -C; echo $$ >"$claim") 2>/dev/null; do
    holder=$(cat "$claim" 2>/dev/null || true)
    if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
      [ -n "$said" ] || echo "== waiting: process $holder ($(ps -o args= -p "$holder" | cut -c1-60)) is using $DEVICELINK_CACHE; it must end first (a demo ends with Ctrl-C)" >&2
      said=yes
      sleep 5
    else
      rm -f "$claim"
    fi
  done
  export DEVICELINK_RUN=$$
}
release_cache() {
  [ "$(cat "$DEVICELINK_CACHE/run.pid" 2>/dev/null)" = "$$" ] && rm -f "$DEVICELINK_CACHE/run.pid"
  return 0
}
claim_cache

"$root/e2e/prereqs.sh"

# Control planes started here, stopped at exit (each: cluster.sh's state
# directory, its API server's port and its etcd's port, empty for defaults).
control_planes=()
stop_control_planes() {
  local plane dir port etcd
  for plane in "${control_planes[@]}"; do
    IFS='|' read -r dir port etcd <<<"$plane"
    env ${dir:+DEVICELINK_CLUSTER_DIR=$dir} ${port:+DEVICELINK_APISERVER_PORT=$port} \
      ${etcd:+DEVICELINK_ETCD_PORT=$etcd} "$root/e2e/controlplane/cluster.sh" down || true
  done
}
trap 'stop_control_planes; release_cache' EXIT

# Starts a control plane (cluster.sh up ARGS), installs devicelink's CRDs
# and RBAC into it, and leaves KUBECONFIG and PATH set for it.
#   start_control_plane [--real-node NAME] NODE...
# With cluster.sh's defaults it is the usual one; DEVICELINK_CLUSTER_DIR,
# DEVICELINK_APISERVER_PORT and DEVICELINK_ETCD_PORT in the environment
# choose another, beside it.
start_control_plane() {
  control_planes+=("${DEVICELINK_CLUSTER_DIR:-}|${DEVICELINK_APISERVER_PORT:-}|${DEVICELINK_ETCD_PORT:-}")
  # Taken before it is evaluated, so that a failed start ends the run here
  # (an eval of nothing would succeed, and kubectl then reach no cluster).
  local environment
  environment=$("$root/e2e/controlplane/cluster.sh" up "$@")
  eval "$environment"
  kubectl apply -f "$root/api/generated/" -f "$root/deploy/manifests/namespace.yaml" >/dev/null
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
  # The RBAC the chart installs (rendered into deploy/manifests/rbac.yaml).
  kubectl apply -f "$root/deploy/manifests/rbac.yaml" >/dev/null
}
