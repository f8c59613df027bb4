#!/usr/bin/env bash
# Builds the test control plane once and caches it outside the repository.
# Prints the directory holding the binaries. A rebuild happens only when the
# pinned versions (go.mod, go.sum, etcd/main.go, coredns/, or the kwok
# version) or this script change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}
kwok_version=v0.8.0
key=$( (cat "$here/build.sh" "$here/go.mod" "$here/go.sum" "$here/etcd/main.go" "$here"/coredns/{go.mod,go.sum,main.go}; echo "$kwok_version") | sha256sum | cut -c1-16)
bin="$cache/controlplane-$key/bin"
if [ -f "$bin/.complete" ] && [ -d "$bin/kwok-stages" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is required to build the control plane" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-mod=mod
cd "$here"
# The release the binaries report (as Kubernetes' own build stamps it), so
# that nodes and `kubectl version` show it.
version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)
minor=${version#v*.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
# kubelet and kube-proxy run the real node (node.sh).
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  if [ ! -x "$bin/$cmd" ]; then
    echo "building $cmd (first run only; several minutes)" >&2
    go build -trimpath -ldflags="-s$stamp" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$bin/$cmd.tmp" "$bin/$cmd"
  fi
done
if [ ! -x "$bin/etcd" ]; then
  echo "building etcd" >&2
  go build -trimpath -ldflags=-s -o "$bin/etcd.tmp" ./etcd
  mv "$bin/etcd.tmp" "$bin/etcd"
fi
if [ ! -x "$bin/coredns" ]; then
  # Cluster DNS for the real node's pods (node.sh), from its own module.
  echo "building coredns" >&2
  (cd coredns && go build -trimpath -ldflags=-s -o "$bin/coredns.tmp" .)
  mv "$bin/coredns.tmp" "$bin/coredns"
fi
if [ ! -x "$bin/kwok" ]; then
  # kwok has its own module graph; `go install pkg@version` builds it from it.
  echo "building kwok $kwok_version" >&2
  GOBIN="$bin" GOFLAGS= go install "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
fi
if [ ! -d "$bin/kwok-stages" ]; then
  # kwok's own stage definitions: fake nodes become Ready (with leases), pods
  # Running and Ready without running anything.
  src="$(GOFLAGS= go env GOMODCACHE)/sigs.k8s.io/kwok@$kwok_version/kustomize/stage"
  [ -d "$src" ] || GOFLAGS= go mod download "sigs.k8s.io/kwok@$kwok_version"
  mkdir -p "$bin/kwok-stages.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cp "$src/$f" "$bin/kwok-stages.tmp/"
  done
  mv "$bin/kwok-stages.tmp" "$bin/kwok-stages"
fi
touch "$bin/.complete"
echo "$bin"
