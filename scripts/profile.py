"""`make profile`: instructions the release webhook spends, counted by callgrind.

Runs target/profiling/kadoa-lambda (the deployed binary, release with symbols) as the
webhook (`_HANDLER=webhook`) under valgrind's callgrind,
behind scripts/runtime_api.py and against moto, in four runs:

  A  start-up + one 10-difference data change
  B  A + 10 more 10-difference changes      -> a warm delivery = (B - A) / 10
  C  A + one 3000-difference change         -> (C - A)
  D  A + one failure alert                  -> (D - A)

and once more without valgrind for peak memory (A, C, and a 6 MB change). Prints the
figures and the top contributors of a warm delivery. Needs moto (AWS_ENDPOINT_URL), the
table, topic and secret that `scripts/local_aws.py setup` creates.
"""

import functools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import local_aws
import runtime_api

ROOT = Path(__file__).resolve().parent.parent
# PROFILE_BINARY: another build of the webhook to measure the same way (an older one, or
# kadoa-webhook, the webhook alone); it is told to run the webhook, as Lambda tells it.
BINARY = Path(os.environ.get("PROFILE_BINARY", ROOT / "target/profiling/kadoa-lambda"))
SECRET = "profile-secret"


def url_event(body, event_type):
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-kadoa-event": event_type,
                    "authorization": f"Bearer {SECRET}", "host": "x.lambda-url.us-east-1.on.aws"},
        "requestContext": {"accountId": "anonymous", "apiId": "x", "domainName": "x.lambda-url.us-east-1.on.aws",
                           "domainPrefix": "x", "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                                                         "sourceIp": "203.0.113.7", "userAgent": "Kadoa"},
                           "requestId": "r", "routeKey": "$default", "stage": "$default",
                           "time": "15/Jan/2025:10:30:00 +0000", "timeEpoch": 1736937000000},
        "body": json.dumps(body), "isBase64Encoded": False,
    }


def change_body(run, n, differences, value_bytes=0, id_bytes=0):
    """A data change's body; with `id_bytes`, its workflow and change ids that long."""
    pad = lambda text: text + "x" * max(0, id_bytes - len(text))
    diffs = [{"type": "changed", "fields": [
        {"key": "price", "value": 10.5 + i, "previousValue": 9.5 + i},
        {"key": "name", "value": f"Product {i}" + "x" * value_bytes, "previousValue": f"Produkt {i}"}]}
        for i in range(differences)]
    return {"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
            "data": {"id": pad(f"{run}-change-{n}"), "workflowId": pad("wf_profile"), "differences": diffs,
                     "url": "https://monitored-page.com", "createdAt": "2025-01-15T10:30:00Z",
                     "metadata": {"workflowName": "Product Monitor", "tags": ["pricing"]}}}


def change(run, n, differences, value_bytes=0, id_bytes=0):
    return url_event(change_body(run, n, differences, value_bytes, id_bytes), "workflow_data_change")


def spooled(run, n, differences, id_bytes=0):
    """An SQS event of the spool with one message whose body (a data change) is in S3, as
    the webhook spools a large delivery."""
    body = json.dumps(change_body(run, n, differences, 0, id_bytes))
    key = f"spool/profile-{run}-{n}.json"
    local_aws.clients()["s3"].put_object(Bucket=os.environ["SPOOL_BUCKET"], Key=key, Body=body.encode())
    message = {"receivedAt": "2025-01-15T10:30:01.000Z", "headerEvent": "workflow_data_change", "bodyObject": key}
    return {"Records": [{"messageId": f"m-{run}-{n}", "receiptHandle": "r", "body": json.dumps(message),
                         "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"}]}


def failure(run):
    body = {"eventType": "workflow_failed", "timestamp": "2025-01-15T10:30:00Z",
            "data": {"workflowId": f"wf_{run}", "workflowName": "Product Monitor", "source": "Product Monitor",
                     "reason": "Access blocked by bot protection", "action": "No action needed.",
                     "url": "https://monitored-page.com"}}
    return url_event(body, "workflow_failed")


