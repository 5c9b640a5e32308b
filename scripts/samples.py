"""`make samples`: the events in events/ as one workflow's story, in time order and dated
in the last hour, sent to the function that `make dev` runs; prints what each one did
beside what it should do, and exits 1 if any answer differs.

A run of Kadoa's: a maintenance notice and low credits, a run that starts and finishes, a
data change, a failure (and two requests with a wrong credential), the recovery, another
data change, a price drop that meets the alert rule the local stack ships with
(scripts/local_rules.json), a second failure ended by a finished run, and requests that
are refused.

Every `make samples` tells its story about a workflow of its own (`wf_123-<run>`), with
change ids of its own: a workflow's health follows event time, so a story dated in the
last hour told about `wf_123` again would be older than what the table already knows of
it (the curl `make dev` prints, an earlier `make samples`) and every alert in it would be
suppressed as stale.

`--curl` prints the curl that `make dev` shows (a failure of `wf_123`, dated now);
`--print` prints the story's events instead of sending them (tests/it/alerts.rs)."""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = os.environ.get("FUNCTION_PORT", "9000")
URL = f"http://127.0.0.1:{PORT}/2015-03-31/functions/kadoa-webhook/invocations"

# The workflow of the fixtures in events/ and of the curl `make dev` prints.
FIXTURE_WORKFLOW = "wf_123"

# (file, minutes before now, what it shows, the answer it should get: the status code,
# and for a 200 the outcome the function names)
STORY = [
    ("system_maintenance.json", 60, "a notice, logged", "200 stored"),
    ("credits_low.json", 58, "an account alert", "200 alerted"),
    ("basic_auth.json", 55, "a run starts (Basic auth), logged", "200 stored"),
    ("unknown_event_type.json", 54, "a type the receiver does not know, logged", "200 accepted"),
    ("workflow_finished.json", 50, "a run finishes: nothing to tell", "200 stored"),
    ("workflow_data_change.json", 48, "a data change, stored", "200 stored"),
    ("workflow_validation_anomaly_change.json", 47, "validation anomalies, logged", "200 stored"),
    ("workflow_failed.json", 45, "the workflow fails: alert", "200 alerted"),
    ("unauthenticated.json", 44, "no credential: refused", "401"),
    ("wrong_secret.json", 44, "a wrong secret: refused", "401"),
    ("workflow_recovered.json", 35, "it recovers: alert", "200 alerted"),
    ("base64_body.json", 30, "another data change (base64 body), stored", "200 stored"),
    ("workflow_price_drop.json", 28, "a price falls below 20: the local rule alerts", "200 alerted"),
    ("workflow_failed.json", 25, "it fails again: alert", "200 alerted"),
    ("workflow_finished_after_failure.json", 20, "a finished run ends the failure: recovery alert", "200 alerted"),
    ("rotated_secret.json", 15, "a run finishes, sent with the rotated secret", "200 stored"),
    ("malformed.json", 10, "a data change without workflowId: refused", "400"),
    ("not_json.json", 10, "not JSON: refused", "400"),
    ("get_method.json", 10, "a GET: refused", "405"),
]


def at(minutes_ago, now):
    """`now` less `minutes_ago`, to the millisecond: two runs a moment apart still tell
    different stories (account events are told apart by their time)."""
    when = now - timedelta(minutes=minutes_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03}Z"


def redate(event, when, run):
    """The event with its body's timestamps set to `when`, and its workflow and change ids
    made this run's."""
    raw = event.get("body") or ""
    encoded = event.get("isBase64Encoded")
    text = base64.b64decode(raw).decode() if encoded else raw
    try:
        body = json.loads(text)
    except ValueError:
        return event  # a body that is meant not to parse
    if not isinstance(body, dict):
        return event
    body["timestamp"] = when
    data = body.get("data")
    if isinstance(data, dict):
        # Run events name their workflow `id`; the others `workflowId`.
        for key in ("workflowId", "id"):
            if data.get(key) == FIXTURE_WORKFLOW:
                data[key] = f"{FIXTURE_WORKFLOW}-{run}"
        if "createdAt" in data:
            data["createdAt"] = when
        if body.get("eventType") == "workflow_data_change" and "id" in data:
            data["id"] = f"{data['id']}-{run}"
    text = json.dumps(body)
    return {**event, "body": base64.b64encode(text.encode()).decode() if encoded else text}


