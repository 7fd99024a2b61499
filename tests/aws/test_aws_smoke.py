"""Opt-in smoke test against real AWS Kinesis: `make aws-smoke`.

It needs credentials from the default chain and an existing stream named by
AWS_SMOKE_STREAM (it never creates one); without them every test here is
skipped, and the skip reason says what to set. It writes ten events and reads
back exactly those, starting at the time it began, so other traffic on the
stream does not matter.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import BotoCoreError, NoCredentialsError

pytestmark = pytest.mark.aws


def _credentials_present() -> bool:
    try:
        return boto3.session.Session().get_credentials() is not None
    except BotoCoreError:
        return False


STREAM = os.environ.get("AWS_SMOKE_STREAM", "")
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

if not STREAM or not _credentials_present():
    pytest.skip(
        "AWS smoke test skipped: set AWS_SMOKE_STREAM to an existing stream and provide "
        "credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
        allow_module_level=True,
    )


def test_events_written_to_real_kinesis_are_read_back_exactly(spark, tmp_path: Path):
    try:
        identity = boto3.client("sts", region_name=REGION).get_caller_identity()["Arn"]
    except NoCredentialsError:
        pytest.fail("credentials vanished between collection and the test")
    print(f"running as {identity} against {STREAM} in {REGION}")
    started = time.time()
    ids = [uuid.uuid4().hex for _ in range(10)]
    client = boto3.client("kinesis", region_name=REGION)
    records = [
        {
            "Data": json.dumps({"event_id": i, "message_type": "smoke", "count": 1}),
            "PartitionKey": i,
        }
        for i in ids
    ]
    assert client.put_records(StreamName=STREAM, Records=records)["FailedRecordCount"] == 0

    frame = (
        spark.readStream.format("kinesis")
        .option("streamName", STREAM)
        .option("region", REGION)
        .option("startingPosition", f"AT_TIMESTAMP:{started - 1}")
        .load()
        .selectExpr("get_json_object(CAST(data AS STRING), '$.event_id') AS event_id")
    )
    query = (
        frame.writeStream.format("memory")
        .queryName("smoke")
        .option("checkpointLocation", str(tmp_path))
        .trigger(availableNow=True)
        .start()
    )
    assert query.awaitTermination(300)
    seen = {row.event_id for row in spark.table("smoke").collect()}
    assert set(ids) <= seen