def fresh_table():
    """A table of its own for each run: moto's transactions copy the whole table, so a
    table that earlier runs filled would slow the later ones down (to time-outs, even)."""
    fresh_table.count = getattr(fresh_table, "count", 0) + 1
    name = f"kadoa-profile-{os.getpid()}-{fresh_table.count}"
    local_aws.create_table(local_aws.clients(), name)
    return name


def environment(port):
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PATH", "SPOOL_"))}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "kadoa-webhook", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "_HANDLER": "webhook",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_LEVEL": "WARN",
        "TABLE_NAME": fresh_table(), "ALERT_TOPIC_ARN": os.environ["ALERT_TOPIC_ARN"],
        "WEBHOOK_SECRET": SECRET,
        # As template.yaml sets it.
        "MIMALLOC_ARENA_EAGER_COMMIT": "0",
    })
    return env


# Runs a command and prints its peak RSS (KiB) and CPU time. The peak is the kernel's VmHWM
# of the function's own memory, read while it runs: the ru_maxrss that wait4 reports also
# holds the peak of the process it was started from (exec records the old image's), here a
# Python of ~10 MiB, more than a small delivery needs.
MEASURE = """
import os, re, subprocess, sys, time
function = subprocess.Popen(sys.argv[1:])
peak = 0
while True:
    try:
        with open(f"/proc/{function.pid}/status") as status:
            peak = max(peak, int(re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1)))
    except (OSError, AttributeError):
        pass  # gone, or a zombie without memory
    pid, _, usage = os.wait4(function.pid, os.WNOHANG)
    if pid:
        break
    time.sleep(0.005)
print(peak, usage.ru_utime + usage.ru_stime)
"""


def run(events, callgrind_out=None, callgrind_options=(), binary=None, strict=True, handler="webhook"):
    """Runs the function (the webhook, or `binary` as `handler`) over `events`; returns (instructions or
    None, peak RSS KiB, answers, CPU seconds). Unless `strict`, a delivery that was not
    applied (moto too slow for the SDK's timeouts on a busy machine) is reported, and its
    figures kept: its memory peaked before its writes."""
    binary = binary or BINARY
    with tempfile.TemporaryDirectory() as tmp, runtime_api.serving(events) as (port, read_answers):
        command = [str(binary)]
        if callgrind_out:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_out}", "--quiet",
                       *callgrind_options] + command
        log = Path(tmp, "function.log")
        with log.open("w") as stderr:
            measured = subprocess.run([sys.executable, "-c", MEASURE] + command,
                                      env={**environment(port), "_HANDLER": handler},
                                      stdout=subprocess.PIPE, stderr=stderr, text=True)
        max_rss, cpu = measured.stdout.strip().splitlines()[-1].split()
        max_rss, cpu = int(max_rss), float(cpu)
        answers = read_answers()
        # The function logs to stdout (as on Lambda), before the wrapper's figures.
        function_log = ("\n".join(measured.stdout.splitlines()[:-1]) + log.read_text())[-3000:]
    def status(answer):
        body = json.loads(answer["body"])
        if "batchItemFailures" in body:  # the replay's answer
            return None if body["batchItemFailures"] else "applied"
        return json.loads(body["body"]).get("status")
    statuses = [status(a) if a else None for a in answers]
    if (len(statuses) != len(events) or None in statuses) and not strict:
        print(f"profile: not every event was applied ({statuses}); the figures are of the attempt", file=sys.stderr)
    elif len(statuses) != len(events) or None in statuses:
        sys.exit(f"profile: the function did not answer every event: {statuses} {str(answers)[:600]}\n"
                 f"its log ends:\n{function_log}")
    instructions = None
    if callgrind_out:
        text = Path(callgrind_out).read_text()
        instructions = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
    return instructions, max_rss, statuses, cpu


