"""Kinesis clients: one per worker process and identity, not one per batch."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pyspark_kinesis.client import make_client, read_call
from pyspark_kinesis.options import KinesisOptions

pytestmark = pytest.mark.unit

OPTIONS = KinesisOptions(
    stream_name="events",
    region="us-east-1",
    endpoint_url="http://127.0.0.1:4566",
    access_key_id="test",
    secret_access_key="test",
)


def test_the_same_identity_gets_the_same_client_whatever_the_stream() -> None:
    assert make_client(OPTIONS) is make_client(replace(OPTIONS, stream_name="orders"))


@pytest.mark.parametrize(
    "other",
    [
        replace(OPTIONS, region="eu-west-1"),
        replace(OPTIONS, endpoint_url="http://127.0.0.1:4567"),
        replace(OPTIONS, secret_access_key="other"),
        replace(OPTIONS, role_arn="arn:aws:iam::000000000000:role/reader"),
    ],
)
def test_another_identity_or_endpoint_gets_its_own_client(other: KinesisOptions) -> None:
    assert make_client(other) is not make_client(OPTIONS)


@pytest.mark.parametrize(
    ("code", "status"), [("InternalFailure", 500), ("ServiceUnavailable", 503)]
)
def test_a_read_answered_500_or_503_is_waited_out_like_throttling(code: str, status: int) -> None:
    # AWS documents both as retryable; an outage longer than botocore's few attempts must
    # slow the query down, not end it (as throttling does): a ListShards behind a
    # restarting LocalStack once ended the consumer's query.
    refusals = [
        ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "X")
        for _ in range(3)
    ]

    def operation(**request: Any) -> dict[str, Any]:
        if refusals:
            raise refusals.pop()
        return {"Shards": [], **request}

    answer = read_call(OPTIONS, "stream 'events'", operation, StreamName="events")
    assert answer == {"Shards": [], "StreamName": "events"}
