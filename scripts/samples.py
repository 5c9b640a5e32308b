"""`make samples`: the events in events/ as one workflow's story, in time order and dated
in the last hour, sent to the function that `make dev` runs; prints what each one did.

A run of Kadoa's: a maintenance notice and low credits, a run that starts and finishes, a
data change, a failure (and two requests with a wrong credential), the recovery, another
data change, a second failure ended by a finished run, and requests that are refused.
Change ids carry the run's time, so every `make samples` stores new changes."""

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

# (file, minutes before now, what it shows)
STORY = [
    ("system_maintenance.json", 60, "a notice, logged"),
    ("credits_low.json", 58, "an account alert"),
    ("basic_auth.json", 55, "a run starts (Basic auth), logged"),
    ("unknown_event_type.json", 54, "a type the receiver does not know, logged"),
    ("workflow_finished.json", 50, "a run finishes: nothing to tell"),
    ("workflow_data_change.json", 48, "a data change, stored"),
    ("workflow_validation_anomaly_change.json", 47, "validation anomalies, logged"),
    ("workflow_failed.json", 45, "the workflow fails: alert"),
    ("unauthenticated.json", 44, "no credential: refused"),
    ("wrong_secret.json", 44, "a wrong secret: refused"),
    ("workflow_recovered.json", 35, "it recovers: alert"),
    ("base64_body.json", 30, "another data change (base64 body), stored"),
    ("workflow_failed.json", 25, "it fails again: alert"),
    ("workflow_finished_after_failure.json", 20, "a finished run ends the failure: recovery alert"),
    ("rotated_secret.json", 15, "a run finishes, sent with the rotated secret"),
    ("malformed.json", 10, "a data change without workflowId: refused"),
    ("not_json.json", 10, "not JSON: refused"),
    ("get_method.json", 10, "a GET: refused"),
]


def at(minutes_ago, now):
    return (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def redate(event, when, run):
    """The event with its body's timestamps set to `when` and change ids made this run's."""
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
        if "createdAt" in data:
            data["createdAt"] = when
        if body.get("eventType") == "workflow_data_change" and "id" in data:
            data["id"] = f"{data['id']}-{run}"
    text = json.dumps(body)
    return {**event, "body": base64.b64encode(text.encode()).decode() if encoded else text}


def what_it_did(answer, event):
    status, body = answer.get("statusCode"), json.loads(answer.get("body") or "{}")
    outcome = body.get("status") or body.get("error", "")
    if body.get("eventType") == "workflow_data_change" and status == 200:
        raw = event.get("body") or ""
        text = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else raw
        count = len(json.loads(text).get("data", {}).get("differences") or [])
        outcome += f" ({count} difference{'' if count == 1 else 's'})"
    return f"{status} {outcome}"


def main():
    now = datetime.now(timezone.utc)
    run = now.strftime("%H%M%S")
    for number, (name, minutes_ago, story) in enumerate(STORY, 1):
        event = json.loads((ROOT / "events" / name).read_text())
        event = redate(event, at(minutes_ago, now), run)
        if "--print" in sys.argv:
            # The events instead, one JSON line each (tests/it/alerts.rs sends them).
            print(json.dumps({"file": name, "event": event}))
            continue
        request = urllib.request.Request(URL, data=json.dumps(event).encode(), method="POST")
        if number == 1:
            print("(the first answer waits for `make dev`'s build of the function: a few minutes the first time)")
        try:
            # The first request starts cargo-lambda's build of the function.
            with urllib.request.urlopen(request, timeout=900 if number == 1 else 60) as answer:
                result = what_it_did(json.load(answer), event)
        except (urllib.error.URLError, OSError) as error:
            sys.exit(f"samples: the function is not answering at {URL} ({error}); start it with `make dev`")
        print(f"{number:2}  {at(minutes_ago, now)[11:16]} UTC  {story:52} -> {result}")
        time.sleep(0.05)
    if "--print" not in sys.argv:
        print("\nSee what was stored and who was told: make show")


if __name__ == "__main__":
    main()