@functools.lru_cache(maxsize=None)
def self_costs(callgrind_out, by_function):
    """Instructions by crate (or by crate and function), self cost, from callgrind_annotate
    (each file is read once: the figures and every table ask again)."""
    output = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", str(callgrind_out)],
                            capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in output.splitlines():
        match = re.match(r"^\s*([\d,]+) \([^)]*\)\s+(.*)$", line)
        if not match or "PROGRAM TOTALS" in line:
            continue
        # "file:function": the file is where the instructions' source is (inlined code too).
        place, _, function = match.group(2).partition(":")
        if "/registry/src/" in place:
            crate = re.sub(r"^.*/registry/src/[^/]+/([^/]+)/.*$", r"\1", place)
        elif place.startswith("/rustc/"):
            crate = "std"
        elif "/src/" in place and str(ROOT) in place:
            crate = "kadoa-webhook"
        else:
            crate = place.rsplit("/", 1)[-1]
        key = f"{crate}: {function.split(' [')[0][:90]}" if by_function else crate
        costs[key] = costs.get(key, 0) + int(match.group(1).replace(",", ""))
    return costs


def sha256_cost(callgrind_out):
    """Instructions in SHA-256's block functions (without the CPU's SHA instructions under
    valgrind): `sha2`'s (the SDK's signing) and AWS-LC's (the body hashes, src/aws.rs)."""
    costs = self_costs(callgrind_out, True)
    sha2 = sum(cost for name, cost in costs.items() if name.endswith("sha2::sha256::compress256"))
    aws_lc = sum(cost for name, cost in costs.items() if "sha256_block_data_order" in name)
    return sha2, aws_lc


def top(later, earlier, per, by_function, count=10):
    """What costs most in `later` beyond `earlier`, per event."""
    a, b = self_costs(earlier, by_function), self_costs(later, by_function)
    total = (sum(b.values()) - sum(a.values())) / per
    rows = sorted((((b.get(k, 0) - a.get(k, 0)) / per, k) for k in b), reverse=True)[:count]
    return [f"{cost:>12,.0f}  {cost / total:6.1%}  {name}" for cost, name in rows]


def pure_paths(out):
    """Instructions of the pure operations alone (benches/pure_path.rs, `--once`)."""
    # The newest build: older ones stay in deps/ under other hashes.
    benches = [p for p in (ROOT / "target/profiling/deps").glob("pure_path-*") if os.access(p, os.X_OK) and p.suffix == ""]
    bench = max(benches, key=lambda p: p.stat().st_mtime)
    counts = {}
    for name in ("parse_plan_10", "parse_plan_3000", "authenticate", "format_alert", "sha256_64k", "sha256_64k_awslc"):
        output = out / f"callgrind.pure.{name}"
        subprocess.run(["valgrind", "--tool=callgrind", "--quiet", "--collect-atstart=no", "--toggle-collect=*measured_*",
                        f"--callgrind-out-file={output}", str(bench), "--once", name], check=True)
        counts[name] = int(re.search(r"^(?:summary|totals): (\d+)", output.read_text(), re.M).group(1))
    return counts


def main():
    out = Path(tempfile.mkdtemp(prefix="kadoa-profile-"))
    if "--memory-only" not in sys.argv:
        instructions(out)
    memory()
    print(f"(callgrind files in {out})")


