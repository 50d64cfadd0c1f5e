#!/usr/bin/env bash
# Builds rustcd and starts the three-member cluster of the README's scenario
# as local processes (no containers): client URLs http://localhost:2360..2362,
# peer URLs http://localhost:2380..2382, token etcd-cluster-1. Logs are
# prefixed by member name. Ctrl-C (or SIGINT/SIGTERM to this script) stops
# all three cleanly; if one member exits by itself, the others are stopped
# too. Data stays in DATA_DIR, so running the script again restarts the same
# cluster.
#
#   scripts/local-cluster.sh [DATA_DIR]     (default: ./local-cluster)
#
# Needs bash 5.1+. Exits 0 when every member stopped cleanly.
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
  local p i status=0
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # A member that does not stop within 20 s is killed.
  for ((i = 0; i < 100; i++)); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do
    if kill -KILL "$p" 2>/dev/null; then echo "member $p did not stop in 20 s: killed" >&2; fi
    wait "$p" || status=1
  done
  wait # the log prefixers end when their member's output closes
  if [ "$status" = 0 ]; then echo "all members stopped"; else echo "all members stopped (not all cleanly)" >&2; fi
  exit "$status"
}
trap stop INT TERM EXIT

for i in 0 1 2; do
  # The prefixer ignores Ctrl-C so that it prints the member's last lines.
  "$bin" --name "etcd$i" --data-dir "$data/etcd$i.etcd" \
    --initial-advertise-peer-urls "http://localhost:238$i" --listen-peer-urls "http://localhost:238$i" \
    --advertise-client-urls "http://localhost:236$i" --listen-client-urls "http://localhost:236$i" \
    --initial-cluster-token etcd-cluster-1 --initial-cluster "$cluster" \
    --initial-cluster-state new --logger capnslog \
    > >(trap '' INT; exec sed -u "s/^/[etcd$i] /") 2>&1 &
  pids+=("$!")
done
echo "rustcd cluster up: etcdctl --endpoints=http://localhost:2360,http://localhost:2361,http://localhost:2362 ..."
# Returns when a member exits by itself (Ctrl-C runs stop instead).
code=0
wait -n "${pids[@]}" || code=$?
echo "a member exited by itself (status $code); stopping the others" >&2
stop
