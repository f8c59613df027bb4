#!/usr/bin/env bash
# A real Kubernetes control plane for the demo and the tests: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes
# whose pods go to Running) and, on request, a real node (node.sh: kubelet,
# containerd, kube-proxy). Built by build.sh, cached outside the repository.
# The API server listens on the node network's address (node.sh network),
# which this host and pods on the real node both reach.
#
#   cluster.sh up [--real-node NAME] [NODE...]
#                             start (fresh etcd), create fake nodes NODE...,
#                             start the real node NAME, print env
#   cluster.sh down           stop everything that `up` started
#   cluster.sh env            print the environment for a running cluster
#
# Everything lives in $DEVICELINK_CLUSTER_DIR (default ~/.cache/devicelink/cluster).
# Another control plane can run beside it with its own directory and ports
# (DEVICELINK_APISERVER_PORT, DEVICELINK_ETCD_PORT; the controller manager,
# scheduler and kwok take the three ports after the API server's); only
# one of them may have the real node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${DEVICELINK_CLUSTER_DIR:-$HOME/.cache/devicelink/cluster}
port=${DEVICELINK_APISERVER_PORT:-16443}
etcd_port=${DEVICELINK_ETCD_PORT:-12379}
token=devicelink-admin-token
# The address the API server binds: the node network's (node.sh).
address=10.201.0.1

log() { echo "cluster: $*" >&2; }

# The cluster's keys and certificates, made once: a CA, the API server's
# serving certificate (for this host, the node network and the `kubernetes`
# Service), its client certificate towards kubelets, the service account key.
pki() {
  local pki=$dir/pki sans="IP:127.0.0.1,IP:$address,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # Made for other addresses (an older layout): make them again.
  [ "$(cat "$pki/sans" 2>/dev/null)" = "$sans" ] || rm -rf "$pki"
  mkdir -p "$pki"
  [ -f "$pki/ca.key" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
    -subj "/CN=devicelink-test-ca" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" \
    -subj "/CN=kube-apiserver" 2>/dev/null
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans") \
    -out "$pki/apiserver.crt" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/apiserver-kubelet-client.key" \
    -out "$pki/apiserver-kubelet-client.csr" -subj "/CN=kube-apiserver-kubelet-client/O=system:masters" 2>/dev/null
  openssl x509 -req -in "$pki/apiserver-kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 3650 -out "$pki/apiserver-kubelet-client.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  echo "$sans" >"$pki/sans"
}

print_env() {
  echo "export KUBECONFIG=$dir/kubeconfig"
  echo "export PATH=$(cat "$dir/bindir"):\$PATH"
}

start() { # name, command...
  local name=$1; shift
  nohup "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name"
}

stop_all() {
  [ -d "$dir/pids" ] || return 0
  # The real node: its kubelet first (so it restarts nothing), then its
  # containers, runtime and network.
  for p in kubelet kube-proxy coredns; do
    # A run killed before its cleanup leaves the files of processes long
    # gone: killing those fails, which must not end this script.
    if [ -f "$dir/pids/$p" ]; then kill "$(cat "$dir/pids/$p")" 2>/dev/null || true; fi
    rm -f "$dir/pids/$p"
  done
  # The node is this host's one (its containerd, iptables chains): only the
  # control plane that started it stops it, not another beside it. The
  # default one always does, for a node left by an older layout.
  if [ -e "$dir/real-node" ] || [ "$dir" = "$HOME/.cache/devicelink/cluster" ]; then
    "$here/node.sh" down
    rm -f "$dir/real-node"
  fi
  local pids=()
  for f in "$dir"/pids/*; do
    [ -e "$f" ] || continue
    pids+=("$(cat "$f")")
  done
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir/pids"
}

wait_ready() { # what, command...: retries the command for up to 60 s
  local what=$1; shift
  local deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$what did not become ready; its log:"
  tail -n 30 "$dir/logs/$what.log" >&2 || true
  return 1
}

create_nodes() {
  local kubectl="$(cat "$dir/bindir")/kubectl --kubeconfig=$dir/kubeconfig"
  for node in "$@"; do
    $kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $node
    kubernetes.io/os: linux
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
YAML
  done
}

up() {
  local bin real_node=
  if [ "${1:-}" = --real-node ]; then
    real_node=$2
    shift 2
  fi
  bin=$("$here/build.sh")
  if [ -f "$dir/pids/kube-apiserver" ] && kill -0 "$(cat "$dir/pids/kube-apiserver")" 2>/dev/null; then
    log "already running; restarting for a fresh state"
  fi
  stop_all
  rm -rf "$dir/etcd" "$dir/logs"
  mkdir -p "$dir"/{pids,logs,pki,etcd}
  echo "$bin" >"$dir/bindir"
  "$here/node.sh" network

  pki
  echo "$token,admin,admin,system:masters" >"$dir/pki/tokens.csv"

  start etcd "$bin/etcd" --data-dir "$dir/etcd" \
    --listen-client-url "http://127.0.0.1:$etcd_port" --listen-peer-url "http://127.0.0.1:$((etcd_port + 1))"

  # Privileged pods allowed, as every distribution does (kubeadm, k3s):
  # adaptor pods with serial devices are privileged (docs/operator.md).
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$address" --advertise-address "$address" --secure-port "$port" \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --kubelet-client-certificate "$dir/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$dir/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --allow-privileged=true \
    --token-auth-file "$dir/pki/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --enable-priority-and-fairness=false

  cat >"$dir/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: devicelink
  cluster:
    server: https://$address:$port
    certificate-authority: $dir/pki/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: devicelink
  context: {cluster: devicelink, user: admin, namespace: default}
current-context: devicelink
YAML
  wait_ready kube-apiserver "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz

  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig" --authentication-kubeconfig "$dir/kubeconfig" \
    --authorization-kubeconfig "$dir/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port $((port + 1)) \
    --leader-elect=false \
    --service-account-private-key-file "$dir/pki/sa.key" \
    --root-ca-file "$dir/pki/ca.crt" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller'
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$dir/kubeconfig" --authentication-kubeconfig "$dir/kubeconfig" \
    --authorization-kubeconfig "$dir/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port $((port + 2)) --leader-elect=false
  local configs=()
  for f in "$bin"/kwok-stages/*.yaml; do configs+=(--config "$f"); done
  start kwok "$bin/kwok" "${configs[@]}" --kubeconfig "$dir/kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --server-address "127.0.0.1:$((port + 3))" \
    --node-ip 127.0.0.1 \
    --node-lease-duration-seconds 40

  # The default service account is what tells us the controller manager works.
  wait_ready kube-controller-manager "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get serviceaccount default -n default
  create_nodes "$@"
  for node in "$@"; do
    wait_ready kwok "$bin/kubectl" --kubeconfig "$dir/kubeconfig" wait --for=condition=Ready "node/$node" --timeout=5s
  done
  if [ -n "$real_node" ]; then
    touch "$dir/real-node"
    DEVICELINK_APISERVER_PORT=$port "$here/node.sh" up "$real_node"
  fi
  log "ready: https://$address:$port, nodes: ${*:-none}${real_node:+, real node: $real_node}"
  print_env
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) stop_all; log "stopped" ;;
  env) print_env ;;
  nodes) shift; create_nodes "$@" ;;
  *) echo "usage: $0 up [NODE...] | down | env | nodes NODE..." >&2; exit 2 ;;
esac
