"""Every list price `make cost` and `make memory-size` use, in one table: us-east-1, USD,
without the free tier (an account's free tier is shared by everything in it), as AWS's
pricing pages named beside each publish them. This machine reaches no pricing page: the
figures are the published list prices as known on the date below, not fetched; check them
against the pages (and your region) before relying on them. Change a price here and both
scripts follow.
"""

from typing import NamedTuple

CHECKED = "2026-12-06"


class Price(NamedTuple):
    price: float
    unit: str
    source: str


PRICES = {
    "lambda_request": Price(0.20 / 1e6, "request", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second_arm64": Price(0.0000133334, "GB-second (arm64)", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second_x86": Price(0.0000166667, "GB-second (x86_64)", "https://aws.amazon.com/lambda/pricing/"),
    "dynamodb_write_unit": Price(0.625 / 1e6, "write request unit (on-demand)",
                                 "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_read_unit": Price(0.125 / 1e6, "read request unit (on-demand)",
                                "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_storage": Price(0.25, "GB-month (25 GB a month are in the free tier, not counted here)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_pitr": Price(0.20, "GB-month of point-in-time recovery",
                           "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "logs_ingestion": Price(0.50, "GB ingested (standard)", "https://aws.amazon.com/cloudwatch/pricing/"),
    "logs_storage": Price(0.03, "GB-month archived (compressed)", "https://aws.amazon.com/cloudwatch/pricing/"),
    "logs_insights": Price(0.005, "GB scanned by Logs Insights", "https://aws.amazon.com/cloudwatch/pricing/"),
    "custom_metric": Price(0.30, "metric-month, prorated by the hour", "https://aws.amazon.com/cloudwatch/pricing/"),
    "alarm": Price(0.10, "standard-resolution alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "composite_alarm": Price(0.50, "composite alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "dashboard": Price(3.00, "dashboard-month (3 free per account)", "https://aws.amazon.com/cloudwatch/pricing/"),
    "secret": Price(0.40, "secret-month", "https://aws.amazon.com/secrets-manager/pricing/"),
    "secret_call": Price(0.05 / 1e4, "GetSecretValue call", "https://aws.amazon.com/secrets-manager/pricing/"),
    "sqs_request": Price(0.40 / 1e6, "request (standard queue)", "https://aws.amazon.com/sqs/pricing/"),
    "scheduler_invocation": Price(1.00 / 1e6, "EventBridge Scheduler invocation",
                                  "https://aws.amazon.com/eventbridge/pricing/"),
    "eventbridge_event": Price(1.00 / 1e6, "custom event published (64 KB chunk)",
                               "https://aws.amazon.com/eventbridge/pricing/"),
    "sns_publish": Price(0.50 / 1e6, "SNS publish request", "https://aws.amazon.com/sns/pricing/"),
    "sns_email": Price(2.00 / 1e5, "e-mail notification", "https://aws.amazon.com/sns/pricing/"),
    "sns_sms_us": Price(0.00581, "SMS to a US number (plus carrier fee ~$0.003)",
                        "https://aws.amazon.com/sns/sms-pricing/"),
}
