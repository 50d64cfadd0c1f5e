#!/usr/bin/env bash
# Builds rustcd and starts the three-member cluster of the README's scenario
# as local processes: client URLs http://localhost:2360..2362, peer URLs
# http://localhost:2380..2382, token etcd-cluster-1. Logs are prefixed by
# member name; Ctrl-C stops all three cleanly.
#
#   scripts/local-cluster.sh [DATA_DIR]     (default: ./local-cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-local-cluster}"
cargo build --release --locked --bin rustcd
bin="$PWD/target/release/rustcd"
mkdir -p "$data"

cluster="etcd0=http://localhost:2380,etcd1=http://localhost:2381,etcd2=http://localhost:2382"
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping members..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait
  echo "all members stopped"
}
trap stop INT TERM EXIT

for i in 0 1 2; do
  "$bin" --name "etcd$i" --data-dir "$data/etcd$i.etcd" \
    --initial-advertise-peer-urls "http://localhost:238$i" --listen-peer-urls "http://localhost:238$i" \
    --advertise-client-urls "http://localhost:236$i" --listen-client-urls "http://localhost:236$i" \
    --initial-cluster-token etcd-cluster-1 --initial-cluster "$cluster" \
    --initial-cluster-state new --logger capnslog \
    > >(sed -u "s/^/[etcd$i] /") 2>&1 &
  pids+=("$!")
done
echo "rustcd cluster up: etcdctl --endpoints=http://localhost:2360,http://localhost:2361,http://localhost:2362 ..."
wait
