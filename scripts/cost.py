"""`make cost`: the monthly bill at 1,000, 100,000 and 10,000,000 deliveries a month, one
line per item, beside Hookdeck's and Svix's published prices.

Per delivery, what DynamoDB is sent comes from tests/it/cost.rs (the requests as sent,
against moto), passed in $COST_FIGURES; the function's billed time from `make
memory-size` (MEASURED_MS below, at the template's MemorySize); prices from
scripts/prices.py. Assumptions are stated where they are made (TRAFFIC, LOG_BYTES, ...).
Exits non-zero if a default stack's standing cost at continuous traffic passes $4.
"""

import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import template  # noqa: E402
from prices import CHECKED, PRICES  # noqa: E402

VOLUMES = [1_000, 100_000, 10_000_000]
HOURS = 730  # CloudWatch's month
# The traffic: data changes of 10 differences, 1 in 200 deliveries a workflow failure and 1
# in 200 a recovery, each alerted (an upper bound: AlertRepeatMinutes suppresses repeats),
# and 1 in 100 a Kadoa retry answered as a duplicate.
TRAFFIC = {"change": 0.98, "duplicate": 0.01, "failure": 0.005, "recovery": 0.005}
STANDING_LIMIT = 4.00

# Milliseconds of the webhook by MemorySize: `make memory-size` on 2026-12-06, medians of
# the second round (every size with the 2-core machine 100% busy, against moto;
# docs/performance.md#memorysize-by-measurement): a warm 10-difference change, an alert, and
# a cold start (process start to the first answer: init and first delivery; Lambda bills init).
MEASURED_MS = {
    128: {"warm": 24, "alert": 234, "cold": 60},
    256: {"warm": 14, "alert": 56, "cold": 61},
    512: {"warm": 13, "alert": 56, "cold": 57},
    1024: {"warm": 14, "alert": 48, "cold": 54},
}
# Lambda keeps an idle environment for some minutes: at most one cold start per 10 minutes.
MAX_COLD_STARTS = HOURS * 6
# Log bytes per invocation besides the metric line (measured by tests/it/cost.rs): the
# webhook's `delivery` line and Lambda's platform.start and platform.report lines (JSON
# format), estimated from their shape. Storage is billed compressed; counted uncompressed
# here (an upper bound).
LOG_BYTES = {"delivery_line": 420, "platform": 900}
# The replay's SQS trigger polls an empty queue: Lambda's pollers (assumed 5) each make a
# 20-second long poll, 3 a minute.
IDLE_SQS_REQUESTS = 5 * 3 * 60 * HOURS
# Alert e-mail subscribers and SMS numbers priced per alert.
RECIPIENTS = {"e-mail": 1, "SMS": 1}


def price(name):
    return PRICES[name].price


def hours_with(events_a_month):
    """Hours of the month with at least one of `events_a_month` spread at random."""
    return HOURS * (1 - math.exp(-events_a_month / HOURS))


def deployed(resources):
    """Resources a default stack deploys (no Kadoa API key, no bus, DetailedMetrics off),
    with SilenceHours on."""
    off = {"HasKadoaApiKey", "HasEventBus", "CreateEventBus", "HasDetailedMetrics", "HasAlertPhone",
           "HasReservedConcurrency", "FilterSms"}
    return {k: v for k, v in resources.items() if v.get("Condition") not in off}


def memory_size(resources, function):
    return resources[function]["Properties"]["MemorySize"]


