"""The local stand-in for the deployed resources, on moto.

  setup  creates the table and the alert topic from template.yaml's own definitions (so
         local and deployed resources cannot differ), plus a queue subscribed to the topic
         that catches every alert; writes the function's environment to .local/dev.env.
         Also the spool: a queue, its dead-letter queue and a bucket, as the stack has them.
  create the same with other names, for the integration tests (a JSON spec a line on
         standard input, what it created as a JSON line on standard output).
  replay polls the spool and hands what it holds to the replay function that `make dev`
         runs (what Lambda's SQS trigger does when deployed), every 5 seconds.
  show   prints what is stored (changes with their differences, the event log, workflow
         health), the alerts that were sent, and what waits in the spool, readable.

Talks to AWS_ENDPOINT_URL (moto) only.
"""

import base64
import json
import os
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import boto3

import template

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("LOCAL_DIR", ROOT / ".local"))
TABLE = "kadoa-events-local"
TOPIC = "kadoa-alerts-local"
INBOX = "kadoa-alerts-local-inbox"
SPOOL = "kadoa-spool-local"
DEAD_LETTERS = "kadoa-spool-local-dlq"
BUCKET = "kadoa-spool-local"
# Two lines: a secret being rotated out and its successor (events/rotated_secret.json).
SECRETS = "local-dev-secret\nlocal-dev-secret-next\n"


def template_resources():
    return template.load()["Resources"]