def instructions(out):
    pure = {}
    if "PROFILE_BINARY" not in os.environ:
        pure = pure_paths(out)
        print("instructions of the pure path (no I/O; benches/pure_path.rs under callgrind):")
        print(f"  parse + plan, 10 differences     {pure['parse_plan_10'] / 1e6:8.3f} M")
        print(f"  parse + plan, 3000 differences   {pure['parse_plan_3000'] / 1e6:8.3f} M")
        print(f"  authenticate (bearer, 2 secrets) {pure['authenticate'] / 1e3:8.1f} k")
        print(f"  format a failure alert           {pure['format_alert'] / 1e3:8.1f} k")
        print(f"  SHA-256 per 64-byte block: sha2 (SigV4) {pure['sha256_64k'] / 1024:5.0f}, "
              f"AWS-LC (body hashes) {pure['sha256_64k_awslc'] / 1024:5.0f}   (valgrind hides the CPU's SHA instructions)")
    runs = {
        "A": [first("a")],
        "B": [first("b")] + [change("b", n, 10) for n in range(1, 11)],
        "C": [first("c"), change("c", 1, 3000)],
        "D": [first("d"), failure("d")],
    }
    counts = {}
    for name, events in runs.items():
        counts[name], _, statuses, _ = run(events, out / f"callgrind.{name}")
        print(f"  run {name}: {len(events)} events, answers {sorted(set(statuses))}, {counts[name]:,} instructions",
              file=sys.stderr)
    a = counts["A"]
    sha = {name: sha256_cost(out / f"callgrind.{name}") for name in runs}
    # Instructions per 64-byte block of each implementation, to count blocks; with the
    # CPU's SHA instructions a block is ~165 (the loop of sha2's x86 SHA-NI backend, objdump
    # of this binary; AWS-LC's and the aarch64 loops are of the same order).
    per_block = (pure["sha256_64k"] / 1024, pure["sha256_64k_awslc"] / 1024) if pure else (3326, 2092)

    def figure(label, later, earlier, per):
        total = (counts[later] - (counts[earlier] if earlier else 0)) / per
        soft = [(sha[later][i] - (sha[earlier][i] if earlier else 0)) / per for i in (0, 1)]
        blocks = sum(cost / per_block[i] for i, cost in enumerate(soft))
        return label, total, sum(soft), total - sum(soft) + 165 * blocks

    figures = [figure("start-up + first 10-difference delivery", "A", None, 1),
               figure("warm 10-difference delivery", "B", "A", 10),
               figure("warm 3000-difference delivery", "C", "A", 1),
               figure("warm failure alert (claim, publish, commit)", "D", "A", 1)]
    print("instructions (callgrind, release build):          all   of it SHA-256 (software)"
          "   with SHA-256 in hardware (est.)")
    for label, total, of_it, hardware in figures:
        print(f"  {label:45} {total / 1e6:7.2f} M {of_it / 1e6:10.2f} M {hardware / 1e6:22.2f} M")
    for label, later, per in (("a warm 10-difference delivery", "B", 10), ("a warm 3000-difference delivery", "C", 1),
                              ("an alert", "D", 1)):
        print(f"top contributors of {label} (instructions, self cost, by crate / by function):")
        for row in top(out / f"callgrind.{later}", out / "callgrind.A", per, False, 6):
            print("  " + row)
        for row in top(out / f"callgrind.{later}", out / "callgrind.A", per, True, 6):
            print("  " + row)


def first(run_name):
    return change(run_name, 0, 10)


def memory():
    rss, cpu = {}, {}
    for name, events in {"10 differences": [first("e")], "3000 differences": [first("f"), change("f", 1, 3000)],
                         "6 MB change": [first("g"), change("g", 1, 37000)],
                         "6 MB change, 256-byte ids": [first("h"), change("h", 1, 37000, id_bytes=256)]}.items():
        _, rss[name], _, cpu[name] = run(events, strict=False)
    replay = BINARY.parent / "kadoa-replay" if BINARY.name == "kadoa-webhook" else BINARY
    for name, events in {"replay of a 6 MB change (S3)": [spooled("i", 1, 37000)],
                         "replay of a 6 MB change, 256-byte ids": [spooled("j", 1, 37000, id_bytes=256)]}.items():
        _, rss[name], _, cpu[name] = run(events, binary=replay, strict=False, handler="replay")
    # The function's own time per warm delivery: its CPU time (a single thread; the waits for
    # moto are not counted), 51 deliveries less 1, against a plain Python receiver's.
    _, _, _, one = run([first("k")])
    _, _, _, many = run([first("l")] + [change("l", n, 10) for n in range(1, 51)])
    own = (many - one) / 50
    import python_receiver
    python = python_receiver.own_time([change("m", n, 10) for n in range(55)], fresh_table(), local_aws.clients()["dynamodb"])
    print(f"own time of a warm 10-difference delivery (CPU, no AWS waits): {own * 1e3:.2f} ms; "
          f"a plain Python receiver (boto3 BatchWriteItem): {python * 1e3:.2f} ms")
    print("peak RSS (no valgrind): " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in rss.items()))
    print("CPU time of the whole process, start-up included (one core of this machine): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items()))


if __name__ == "__main__":
    main()
