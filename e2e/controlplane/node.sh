#!/usr/bin/env bash
# A real node beside the test control plane: containerd and runc from
# Debian, a kubelet and kube-proxy built from the control plane's Go module
# (build.sh), pods networked through a CNI bridge, cluster DNS from CoreDNS.
# Pods run as containers from images imported into the node's containerd;
# nothing is pulled.
#
#   node.sh network        the node's network: a bridge holding the node
#                          address, which the API server binds (idempotent)
#   node.sh up NAME        start containerd, the kubelet and kube-proxy, and
#                          wait for node NAME to be Ready (needs `network`
#                          and a running control plane)
#   node.sh import TAR...  import image archives into the node's containerd
#   node.sh down           stop the node's pods, its processes and network
#
# Called by cluster.sh, which owns the directory layout ($dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${DEVICELINK_CLUSTER_DIR:-$HOME/.cache/devicelink/cluster}
cache=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}

# The node network. The bridge's address is the node's address, where pods
# reach the host (the API server, and device servers the tests start).
bridge=dlnode0
node_ip=10.201.0.1
pod_subnet=10.201.0.0/24
service_cidr=10.96.0.0/16
# Sockets and runtime state live under /run (socket paths must be short).
run=/run/devicelink-node
containerd_sock=$run/containerd.sock
# Images persist across runs (cache); containers and pods do not.
containerd_root=$cache/node/containerd
pause_image=localhost/devicelink/pause:3.10
ctr=(ctr --address "$containerd_sock" --namespace k8s.io)

log() { echo "node: $*" >&2; }
die() { log "$*"; exit 1; }

network() {
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  ip addr replace "$node_ip/24" dev "$bridge"
  ip link set "$bridge" up
}

# Tools the node needs, from Debian (e2e/prereqs.sh installs them).
check_tools() {
  local missing=()
  for tool in containerd runc iptables conntrack gcc curl; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]} (e2e/prereqs.sh installs them)"
}

start() { # name, command...
  local name=$1; shift
  nohup "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name"
}