def what_it_did(answer, event):
    """(status, the outcome as printed)."""
    status, body = answer.get("statusCode"), json.loads(answer.get("body") or "{}")
    outcome = body.get("status") or body.get("error", "")
    if body.get("eventType") == "workflow_data_change" and status == 200:
        raw = event.get("body") or ""
        text = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else raw
        count = len(json.loads(text).get("data", {}).get("differences") or [])
        outcome += f" ({count} difference{'' if count == 1 else 's'})"
    return status, outcome


def as_expected(status, outcome, expected):
    code, _, word = expected.partition(" ")
    return str(status) == code and (not word or outcome.split(" ")[0] == word)


def run_id(now):
    """This run's part of the workflow and change ids: its time, to the millisecond."""
    return now.strftime("%m%d%H%M%S") + f"{now.microsecond // 1000:03}"


def story(now):
    """The story's events, dated before `now`, with this run's workflow and change ids."""
    run = run_id(now)
    for name, minutes_ago, what, expected in STORY:
        event = json.loads((ROOT / "events" / name).read_text())
        yield name, at(minutes_ago, now), what, expected, redate(event, at(minutes_ago, now), run)


def curl(now):
    """The curl `make dev` prints: a failure of the fixtures' workflow, dated `now`."""
    body = json.dumps(
        {
            "eventType": "workflow_failed",
            "timestamp": at(0, now),
            "data": {
                "workflowId": FIXTURE_WORKFLOW,
                "workflowName": "Product Monitor",
                "reason": "Access blocked by bot protection",
                "action": "No action needed.",
                "url": "https://monitored-page.com",
            },
        },
        separators=(",", ":"),
    )
    url = f"http://127.0.0.1:{PORT}/lambda-url/kadoa-webhook/"
    return (
        f"curl -sS -X POST '{url}' \\\n"
        "    -H 'Authorization: Bearer local-dev-secret' \\\n"
        "    -H 'Content-Type: application/json' -H 'X-Kadoa-Event: workflow_failed' \\\n"
        f"    -d '{body}'"
    )


def main():
    now = datetime.now(timezone.utc)
    if "--curl" in sys.argv:
        print(curl(now))
        return
    if "--print" in sys.argv:
        # The events instead, one JSON line each (tests/it/alerts.rs sends them).
        for name, _, _, expected, event in story(now):
            print(json.dumps({"file": name, "expected": expected, "event": event}))
        return
    print("(the first answer waits for `make dev`'s build of the function: a few minutes the first time)")
    surprises = 0
    for number, (name, when, what, expected, event) in enumerate(story(now), 1):
        request = urllib.request.Request(URL, data=json.dumps(event).encode(), method="POST")
        try:
            # The first request starts cargo-lambda's build of the function.
            with urllib.request.urlopen(request, timeout=900 if number == 1 else 60) as answer:
                status, outcome = what_it_did(json.load(answer), event)
        except (urllib.error.URLError, OSError) as error:
            sys.exit(f"samples: the function is not answering at {URL} ({error}); start it with `make dev`")
        note = "" if as_expected(status, outcome, expected) else f"   <- expected {expected}"
        surprises += bool(note)
        print(f"{number:2}  {when[11:16]} UTC  {what:52} -> {status} {outcome}{note}")
        time.sleep(0.05)
    print(f"\nThe story was told about workflow {FIXTURE_WORKFLOW}-{run_id(now)}.")
    print("See what was stored and who was told: make show")
    if surprises:
        sys.exit(f"samples: {surprises} answer(s) differ from what the story expects (see the function's log)")


if __name__ == "__main__":
    main()
