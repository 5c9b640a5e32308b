"""`make memory-size`: each function's latency, peak memory and billed cost by MemorySize
(the webhook at 128, 256, 512 and 1024 MB), Lambda's CPU share emulated with a CPU quota.

Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB. Each size
runs target/profiling/kadoa-lambda (the deployed binary) in a cgroup v1 `cpu` group whose
quota is that share of one core (cfs_quota_us = 100 ms x MB / 1769 per 100 ms period),
behind scripts/runtime_api.py and against moto (outside the group: AWS is not throttled).
Per size, RUNS processes each take: a 10-difference change cold (process start to answer:
Lambda's init and first invocation), 10 warm 10-difference changes, a failure alert and a
3000-difference change; and SIX_MB_RUNS processes a 6 MB change (latency and peak RSS).
The replay is measured on a 6 MB spooled change (S3) at 128 and 256 MB.

The reconcile and the outbox, at 128, 256 and 512 MB (SMALL_SIZES), SMALL_RUNS processes:
the reconcile takes two scheduled runs against scripts/kadoa_fake.py (the first stores 50
listed changes and alerts a failure and a recovery from the delivery log, the second finds
nothing missing), and two more processes read one change-list page at the answer limit
(31 MB of dataset snapshots, one string cut inside an emoji: memory); the outbox takes 10 batches of 25 inserted change
items (the template's BatchSize) to a bus in moto, and two more processes one batch of
about 5 MB. FUNCTIONS="reconcile outbox" measures only those.

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
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# scripts/profile.py, by path: `profile` is also a module of Python's own.
_spec = importlib.util.spec_from_file_location("kadoa_profile", ROOT / "scripts/profile.py")
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

SIZES = [int(mb) for mb in os.environ.get("SIZES", "128 256 512 1024").split()]
# Which functions to measure (FUNCTIONS="reconcile outbox", say); all four by default.
FUNCTIONS = os.environ.get("FUNCTIONS", "webhook replay reconcile outbox").replace(",", " ").split()
RUNS = int(os.environ.get("RUNS", "5"))
SIX_MB_RUNS = int(os.environ.get("SIX_MB_RUNS", "3"))
FULL_VCPU_MB = 1769
PERIOD_US = 100_000
# Lambda's price per GB-second, arm64 (the template's default Architecture), us-east-1
# (scripts/prices.py holds every price with its source).
sys.path.insert(0, str(ROOT / "scripts"))
from prices import PRICES  # noqa: E402
import kadoa_fake  # noqa: E402
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


def answer_status(answer):
    """What one answer says: the webhook's `status`, the replay's and the outbox's batch
    answer (`applied`/`failed`), the reconcile's report (`clean`/`failed`), or `error`."""
    if answer.get("kind") == "error":
        return "error"
    body = json.loads(answer["body"])
    if "batchItemFailures" in body:
        return "applied" if not body["batchItemFailures"] else "failed"
    if "changesSeen" in body:
        return "clean" if not body.get("failures") else "failed"
    return json.loads(body["body"]).get("status")


def run(events, mb, group, handler="webhook", extra_env=None, stdout_to=None):
    """One function process over `events` in `group`: (seconds from spawn to the first
    answer, [(status, ms)], peak RSS KiB). `extra_env` adds to the function's environment;
    `stdout_to`, a path, keeps what it writes (its metrics lines)."""
    with runtime_api.serving(events) as (port, read_answers):
        env = {**harness.environment(port), "_HANDLER": handler, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(mb),
               **(extra_env or {})}
        stdout = open(stdout_to, "w") if stdout_to else subprocess.DEVNULL
        join = lambda: (group / "cgroup.procs").write_text(str(os.getpid()))  # noqa: E731
        spawned = time.time()
        function = subprocess.Popen([str(harness.BINARY)], env=env, preexec_fn=join,
                                    stdout=stdout, stderr=subprocess.DEVNULL)
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=peak_rss, args=(function.pid, stop, peak))
        watcher.start()
        function.wait(timeout=600)
        stop.set()
        watcher.join()
        if stdout_to:
            stdout.close()
        answers = read_answers()
    timed = []
    for answer in answers:
        if not answer:
            timed.append((None, None))
            continue
        timed.append((answer_status(answer), (answer["answered_at"] - answer["handed_at"]) * 1000))
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