def bill(n, figures, resources):
    """The bill's lines at `n` deliveries a month: (item, dollars, how)."""
    stack = deployed(resources)
    webhook_mb = memory_size(resources, "WebhookFunction")
    ms = MEASURED_MS[webhook_mb]
    counts = {kind: n * share for kind, share in TRAFFIC.items()}
    alerts = counts["failure"] + counts["recovery"]
    cold = min(n, MAX_COLD_STARTS)
    watch_runs = HOURS
    lines = []
    add = lambda item, dollars, how: lines.append((item, dollars, how))  # noqa: E731

    requests = n + watch_runs
    add("Lambda requests", requests * price("lambda_request"), f"{requests:,.0f} invocations (webhook + hourly watch)")
    warm_s = ((n - alerts - cold) * ms["warm"] + alerts * ms["alert"] + cold * ms["cold"] + watch_runs * ms["warm"]) / 1000
    gb_s = warm_s * webhook_mb / 1024
    add("Lambda GB-seconds", gb_s * price("lambda_gb_second_arm64"),
        f"{gb_s:,.0f} GB-s at {webhook_mb} MB ({ms['warm']} ms warm, {ms['cold']} ms cold x {cold:,.0f})")

    units = sum(counts[k] * figures[k]["write_units"] for k in TRAFFIC)
    index = sum(counts[k] * figures[k]["index_units"] for k in TRAFFIC)
    add("DynamoDB writes", (units + index) * price("dynamodb_write_unit"),
        f"{units:,.0f} WU + {index:,.0f} WU of index entries (tests/it/cost.rs)")
    reads = watch_runs + alerts  # the watch's one-key scan; an alert reads its workflow's health
    add("DynamoDB reads", reads * price("dynamodb_read_unit"), f"{reads:,.0f} read units")
    stored_gb = 12 * sum(counts[k] * figures[k]["stored_bytes"] for k in TRAFFIC) / 1e9
    add("DynamoDB storage", stored_gb * price("dynamodb_storage"),
        f"{stored_gb:,.2f} GB a year in (RetentionDays 0 keeps all; 25 GB free not counted)")
    add("DynamoDB PITR", stored_gb * price("dynamodb_pitr"), f"{stored_gb:,.2f} GB backed up continuously")

    per_line = LOG_BYTES["delivery_line"] + LOG_BYTES["platform"]
    log_bytes = sum(counts[k] * (figures[k]["metric_line_bytes"] + per_line) for k in TRAFFIC)
    log_bytes += watch_runs * (300 + LOG_BYTES["platform"])  # the watch's metric line is ~300 bytes
    log_gb = log_bytes / 1e9
    add("Log ingestion", log_gb * price("logs_ingestion"), f"{log_gb:,.3f} GB")
    retention = 30  # LogRetentionDays' default
    add("Log storage", log_gb * retention / 30 * price("logs_storage"), f"{retention} days kept, uncompressed")

    metric_hours = metric_hours_default(n, alerts)
    add("Custom metrics", metric_hours / HOURS * price("custom_metric"),
        f"{metric_hours / HOURS:,.2f} metric-months (hourly proration: "
        f"{', '.join(f'{k} {v:,.0f} h' for k, v in metric_hours_detail(n, alerts).items())})")

    alarms = [r for r in stack.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    composite = [r for r in stack.values() if r["Type"] == "AWS::CloudWatch::CompositeAlarm"]
    add("Alarms", len(alarms) * price("alarm") + len(composite) * price("composite_alarm"),
        f"{len(alarms)} standard + {len(composite)} composite")
    secrets = [r for r in stack.values() if r["Type"] == "AWS::SecretsManager::Secret"]
    add("Secrets", len(secrets) * price("secret") + cold * price("secret_call"),
        f"{len(secrets)} secret, read once per cold start")
    add("Replay's idle SQS polling", IDLE_SQS_REQUESTS * price("sqs_request"),
        f"{IDLE_SQS_REQUESTS:,} empty long polls (assumed 5 pollers x 3/min)")
    add("Hourly watch (Scheduler)", watch_runs * price("scheduler_invocation"),
        f"{watch_runs} schedule invocations (its Lambda time is above)")
    add("EventBridge (if EventBusName)", eventbridge(n, alerts),
        "off by default; on: each change and alert published, the outbox's Lambda time, 2 alarms, 1 metric")
    add("SNS e-mail alerts", alerts * (price("sns_publish") + RECIPIENTS["e-mail"] * price("sns_email")),
        f"{alerts:,.0f} alerts x {RECIPIENTS['e-mail']} address")
    add("SNS SMS alerts", alerts * RECIPIENTS["SMS"] * price("sns_sms_us"),
        f"{alerts:,.0f} alerts x {RECIPIENTS['SMS']} US number (if AlertPhoneNumber set)")
    add("Dashboard", 0.0, f"first 3 in an account free, else {price('dashboard'):.2f}; log widgets "
        f"${price('logs_insights')}/GB scanned per view")
    return lines


def metric_hours_detail(n, alerts):
    """Metric-hours of the default metric set (src/metrics.rs): AuthenticatedDeliveries and
    DeliveryDelay in every hour with a delivery, Connected every hour, AlertsPublished and
    AlertDelay in the hours with an alert."""
    delivered = hours_with(n)
    alerted = hours_with(alerts)
    return {"AuthenticatedDeliveries": delivered, "DeliveryDelay": delivered, "Connected": HOURS,
            "AlertsPublished": alerted, "AlertDelay": alerted}


def metric_hours_default(n, alerts):
    return sum(metric_hours_detail(n, alerts).values())


def eventbridge(n, alerts):
    """With a bus: each change and alert published; the outbox's Lambda time (at most one
    invocation per change, at the template's 256 MB; a warm batch measured 53 ms at 256 MB,
    docs/performance.md, so a lone change is taken as 20 ms); its 2 alarms and
    EventsPublished."""
    events = n * TRAFFIC["change"] + alerts
    outbox = events * price("lambda_request") + events * 0.02 * 256 / 1024 * price("lambda_gb_second_arm64")
    return events * price("eventbridge_event") + outbox + 2 * price("alarm") + hours_with(events) / HOURS * price(
        "custom_metric")


def detailed_metrics_cost():
    """DetailedMetrics=true: deliveries by outcome (10), by event type x outcome (the 6 known
    types, other and none, with the outcomes each can have: about 24), DifferencesStored."""
    at_most = 10 + 24 + 1
    steady = 5  # stored and duplicate by outcome and by type, DifferencesStored: every hour
    return steady * price("custom_metric"), at_most * price("custom_metric")


# Published prices of managed receivers, as read (secondary transcriptions of the vendors'
# pricing pages; see docs/performance.md#cost).
PEERS = {
    "Hookdeck (Event Gateway)": {
        "source": "https://hookdeck.com/pricing (as transcribed 2026-09-20 in "
                  "github.com/api-evangelist/hookdeck plans/hookdeck-plans-pricing.yml)",
        1_000: "$0 (Developer: up to 10,000 events)",
        100_000: "from $39 + metered events (Team; per-event rate not found)",
        10_000_000: "from $39/$499 + metered events (per-event rate not found)",
    },
    "Svix": {
        "source": "https://www.svix.com/pricing/ (as transcribed 2026-09-20 in "
                  "github.com/api-evangelist/svix plans/svix-plans-pricing.yml)",
        1_000: "$0 (Free: 50,000 messages)",
        100_000: "$5.00 (Free + 50,000 x $0.0001)",
        10_000_000: "$995.00 (Free + 9.95 M x $0.0001; Professional from $490)",
    },
}


def main():
    figures = json.loads(Path(os.environ["COST_FIGURES"]).read_text())
    resources = template.load()["Resources"]
    bills = {n: bill(n, figures, resources) for n in VOLUMES}
    print(f"\nThe monthly bill (us-east-1 list prices of {CHECKED}, scripts/prices.py; no free tier):")
    print("  traffic: " + ", ".join(f"{share:.1%} {kind}" for kind, share in TRAFFIC.items())
          + " (10-difference changes; failures and recoveries alerted)")
    print(f"  {'item':32} " + " ".join(f"{n:>14,}" for n in VOLUMES))
    items = [item for item, _, _ in bills[VOLUMES[0]]]
    for i, item in enumerate(items):
        print(f"  {item:32} " + " ".join(f"{bills[n][i][1]:14.2f}" for n in VOLUMES))
    optional = {"SNS SMS alerts", "EventBridge (if EventBusName)"}
    totals = {n: sum(d for item, d, _ in bills[n] if item not in optional) for n in VOLUMES}
    print(f"  {'total (default stack, e-mail)':32} " + " ".join(f"{totals[n]:14.2f}" for n in VOLUMES))
    print("  how each line is counted (at 100,000):")
    for item, _, how in bills[100_000]:
        print(f"    {item}: {how}")
    standing = standing_cost(figures, resources)
    print(f"  standing at continuous traffic (a delivery every hour, none of the per-delivery lines): ${standing:.2f}")
    steady, at_most = detailed_metrics_cost()
    print(f"  DetailedMetrics=true adds ${steady:.2f} a month at steady traffic, up to ${at_most:.2f} "
          "if every outcome and event type occurs every hour")
    print("\nManaged receivers' published prices for the same volumes:")
    for name, peer in PEERS.items():
        print(f"  {name:26} " + " | ".join(peer[n] for n in VOLUMES))
        print(f"  {'':26} {peer['source']}")
    if standing > STANDING_LIMIT:
        sys.exit(f"cost: the standing bill ${standing:.2f} is above ${STANDING_LIMIT:.2f}")


def standing_cost(figures, resources):
    """What a default stack costs whatever the volume, with a delivery in every hour (so
    every always-published metric is billed every hour)."""
    fixed = {"Custom metrics", "Alarms", "Secrets", "Replay's idle SQS polling", "Hourly watch (Scheduler)"}
    lines = bill(HOURS * 100, figures, resources)
    dollars = sum(d for item, d, _ in lines if item in fixed)
    alerts = HOURS * 100 * (TRAFFIC["failure"] + TRAFFIC["recovery"])
    # Without the alert metrics (they follow alerts, not time).
    alert_hours = 2 * hours_with(alerts)
    return dollars - alert_hours / HOURS * price("custom_metric")


if __name__ == "__main__":
    main()
