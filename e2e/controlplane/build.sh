#!/usr/bin/env bash
# Builds the test control plane once and caches it outside the repository.
# Prints the directory holding the binaries. A rebuild happens only when the
# pinned versions (go.mod, go.sum, etcd/main.go or the kwok version) change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}
kwok_version=v0.8.0
key=$( (cat "$here/go.mod" "$here/go.sum" "$here/etcd/main.go"; echo "$kwok_version") | sha256sum | cut -c1-16)
bin="$cache/controlplane-$key/bin"
if [ -f "$bin/.complete" ] && [ -d "$bin/kwok-stages" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is required to build the control plane" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-mod=mod
cd "$here"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  if [ ! -x "$bin/$cmd" ]; then
    echo "building $cmd (first run only; several minutes)" >&2
    go build -trimpath -ldflags=-s -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$bin/$cmd.tmp" "$bin/$cmd"
  fi
done
if [ ! -x "$bin/etcd" ]; then
  echo "building etcd" >&2
  go build -trimpath -ldflags=-s -o "$bin/etcd.tmp" ./etcd
  mv "$bin/etcd.tmp" "$bin/etcd"
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