class Clients(dict):
    """boto3 clients against AWS_ENDPOINT_URL, each made when first asked for."""

    def __init__(self):
        super().__init__()
        self.session = boto3.session.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
        )

    def __missing__(self, name):
        client = self[name] = self.session.client(name, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        return client


def clients():
    return Clients()


def create_table(aws, name, stream=False):
    """The events table as template.yaml defines it, named `name`; with `stream`, with the
    stream the stack gives it when it has an event bus."""
    table = template_resources()["EventsTable"]["Properties"]
    extra = {}
    if stream:
        # `!If [HasEventBus, {StreamViewType: …}, !Ref AWS::NoValue]`: the bus's branch.
        view = table["StreamSpecification"]["Fn::If"][1]["StreamViewType"]
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    aws["dynamodb"].create_table(
        TableName=name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        GlobalSecondaryIndexes=table.get("GlobalSecondaryIndexes", []),
        BillingMode=table["BillingMode"],
        **extra,
    )
    aws["dynamodb"].update_time_to_live(TableName=name, TimeToLiveSpecification=table["TimeToLiveSpecification"])


# The rules the README offers (and template.yaml has commented out), with a queue each.
BUS_RULES = {
    "all": {"source": ["kadoa.webhook"]},
    "price": {"source": ["kadoa.webhook"], "detail-type": ["Kadoa Data Change"], "detail": {"fieldKeys": ["price"]}},
    "failures": {"source": ["kadoa.webhook"], "detail-type": ["Kadoa Workflow Failed"]},
}


def create_bus(aws, suffix, created):
    """An event bus, and for each rule of BUS_RULES a queue it targets."""
    events = aws["events"]
    name = f"kadoa-bus-{suffix}"
    created["bus_arn"] = events.create_event_bus(Name=name)["EventBusArn"]
    created["bus_queues"] = {}
    for rule, pattern in BUS_RULES.items():
        url = aws["sqs"].create_queue(QueueName=f"kadoa-bus-{suffix}-{rule}")["QueueUrl"]
        events.put_rule(Name=f"{name}-{rule}", EventBusName=name, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=f"{name}-{rule}", EventBusName=name, Targets=[{"Id": rule, "Arn": queue_arn(aws, url)}])
        created["bus_queues"][rule] = url
    created["stream_arn"] = aws["dynamodb"].describe_table(TableName=created["table"])["Table"]["LatestStreamArn"]


def jsonable(value):
    """boto3's answer as JSON: binary as base64, times as epoch seconds."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return value


STREAM_ITERATORS = {}


def stream_event(aws, stream_arn):
    """The stream records written since the last call, as the Lambda event the outbox
    function would get for them (its FilterCriteria left to the function's own check)."""
    streams = aws["dynamodbstreams"]
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        key = (stream_arn, shard["ShardId"])
        if key not in STREAM_ITERATORS:
            STREAM_ITERATORS[key] = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        answer = streams.get_records(ShardIterator=STREAM_ITERATORS[key])
        STREAM_ITERATORS[key] = answer.get("NextShardIterator") or STREAM_ITERATORS[key]
        for record in answer["Records"]:
            record = jsonable(record)
            record["eventSourceARN"] = stream_arn
            records.append(record)
    return {"Records": records}


def create(aws, suffix, spool=True, secret=None, max_receives=None, bus=False):
    """Every resource the stack has, named with `suffix`, from template.yaml's own
    definitions: the table (keys, indexes, TTL), the alert topic and a queue subscribed to
    it that catches every alert, and with `spool` the spool queue (with the stack's receive
    limit, or `max_receives`), its dead-letter queue and its bucket; with `secret`, a
    secret holding it. `make dev`, `make profile` and the integration tests all create
    their resources here. Returns their names, URLs and ARNs."""
    resources = template_resources()
    created = {"table": f"kadoa-events-{suffix}"}
    create_table(aws, created["table"], stream=bus)
    if bus:
        create_bus(aws, suffix, created)

    topic = resources["AlertTopic"]["Properties"]
    created["topic_arn"] = aws["sns"].create_topic(
        Name=f"kadoa-alerts-{suffix}", Attributes={"DisplayName": topic["DisplayName"]})["TopicArn"]
    created["inbox_url"] = aws["sqs"].create_queue(QueueName=f"kadoa-alerts-{suffix}-inbox")["QueueUrl"]
    inbox_arn = queue_arn(aws, created["inbox_url"])
    aws["sns"].subscribe(TopicArn=created["topic_arn"], Protocol="sqs", Endpoint=inbox_arn)

    if spool:
        queue = resources["SpoolQueue"]["Properties"]
        created["dead_letter_url"] = aws["sqs"].create_queue(QueueName=f"kadoa-spool-{suffix}-dlq")["QueueUrl"]
        receives = max_receives or queue["RedrivePolicy"]["maxReceiveCount"]
        redrive = {"deadLetterTargetArn": queue_arn(aws, created["dead_letter_url"]), "maxReceiveCount": str(receives)}
        created["spool_url"] = aws["sqs"].create_queue(
            QueueName=f"kadoa-spool-{suffix}", Attributes={"RedrivePolicy": json.dumps(redrive)})["QueueUrl"]
        created["bucket"] = f"kadoa-spool-{suffix}"
        aws["s3"].create_bucket(Bucket=created["bucket"])
    if secret is not None:
        created["secret_arn"] = aws["secretsmanager"].create_secret(
            Name=f"kadoa-webhook-secret-{suffix}", SecretString=secret)["ARN"]
    return created


def queue_arn(aws, url):
    return aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def add_local_rules(aws, table):
    """The alert rules the local stack ships with (scripts/local_rules.json), as `kadoa
    rules add` writes them: `make samples` sends a change that meets one."""
    rules = json.loads((Path(__file__).parent / "local_rules.json").read_text(encoding="utf-8"))
    for rule in rules:
        aws["dynamodb"].put_item(
            TableName=table,
            Item={
                "pk": {"S": "RULES"},
                "sk": {"S": f"RULE#{rule['name']}"},
                "entity": {"S": "rule"},
                "name": {"S": rule["name"]},
                "definition": {"S": json.dumps(rule, separators=(",", ":"))},
                "createdAt": {"S": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")},
            },
        )


def setup():
    aws = clients()
    # The secret lives in (local) Secrets Manager, as in the deployed stack.
    created = create(aws, "local", spool=True, secret=SECRETS)
    LOCAL.mkdir(exist_ok=True)
    env = {
        "TABLE_NAME": created["table"],
        "ALERT_TOPIC_ARN": created["topic_arn"],
        "WEBHOOK_SECRET_ARN": created["secret_arn"],
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "ALERT_REPEAT_MINUTES": os.environ.get("ALERT_REPEAT_MINUTES", "60"),
        "RETENTION_DAYS": os.environ.get("RETENTION_DAYS", "0"),
        "SPOOL_QUEUE_URL": created["spool_url"],
        "SPOOL_BUCKET": created["bucket"],
        # For the kadoa command (it reads this file next to `make dev`).
        "SPOOL_DEAD_LETTER_QUEUE_URL": created["dead_letter_url"],
        "WEBHOOK_URL": f"http://127.0.0.1:{os.environ.get('FUNCTION_PORT', '9000')}/lambda-url/kadoa-webhook/",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
    }
    add_local_rules(aws, created["table"])
    (LOCAL / "dev.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    print(f"created table {TABLE} and topic {TOPIC} (alerts are caught by queue {INBOX})")


def replay(port):
    """What Lambda's SQS trigger does: receive, invoke the replay function, delete what it applied."""
    aws = clients()
    url = aws["sqs"].get_queue_url(QueueName=SPOOL)["QueueUrl"]
    invoke = f"http://127.0.0.1:{port}/2015-03-31/functions/kadoa-replay/invocations"
    while True:
        batch = aws["sqs"].receive_message(
            QueueUrl=url, MaxNumberOfMessages=5, VisibilityTimeout=60, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        if batch:
            records = [
                {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                 "attributes": m.get("Attributes", {}), "eventSource": "aws:sqs"}
                for m in batch
            ]
            request = urllib.request.Request(invoke, data=json.dumps({"Records": records}).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=120) as answer:
                    failed = {f["itemIdentifier"] for f in json.load(answer).get("batchItemFailures", [])}
            except OSError as error:
                print(f"replay: the replay function is not answering yet ({error})", file=sys.stderr)
                failed = {m["MessageId"] for m in batch}
            for message in batch:
                if message["MessageId"] not in failed:
                    aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            print(f"replay: {len(batch) - len(failed)} applied, {len(failed)} to try again", file=sys.stderr)
        time.sleep(5)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "create":
        # The tests' way in: a JSON spec a line on standard input, what was created as a
        # JSON line on standard output, until standard input ends (one process serves a
        # whole test run).
        aws = clients()
        for line in sys.stdin:
            spec = json.loads(line)
            if spec.get("op") == "stream":
                print(json.dumps(stream_event(aws, spec["stream_arn"])), flush=True)
                continue
            created = create(aws, spec["suffix"], spec.get("spool", False), spec.get("secret"), spec.get("max_receives"),
                             spec.get("bus", False))
            print(json.dumps(created), flush=True)
    elif command == "replay":
        replay(sys.argv[2] if len(sys.argv) > 2 else "9000")
    else:
        {"setup": setup}[command]()
