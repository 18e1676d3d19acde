#!/usr/bin/env bash
# Try kubectl-milvus without a cluster: start the local test-bed control plane
# (Kubernetes v1.20.2 built from Debian sources, cached), seed a Helm-installed
# and an Operator-managed Milvus into namespace milvus-demo, build the plugin,
# and show `status` and `plan` against it.
#
#   scripts/try-it.sh            # from the repository root
#
# The first run provisions the plane (root needed, ~10 min on 2 cores; cached
# in /var/cache/kubectl-milvus-testbed). A background process plays kubelet
# and Milvus Operator until `cargo run -p testbed -- down`.
set -euo pipefail

cd "$(dirname "$0")/.."
CACHE=${TESTBED_CACHE:-/var/cache/kubectl-milvus-testbed}
STATE=${TESTBED_STATE_DIR:-/tmp/kubectl-milvus-testbed}

say() { printf '\n==> %s\n' "$*" >&2; }

if [ ! -f "$CACHE/v1.20.2/bin/.built-with-reflect2-1.0.2" ] || [ ! -x "$CACHE/helm/bin/helm" ]; then
  say "provisioning the test bed (once per machine; needs root)"
  if [ "$(id -u)" = 0 ]; then
    bash tests/testbed/scripts/provision.sh
  else
    sudo bash tests/testbed/scripts/provision.sh
  fi
fi

say "starting the control plane"
cargo run -q -p testbed -- up >/dev/null

say "seeding namespace milvus-demo (Helm release my-release, Milvus Operator CR my-milvus)"
cargo run -q -p testbed -- demo >/dev/null

# Debug by default: it reuses what the test bed already compiled. TRY_IT_PROFILE=release for an optimised build.
PROFILE=${TRY_IT_PROFILE:-debug}
say "building kubectl-milvus ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build -q --release --bin kubectl-milvus
else
  cargo build -q --bin kubectl-milvus
fi
PLUGIN=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/$PROFILE/kubectl-milvus
export KUBECONFIG=$STATE/admin.kubeconfig

say "kubectl milvus status -A"
"$PLUGIN" status -A || true

say "kubectl milvus plan my-release queryNode=3 -n milvus-demo"
"$PLUGIN" plan my-release queryNode=3 -n milvus-demo || true

DOWN="cargo run -p testbed -- down"
[ -n "${TESTBED_STATE_DIR:-}" ] && DOWN="TESTBED_STATE_DIR=$STATE $DOWN"

cat <<MSG

The demo keeps running in the background. To use it yourself:

  export KUBECONFIG=$STATE/admin.kubeconfig
  export PATH=${PLUGIN%/kubectl-milvus}:\$PATH     # so kubectl finds the plugin
  kubectl get milvus,deploy -n milvus-demo
  kubectl milvus status -A

Stop everything (demo process and control plane):

  $DOWN
MSG
