"""A plain Python receiver of Kadoa's data changes, to measure against (`make profile`):
what a team would write without this project — check the bearer secret, parse the body,
and store one item per difference plus one per change with boto3's BatchWriteItem. No
spool, no alerts, no limits checks: the floor of a Python receiver's own work.

`own_time(events, table, client)` applies the events in this process and returns the CPU seconds
spent per event, after five warm-up events (as a warm Lambda instance would be)."""

import json
import time

SECRET = "profile-secret"


def handler(event, table, client):
    headers = {k.lower(): v for k, v in event.get("headers", {}).items()}
    if headers.get("authorization") != f"Bearer {SECRET}":
        return {"statusCode": 401}
    body = json.loads(event["body"])
    data = body["data"]
    pk = f"WORKFLOW#{data['workflowId']}"
    items = [{
        "pk": {"S": pk}, "sk": {"S": f"CHANGE#{data['id']}#"}, "entity": {"S": "change"},
        "createdAt": {"S": data.get("createdAt", body["timestamp"])},
        "differenceCount": {"N": str(len(data.get("differences") or []))},
    }]
    for index, difference in enumerate(data.get("differences") or []):
        fields = [{"M": {k: to_attribute(v) for k, v in field.items()}} for field in difference.get("fields", [])]
        items.append({"pk": {"S": pk}, "sk": {"S": f"CHANGE#{data['id']}#DIFF#{index:06}"},
                      "type": {"S": difference["type"]}, "fields": {"L": fields}})
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
        answer = client.batch_write_item(RequestItems={table: requests})
        while answer.get("UnprocessedItems"):
            answer = client.batch_write_item(RequestItems=answer["UnprocessedItems"])
    return {"statusCode": 200, "body": json.dumps({"status": "stored"})}


def to_attribute(value):
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {k: to_attribute(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [to_attribute(v) for v in value]}
    return {"S": str(value)}


def own_time(events, table, client):
    for event in events[:5]:
        handler(event, table, client)
    started = time.process_time()
    for event in events[5:]:
        assert handler(event, table, client)["statusCode"] == 200
    return (time.process_time() - started) / len(events[5:])
