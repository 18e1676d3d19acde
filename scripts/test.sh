#!/usr/bin/env bash
# Run the whole test suite from nothing: provision the test bed (cached; root
# for apt-get, through sudo when not root), start a control plane of this
# run's own, run `cargo test --workspace --no-fail-fast`, stop the plane, and
# end with one line: `tests: N passed, N failed`.
#
#   scripts/test.sh                         # from the repository root
#   scripts/test.sh --test scale            # extra arguments go to cargo test
#   scripts/test.sh --test scale -- repair  # … including a name filter
#
# The first run builds the control plane (about 7 minutes on 2 cores, cached
# in /var/cache/kubectl-milvus-testbed). With KUBECTL_MILVUS_TEST_KUBECONFIG
# set, the suite runs against that cluster and no plane is started. With
# TESTBED_STATE_DIR set, the plane lives there (one already running there is
# used and left running); otherwise in a fresh directory removed at the end,
# so a plane a developer keeps in the default directory is neither reused
# nor harmed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

cache=${TESTBED_CACHE:-/var/cache/kubectl-milvus-testbed}
provision=tests/testbed/scripts/provision.sh
say "provision the test bed (etcd, kube-apiserver/controller-manager v1.20.2 from Debian source, helm 4 and 3; cached)"
if [ "$(id -u)" = 0 ]; then
  bash "$provision"
elif [ -f "$cache/v1.20.2/bin/.built-with-reflect2-1.0.2" ] && [ -x "$cache/helm/bin/helm" ] \
  && [ -x "$cache/helm3/bin/helm" ]; then
  # Built already: checking the cache needs no root, unless something new is
  # missing (provision.sh then says it must run as root).
  bash "$provision" 2>/dev/null || sudo bash "$provision"
else
  sudo bash "$provision"
fi

testbed() { cargo run -q -p testbed -- "$@"; }
own_state=
started=
stop_plane() {
  if [ -n "$started" ]; then
    say "stop the control plane"
    testbed down || true
    started=
  fi
  if [ -n "$own_state" ]; then rm -rf "$own_state"; fi
  own_state=
}
if [ -z "${KUBECTL_MILVUS_TEST_KUBECONFIG:-}" ]; then
  if [ -z "${TESTBED_STATE_DIR:-}" ]; then
    own_state=$(mktemp -d /tmp/kubectl-milvus-test.XXXXXX)
    export TESTBED_STATE_DIR=$own_state
  fi
  # Stop exactly what this script started (`up` itself stops a half-started
  # plane), whatever happens next.
  trap stop_plane EXIT
  if testbed status >/dev/null 2>&1; then
    say "use the control plane already running in $TESTBED_STATE_DIR"
  else
    say "start the control plane (state in $TESTBED_STATE_DIR)"
    started=1
    testbed up >/dev/null
  fi
  eval "$(testbed env)"
fi

say "cargo test --workspace --no-fail-fast $*"
log=$(mktemp)
status=0
# --no-fail-fast: every failing test binary is reported, not only the first.
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?

stop_plane
trap - EXIT

# The version branches and skips the tests said they took (`branch: TEST:
# WHAT` lines on stderr, which the harness does not capture), then one
# closing line for the whole suite (cargo prints one per test binary).
grep '^branch: ' "$log" || true
echo "version branches or skips taken: $(grep -c '^branch: ' "$log" || true) (listed above)"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