# The reconcile and the outbox (FUNCTIONS): at 128, 256 and 512 MB, fewer processes each.
SMALL_SIZES = [int(mb) for mb in os.environ.get("SMALL_SIZES", "128 256 512").split()]
SMALL_RUNS = int(os.environ.get("SMALL_RUNS", "3"))
RECONCILE_CHANGES = 50
# A page of the change list at its largest: 10 changes whose dataset snapshots (`data`)
# make a 31 MB answer, just under what the reconcile reads of one (32 MiB).
LARGE_PAGE_SNAPSHOT_BYTES = 2_900_000
OUTBOX_BATCH = 25  # template.yaml's BatchSize
OUTBOX_BATCHES = 10
# A stream batch near its largest: 25 records of about 210 KB, 5.3 MB (Lambda hands over 6 MB at most).
LARGE_RECORD_DIFFERENCES = 850


def iso(seconds_ago):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - seconds_ago))


def listed_change(number, differences, snapshot_bytes=1_000):
    """A change as Kadoa lists it, created in the last hour, with a dataset snapshot."""
    rows = max(1, snapshot_bytes // 100)
    data = [{"name": f"Product {i}", "price": 10.5 + i, "sku": f"sku-{i:08d}-" + "x" * 40} for i in range(rows)]
    return {"id": f"ch_{number}", "workflowId": "wf_reconcile", "data": data, "dataPending": False,
            "differences": [{"type": "changed",
                             "fields": [{"key": "price", "value": 10.5 + i, "previousValue": 9.5 + i}]}
                            for i in range(differences)],
            "url": "https://monitored-page.com", "summary": None, "createdAt": iso(3000 - number)}


def reconcile_workspaces():
    """The fake Kadoa's workspaces: `typical` (50 changes to store, a failure and a
    recovery in the delivery log) and `large` (one page at the answer limit)."""
    alert = lambda event_type, ago: {"eventType": event_type, "timestamp": iso(ago),  # noqa: E731
                                     "data": {"workflowId": "wf_alerting", "workflowName": "Monitor",
                                              "source": "Monitor", "reason": "Access blocked by bot protection",
                                              "action": "No action needed.", "url": "https://monitored-page.com"}}
    typical = {"changes": [listed_change(n, 10, 10_000) for n in range(RECONCILE_CHANGES)],
               "deliveries": [kadoa_fake.delivery(0, alert("workflow_failed", 1200)),
                              kadoa_fake.delivery(1, alert("workflow_recovered", 600))]}
    large = {"changes": [listed_change(n, 10, LARGE_PAGE_SNAPSHOT_BYTES) for n in range(10)], "deliveries": []}
    # A string cut inside an emoji (a lone surrogate escape, as Kadoa's JavaScript writes
    # it): the reconcile then also holds a repaired copy of the answer, its worst case.
    large["changes"][0]["data"][0]["name"] = "cut \ud83d"
    return {"typical-key": typical, "large-key": large}


def measure_reconcile(mb, api_url, secrets):
    """RUNS processes of two scheduled runs each (cold: init, 50 changes stored and two
    alerts; warm: the same window again, nothing missing), and two of one run over a
    page at the answer limit (memory)."""
    group = cpu_group(mb)
    busy_before, load_before = machine_busy(), os.getloadavg()[0]
    cold, warm, large, rss, large_rss, not_clean = [], [], [], [], [], 0
    try:
        for _ in range(SMALL_RUNS):
            env = {"KADOA_API_URL": api_url, "KADOA_API_KEY_ARN": secrets["typical-key"]}
            first, timed, peak = run([{}, {}], mb, group, handler="reconcile", extra_env=env)
            not_clean += sum(1 for status, _ in timed if status != "clean") + 2 - len(timed)
            cold.append(first * 1000 if first else None)
            warm.append(timed[1][1] if len(timed) > 1 else None)
            rss.append(peak)
        for _ in range(2):
            env = {"KADOA_API_URL": api_url, "KADOA_API_KEY_ARN": secrets["large-key"]}
            _, timed, peak = run([{}], mb, group, handler="reconcile", extra_env=env)
            not_clean += sum(1 for status, _ in timed if status != "clean") + 1 - len(timed)
            large.append(timed[0][1] if timed else None)
            large_rss.append(peak)
    finally:
        group.rmdir()
    return {"mb": mb, "cold_ms": summary(cold), "warm_ms": summary(warm), "large_page_ms": summary(large),
            "rss_kib": max(rss), "large_page_rss_kib": max(large_rss), "not_clean": not_clean,
            "machine_busy": (machine_busy()[0] - busy_before[0]) / max(1, machine_busy()[1] - busy_before[1]),
            "load": (load_before, os.getloadavg()[0])}


def typed(value):
    """`value` as DynamoDB's typed JSON (what a stream record's images hold)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: typed(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [typed(v) for v in value]}
    return {"S": str(value)}


def stream_batch(run_name, batch, differences):
    """A batch of the table's stream as Lambda hands it to the outbox: OUTBOX_BATCH
    inserted change items of `differences` differences each (each announces an entry)."""
    records = []
    for n in range(OUTBOX_BATCH):
        change_id = f"{run_name}-{batch}-{n}"
        item = {"pk": "WORKFLOW#wf_outbox", "sk": f"CHANGE#{change_id}#", "entity": "change", "changeId": change_id,
                "workflowId": "wf_outbox", "workflowName": "Product Monitor", "url": "https://monitored-page.com",
                "createdAt": iso(60), "receivedAt": iso(59), "arrival": "webhook", "differenceCount": differences,
                "changedCount": differences, "addedCount": 0, "removedCount": 0, "tags": ["pricing"],
                "differences": [{"type": "changed", "fields": [
                    {"key": "price", "value": 10.5 + i, "previousValue": 9.5 + i},
                    {"key": "name", "value": f"Product {i}", "previousValue": f"Produkt {i}"}]}
                    for i in range(differences)]}
        image = {k: typed(v) for k, v in item.items()}
        records.append({"eventID": change_id, "eventName": "INSERT", "eventVersion": "1.1",
                        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
                        "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image,
                                     "SequenceNumber": f"{batch * 1000 + n:021d}", "SizeBytes": len(json.dumps(image)),
                                     "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    return {"Records": records}


def published(stdout_file):
    """Entries the outbox published, from its metrics lines."""
    total = 0
    for line in Path(stdout_file).read_text().splitlines():
        if '"EventsPublished"' in line:
            total += int(json.loads(line)["EventsPublished"])
    return total


def measure_outbox(mb, bus):
    """RUNS processes of OUTBOX_BATCHES batches of 25 ten-difference changes (the first
    cold), and two of one batch at about 5 MB (memory)."""
    group = cpu_group(mb)
    busy_before, load_before = machine_busy(), os.getloadavg()[0]
    cold, warm, large, rss, large_rss, not_published = [], [], [], [], [], 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log = str(Path(tmp, "stdout"))
            for r in range(SMALL_RUNS):
                batches = [stream_batch(f"o{mb}r{r}", b, 10) for b in range(OUTBOX_BATCHES)]
                first, timed, peak = run(batches, mb, group, handler="outbox", extra_env={"EVENT_BUS": bus},
                                         stdout_to=log)
                not_published += OUTBOX_BATCHES * OUTBOX_BATCH - published(log)
                cold.append(first * 1000 if first else None)
                warm += [ms for _, ms in timed[1:]]
                rss.append(peak)
            for r in range(2):
                batch = stream_batch(f"O{mb}r{r}", 0, LARGE_RECORD_DIFFERENCES)
                _, timed, peak = run([batch], mb, group, handler="outbox", extra_env={"EVENT_BUS": bus}, stdout_to=log)
                not_published += OUTBOX_BATCH - published(log)
                large.append(timed[0][1] if timed else None)
                large_rss.append(peak)
            large_batch_mb = len(json.dumps(stream_batch("size", 0, LARGE_RECORD_DIFFERENCES))) / 1e6
    finally:
        group.rmdir()
    return {"mb": mb, "cold_ms": summary(cold), "warm_ms": summary(warm), "large_batch_ms": summary(large),
            "large_batch_mb": large_batch_mb, "rss_kib": max(rss), "large_batch_rss_kib": max(large_rss),
            "not_published": not_published,
            "machine_busy": (machine_busy()[0] - busy_before[0]) / max(1, machine_busy()[1] - busy_before[1]),
            "load": (load_before, os.getloadavg()[0])}


def measure_small_functions(functions):
    """The reconcile (against scripts/kadoa_fake.py) and the outbox (to a bus in moto)."""
    aws = harness.local_aws.clients()
    results = {}
    if "reconcile" in functions:
        workspaces = reconcile_workspaces()
        api_url, server = kadoa_fake.start(workspaces)
        secrets = {key: aws["secretsmanager"].create_secret(Name=f"kadoa-api-key-{os.getpid()}-{key}",
                                                           SecretString=key)["ARN"] for key in workspaces}
        try:
            results["reconcile"] = [measure_reconcile(mb, api_url, secrets) for mb in SMALL_SIZES]
        finally:
            server.shutdown()
    if "outbox" in functions:
        bus = f"kadoa-memory-size-{os.getpid()}"
        aws["events"].create_event_bus(Name=bus)
        results["outbox"] = [measure_outbox(mb, bus) for mb in SMALL_SIZES]
    return results


def print_small_functions(results):
    fmt = lambda s: f"{s['median']:7.0f} {s['max']:7.0f}" if s else "      -       -"  # noqa: E731
    if "reconcile" in results:
        print(f"\nreconcile, ms (median, max of {SMALL_RUNS} processes; large page: of 2); peak RSS; "
              f"$ a month of hourly warm runs (arm64, billed ms)")
        print(f"{'MB':>5} {'vCPU':>5} {'cold run (50 new)':>17} {'warm run':>15} {'31 MB page':>15} "
              f"{'RSS MiB':>8} {'page RSS':>8} {'$/month':>8} {'busy':>5} {'not ok':>6}")
        for r in results["reconcile"]:
            month = cost_per_million(r["warm_ms"]["median"], r["mb"]) * 730 / 1e6 if r["warm_ms"] else float("nan")
            print(f"{r['mb']:>5} {r['mb'] / FULL_VCPU_MB:5.2f} {fmt(r['cold_ms']):>17} {fmt(r['warm_ms'])} "
                  f"{fmt(r['large_page_ms'])} {r['rss_kib'] / 1024:8.0f} {r['large_page_rss_kib'] / 1024:8.0f} "
                  f"{month:8.4f} {r['machine_busy']:5.0%} {r['not_clean']:>6}")
    if "outbox" in results:
        large_mb = results["outbox"][0]["large_batch_mb"]
        print(f"\noutbox, ms per batch of {OUTBOX_BATCH} (median, max; cold of {SMALL_RUNS} processes, warm of "
              f"{SMALL_RUNS * (OUTBOX_BATCHES - 1)}, {large_mb:.1f} MB batch of 2); peak RSS; "
              "$ per million warm batches")
        print(f"{'MB':>5} {'vCPU':>5} {'cold batch':>15} {'warm batch':>15} {'large batch':>15} "
              f"{'RSS MiB':>8} {'large RSS':>9} {'$/M warm':>9} {'busy':>5} {'not ok':>6}")
        for r in results["outbox"]:
            per_million = cost_per_million(r["warm_ms"]["median"], r["mb"]) if r["warm_ms"] else float("nan")
            print(f"{r['mb']:>5} {r['mb'] / FULL_VCPU_MB:5.2f} {fmt(r['cold_ms'])} {fmt(r['warm_ms'])} "
                  f"{fmt(r['large_batch_ms'])} {r['rss_kib'] / 1024:8.0f} {r['large_batch_rss_kib'] / 1024:9.0f} "
                  f"{per_million:9.2f} {r['machine_busy']:5.0%} {r['not_published']:>6}")
    loads = [f"{r['load'][0]:.1f}->{r['load'][1]:.1f}" for rows in results.values() for r in rows]
    print(f"machine: {os.cpu_count()} cores shared with other work; load average " + ", ".join(loads))


def cost_per_million(ms, mb):
    """Billed cost of a million invocations of `ms` (Lambda bills by the millisecond)."""
    return math.ceil(ms) / 1000 * mb / 1024 * GB_SECOND * 1e6


def main():
    if not CGROUP_ROOT.is_dir():
        sys.exit("memory-size: needs the cgroup v1 cpu controller at /sys/fs/cgroup/cpu (mount | grep cgroup)")
    figures = {}
    fmt = lambda s: f"{s['median']:7.0f} {s['max']:7.0f}" if s else "      -       -"  # noqa: E731
    if "webhook" in FUNCTIONS:
        results = figures["webhook"] = [measure_size(mb) for mb in SIZES]
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
        print(f"machine: {os.cpu_count()} cores shared with other work; load average "
              + ", ".join(f"{r['load'][0]:.1f}->{r['load'][1]:.1f}" for r in results))
    if "replay" in FUNCTIONS:
        figures["replay"] = [measure_replay(mb) for mb in (128, 256)]
        for r in figures["replay"]:
            print(f"replay of a 6 MB spooled change at {r['mb']} MB: {fmt(r['ms'])} ms (median, max of 2), "
                  f"peak RSS {r['rss_kib'] / 1024:.0f} MiB, {r['applied']}")
    small = measure_small_functions(FUNCTIONS)
    if small:
        print_small_functions(small)
    figures.update(small)
    out = ROOT / "target/memory-size.json"
    out.write_text(json.dumps(figures, indent=1))
    print(f"(figures in {out})")


if __name__ == "__main__":
    main()
