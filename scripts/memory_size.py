"""`make memory-size`: the webhook's latency, peak memory and billed cost at 128, 256, 512
and 1024 MB, Lambda's CPU share emulated with a CPU quota.

Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB. Each size
runs target/profiling/kadoa-lambda (the deployed binary) in a cgroup v1 `cpu` group whose
quota is that share of one core (cfs_quota_us = 100 ms x MB / 1769 per 100 ms period),
behind scripts/runtime_api.py and against moto (outside the group: AWS is not throttled).
Per size, RUNS processes each take: a 10-difference change cold (process start to answer:
Lambda's init and first invocation), 10 warm 10-difference changes, a failure alert and a
3000-difference change; and SIX_MB_RUNS processes a 6 MB change (latency and peak RSS).
The replay is measured on a 6 MB spooled change (S3) at 128 and 256 MB.

Prints medians and maxima (the p99-ish of a handful) and how busy the machine was, and
writes them to target/memory-size.json. Needs root (the cgroup) and the environment
`scripts/memory-size` sets up (moto, table, topic, spool).
"""

import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# scripts/profile.py, by path: `profile` is also a module of Python's own.
_spec = importlib.util.spec_from_file_location("kadoa_profile", ROOT / "scripts/profile.py")
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

SIZES = [int(mb) for mb in os.environ.get("SIZES", "128 256 512 1024").split()]
RUNS = int(os.environ.get("RUNS", "5"))
SIX_MB_RUNS = int(os.environ.get("SIX_MB_RUNS", "3"))
FULL_VCPU_MB = 1769
PERIOD_US = 100_000
# Lambda's price per GB-second, arm64 (the template's default Architecture), us-east-1
# (scripts/prices.py holds every price with its source).
sys.path.insert(0, str(ROOT / "scripts"))
from prices import PRICES  # noqa: E402
import runtime_api  # noqa: E402

GB_SECOND = PRICES["lambda_gb_second_arm64"].price
CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")