wait_for() { # what, seconds, command...
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$what did not come up within ${seconds}s; last lines of its log:"
      tail -n 30 "$dir/logs/$what.log" >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

# The sandbox ("pause") image: Kubernetes' own pause.c from the module
# cache, linked statically, in an image of its own. Built once.
pause_archive() {
  local out=$cache/node/pause-3.10.tar
  if [ ! -s "$out" ]; then
    local src
    src="$(cd "$here" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    [ -f "$src" ] || die "pause.c not found at $src"
    local work
    work=$(mktemp -d)
    gcc -Os -static -DVERSION=3.10-devicelink -o "$work/pause" "$src"
    strip "$work/pause"
    local img=(buildah --root "$cache/images/storage" --runroot "$cache/images/run" --storage-driver vfs)
    local c
    c=$("${img[@]}" from scratch)
    "${img[@]}" copy "$c" "$work/pause" /pause >/dev/null
    "${img[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
    "${img[@]}" commit --quiet "$c" "$pause_image" >/dev/null
    "${img[@]}" rm "$c" >/dev/null
    "${img[@]}" push --quiet "$pause_image" "docker-archive:$out.tmp:$pause_image"
    mv "$out.tmp" "$out"
    rm -rf "$work"
  fi
  echo "$out"
}

# Client certificates signed by the cluster CA (cluster.sh makes it).
client_cert() { # name, CN, O
  local name=$1 cn=$2 org=$3 pki=$dir/pki
  [ -f "$pki/$name.crt" ] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "/CN=$cn/O=$org" \
    -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -out "$pki/$name.crt" 2>/dev/null
}

kubeconfig_for() { # file, cert name
  cat >"$1" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: devicelink
  cluster: {server: "https://$node_ip:${DEVICELINK_APISERVER_PORT:-16443}", certificate-authority: "$dir/pki/ca.crt"}
users:
- name: node
  user: {client-certificate: "$dir/pki/$2.crt", client-key: "$dir/pki/$2.key"}
contexts:
- name: devicelink
  context: {cluster: devicelink, user: node}
current-context: devicelink
YAML
}

up() {
  local name=$1 bin
  check_tools
  bin=$(cat "$dir/bindir")
  [ -x "$bin/kubelet" ] && [ -x "$bin/kube-proxy" ] && [ -x "$bin/coredns" ] ||
    die "kubelet, kube-proxy or coredns not built (build.sh)"
  mkdir -p "$run" "$containerd_root" "$dir/node" "$dir/pids" "$dir/logs"
  rm -rf "$dir/node"/{kubelet,cni}
  mkdir -p "$dir/node"/{kubelet,cni/net.d,cni/ipam}

  cat >"$dir/node/containerd.toml" <<TOML
version = 2
root = "$containerd_root"
state = "$run/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$containerd_sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # This machine may not lower oom_score_adj (no CAP_SYS_RESOURCE): without
  # this, every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/node/cni/net.d"
TOML
  cat >"$dir/node/cni/net.d/10-devicelink.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "devicelink",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$dir/node/cni/ipam",
              "ranges": [[{"subnet": "$pod_subnet", "rangeStart": "10.201.0.10", "gateway": "$node_ip"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  start containerd containerd --config "$dir/node/containerd.toml"
  wait_for containerd 30 "${ctr[@]}" version
  "${ctr[@]}" images import --no-unpack=false "$(pause_archive)" >/dev/null

  # Cluster DNS: CoreDNS serves cluster.local (Services and pods, from the
  # API server) on the node address; pods' resolv.conf names it. Other names
  # are refused at once (nothing outside this machine is reachable anyway).
  cat >"$dir/node/Corefile" <<COREFILE
cluster.local:53 in-addr.arpa:53 {
    bind $node_ip
    ready 127.0.0.1:18181
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $dir/kubeconfig devicelink
        pods insecure
    }
}
COREFILE
  start coredns "$bin/coredns" -conf "$dir/node/Corefile"
  wait_for coredns 30 curl -fsS http://127.0.0.1:18181/ready

  client_cert kubelet "system:node:$name" system:nodes
  client_cert kube-proxy system:kube-proxy system:node-proxier
  kubeconfig_for "$dir/node/kubelet.kubeconfig" kubelet
  kubeconfig_for "$dir/node/kube-proxy.kubeconfig" kube-proxy
  cat >"$dir/node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The API server's requests (logs, exec) authenticate with a client
# certificate of the cluster CA; anything else is asked of the API server.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$dir/pki/ca.crt"}
authorization: {mode: Webhook}
address: $node_ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
containerRuntimeEndpoint: unix://$containerd_sock
# This machine kind: cgroup v1, no systemd, swap allowed.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$node_ip]
resolvConf: /etc/resolv.conf
# Imported images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
YAML
  start kubelet "$bin/kubelet" --config "$dir/node/kubelet.yaml" \
    --kubeconfig "$dir/node/kubelet.kubeconfig" \
    --root-dir "$dir/node/kubelet" --cert-dir "$dir/node/kubelet/pki" \
    --hostname-override "$name" --node-ip "$node_ip"

  cat >"$dir/node/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$dir/node/kube-proxy.kubeconfig"}
hostnameOverride: $name
mode: iptables
clusterCIDR: $pod_subnet
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack table size alone.
conntrack: {maxPerCore: 0}
YAML
  start kube-proxy "$bin/kube-proxy" --config "$dir/node/kube-proxy.yaml"

  wait_for kubelet 90 "$bin/kubectl" --kubeconfig "$dir/kubeconfig" wait --for=condition=Ready "node/$name" --timeout=2s
  log "node $name is Ready at $node_ip"
}

import() {
  local archive
  for archive in "$@"; do
    "${ctr[@]}" images import --no-unpack=false "$archive" >/dev/null
  done
}

# Stops what `up` started and removes what it left: pod sandboxes and their
# network namespaces, the kubelet's mounts, kube-proxy's rules, the bridge.
down() {
  if [ -S "$containerd_sock" ]; then
    # The kubelet is stopped first (by cluster.sh), so nothing restarts them.
    local tasks
    tasks=$("${ctr[@]}" tasks ls -q 2>/dev/null || true)
    for task in $tasks; do "${ctr[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
    for task in $tasks; do
      for _ in $(seq 20); do "${ctr[@]}" tasks delete "$task" >/dev/null 2>&1 && break; sleep 0.1; done
    done
    local containers
    containers=$("${ctr[@]}" containers ls -q 2>/dev/null || true)
    [ -z "$containers" ] || "${ctr[@]}" containers delete $containers >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/pids/containerd" ]; then
    kill "$(cat "$dir/pids/containerd")" 2>/dev/null || true
    rm -f "$dir/pids/containerd"
  fi
  # Shims of this containerd that outlived it.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $containerd_sock" 2>/dev/null || true
  # Mounts under the node's directories, deepest first.
  { grep -oE " ($dir/node|$run|/run/netns|/var/run/netns)/[^ ]*" /proc/self/mounts || true; } | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for ns in /run/netns/cni-*; do [ -e "$ns" ] && rm -f "$ns"; done
  if [ -x "$(cat "$dir/bindir" 2>/dev/null)/kube-proxy" ]; then
    "$(cat "$dir/bindir")/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  # The kubelet's own chains (KUBE-FIREWALL, its canaries) outlive it.
  local tool table rule chain
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle; do
      { "$tool" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' || true; } | sed 's/^-A/-D/' |
        while read -r rule; do eval "$tool -t $table $rule" 2>/dev/null || true; done
      for chain in $("$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$tool" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$run"
}

case "${1:-}" in
  network) network ;;
  up) [ $# -eq 2 ] || die "usage: node.sh up NAME"; up "$2" ;;
  import) shift; import "$@" ;;
  down) down ;;
  *) echo "usage: $0 network | up NAME | import TAR... | down" >&2; exit 2 ;;
esac