def cpu_group(mb):
    """A cgroup v1 `cpu` group with `mb`'s share of one core."""
    group = CGROUP_ROOT / f"kadoa-memory-size-{os.getpid()}-{mb}"
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(max(1000, PERIOD_US * mb // FULL_VCPU_MB)))
    return group


def machine_busy():
    """(busy jiffies, all jiffies) of every CPU, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def peak_rss(pid, stop, result):
    while not stop.is_set():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            result[0] = max(result[0], int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
        except (OSError, AttributeError):
            pass
        time.sleep(0.005)


def run(events, mb, group, handler="webhook"):
    """One function process over `events` in `group`: (seconds from spawn to the first
    answer, [(status, ms)], peak RSS KiB)."""
    with runtime_api.serving(events) as (port, read_answers):
        env = {**harness.environment(port), "_HANDLER": handler, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(mb)}
        join = lambda: (group / "cgroup.procs").write_text(str(os.getpid()))  # noqa: E731
        spawned = time.time()
        function = subprocess.Popen([str(harness.BINARY)], env=env, preexec_fn=join,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=peak_rss, args=(function.pid, stop, peak))
        watcher.start()
        function.wait(timeout=600)
        stop.set()
        watcher.join()
        answers = read_answers()
    timed = []
    for answer in answers:
        if not answer:
            timed.append((None, None))
            continue
        body = json.loads(answer["body"])
        status = ("applied" if not body["batchItemFailures"] else "failed") if "batchItemFailures" in body \
            else json.loads(body["body"]).get("status")
        timed.append((status, (answer["answered_at"] - answer["handed_at"]) * 1000))
    cold = answers[0]["answered_at"] - spawned if answers and answers[0] else None
    return cold, timed, peak[0]


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "max": max(values), "n": len(values)}


def measure_size(mb):
    group = cpu_group(mb)
    busy_before, load_before = machine_busy(), os.getloadavg()[0]
    cold, warm, alert, large, six, six_rss, rss, not_applied = [], [], [], [], [], [], [], 0
    try:
        for r in range(RUNS):
            name = f"m{mb}r{r}{os.getpid()}"
            events = ([harness.change(name, 0, 10)] + [harness.change(name, n, 10) for n in range(1, 11)]
                      + [harness.failure(name), harness.change(name, 11, 3000)])
            first, timed, peak = run(events, mb, group)
            expected = ["stored"] * 11 + ["alerted", "stored"]
            not_applied += sum(1 for (status, _), want in zip(timed, expected) if status != want)
            not_applied += len(expected) - len(timed)
            cold.append(first * 1000 if first else None)
            warm += [ms for _, ms in timed[1:11]]
            alert.append(timed[11][1] if len(timed) > 11 else None)
            large.append(timed[12][1] if len(timed) > 12 else None)
            rss.append(peak)
        for r in range(SIX_MB_RUNS):
            name = f"s{mb}r{r}{os.getpid()}"
            _, timed, peak = run([harness.change(name, 0, 10), harness.change(name, 1, 37000)], mb, group)
            not_applied += sum(1 for status, _ in timed if status != "stored") + 2 - len(timed)
            six.append(timed[1][1] if len(timed) > 1 else None)
            six_rss.append(peak)
    finally:
        group.rmdir()
    busy_after, load_after = machine_busy(), os.getloadavg()[0]
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    return {"mb": mb, "vcpu": mb / FULL_VCPU_MB, "cold_ms": summary(cold), "warm_ms": summary(warm),
            "alert_ms": summary(alert), "large_ms": summary(large), "six_mb_ms": summary(six),
            "rss_kib": max(rss), "six_mb_rss_kib": max(six_rss) if six_rss else None,
            "not_applied": not_applied, "machine_busy": busy, "load": (load_before, load_after)}


def measure_replay(mb):
    group = cpu_group(mb)
    try:
        results = [run([harness.spooled(f"p{mb}r{r}{os.getpid()}", 1, 37000)], mb, group, handler="replay")
                   for r in range(2)]
    finally:
        group.rmdir()
    return {"mb": mb, "ms": summary([t[0][1] for _, t, _ in results if t]),
            "rss_kib": max(p for _, _, p in results), "applied": [t[0][0] for _, t, _ in results if t]}


def cost_per_million(ms, mb):
    """Billed cost of a million invocations of `ms` (Lambda bills by the millisecond)."""
    return math.ceil(ms) / 1000 * mb / 1024 * GB_SECOND * 1e6


def main():
    if not CGROUP_ROOT.is_dir():
        sys.exit("memory-size: needs the cgroup v1 cpu controller at /sys/fs/cgroup/cpu (mount | grep cgroup)")
    results = [measure_size(mb) for mb in SIZES]
    replay = [measure_replay(mb) for mb in (128, 256)]
    fmt = lambda s: f"{s['median']:7.0f} {s['max']:7.0f}" if s else "      -       -"  # noqa: E731
    print(f"webhook, ms (median, max of {RUNS} processes; warm: of {RUNS * 10}); peak RSS; "
          f"$ per million warm 10-difference deliveries (arm64, billed ms)")
    print(f"{'MB':>5} {'vCPU':>5} {'cold start':>15} {'warm 10-diff':>15} {'alert':>15} {'3000-diff':>15} "
          f"{'6 MB change':>15} {'RSS MiB':>8} {'6MB RSS':>8} {'$/M warm':>9} {'busy':>5} {'not ok':>6}")
    for r in results:
        per_million = cost_per_million(r["warm_ms"]["median"], r["mb"]) if r["warm_ms"] else float("nan")
        six_rss = f"{r['six_mb_rss_kib'] / 1024:8.0f}" if r["six_mb_rss_kib"] else "       -"
        print(f"{r['mb']:>5} {r['vcpu']:5.2f} {fmt(r['cold_ms'])} {fmt(r['warm_ms'])} {fmt(r['alert_ms'])} "
              f"{fmt(r['large_ms'])} {fmt(r['six_mb_ms'])} {r['rss_kib'] / 1024:8.0f} {six_rss} "
              f"{per_million:9.2f} {r['machine_busy']:5.0%} {r['not_applied']:>6}")
    for r in replay:
        print(f"replay of a 6 MB spooled change at {r['mb']} MB: {fmt(r['ms'])} ms (median, max of 2), "
              f"peak RSS {r['rss_kib'] / 1024:.0f} MiB, {r['applied']}")
    print(f"machine: {os.cpu_count()} cores shared with other work; load average "
          + ", ".join(f"{r['load'][0]:.1f}->{r['load'][1]:.1f}" for r in results))
    out = ROOT / "target/memory-size.json"
    out.write_text(json.dumps({"webhook": results, "replay": replay}, indent=1))
    print(f"(figures in {out})")


if __name__ == "__main__":
    main()
