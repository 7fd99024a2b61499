"""Enhanced fan-out in real streaming queries: a local Spark session reading with SubscribeToShard.

Against LocalStack itself (whose fan-out polls its own GetRecords, about 3 s
between empty polls) and through the AWS-faithful proxy (`fan_out_endpoint`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from test_streaming import (
    DEADLINE_S,
    BatchLog,
    _open_shards,
    _wait_active,
    drain,
    messages,
    put,
    run,
    source,
)

from tests.waiting import wait_until

pytestmark = pytest.mark.unit

AWS_DIALECT = {"kinesis.consumerType": "SubscribeToShard", "kinesis.consumerName": "reader"}
DATABRICKS_DIALECT = {"consumerMode": "efo", "consumerName": "reader"}


def consumers_of(kinesis_client, stream: str) -> dict[str, str]:
    arn = kinesis_client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    listed = kinesis_client.list_stream_consumers(StreamARN=arn)["Consumers"]
    return {consumer["ConsumerName"]: consumer["ConsumerStatus"] for consumer in listed}


@pytest.mark.parametrize("dialect", [AWS_DIALECT, DATABRICKS_DIALECT], ids=["aws", "databricks"])
def test_either_peers_options_read_every_record_once_with_fan_out(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path, dialect
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 100))
    frame = source(spark, kinesis_endpoint, stream, startingPosition="TRIM_HORIZON", **dialect)
    assert drain(frame, tmp_path).numbers == list(range(100))
    # Registered at the query's start, left registered (requireConsumerDeregistration: false).
    assert consumers_of(kinesis_client, stream) == {"reader": "ACTIVE"}


def test_a_running_query_with_the_default_trigger_reads_every_record_once(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    log = BatchLog()
    frame = source(spark, kinesis_endpoint, stream, startingPosition="LATEST", **DATABRICKS_DIALECT)
    query = run(frame, log, tmp_path, processingTime="500 milliseconds")
    try:
        wait_until(lambda: bool(query.recentProgress), "the first trigger", deadline_s=DEADLINE_S)
        for first in range(0, 60, 10):
            put(kinesis_client, stream, messages(first, 10))
            wait_until(
                lambda first=first: len(log.numbers) >= first + 10,
                f"records up to {first + 10}",
                deadline_s=DEADLINE_S,
            )
    finally:
        query.stop()
    assert log.numbers == list(range(60))
    assert len(log.batches) >= 6


def test_a_replayed_batch_returns_the_very_same_records(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 40))
    frame = source(
        spark,
        kinesis_endpoint,
        stream,
        startingPosition="TRIM_HORIZON",
        maxRecordsPerTrigger="10",
        metadataPath=str(tmp_path / "ends"),
        **AWS_DIALECT,
    )
    checkpoint = tmp_path / "checkpoint"
    first = drain(frame, checkpoint)
    last_batch = max(first.batches)
    (checkpoint / "commits" / str(last_batch)).unlink()
    (checkpoint / "commits" / f".{last_batch}.crc").unlink(missing_ok=True)
    put(kinesis_client, stream, messages(40, 10))  # must not leak into the replay
    second = drain(frame, checkpoint)
    assert second.batches[last_batch] == first.batches[last_batch]
    assert sorted(first.numbers + second.numbers) == sorted(
        list(range(50)) + [row["n"] for row in first.batches[last_batch]]
    )


def test_deregistration_only_when_asked(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(1)
    put(kinesis_client, stream, messages(0, 5))
    options = {"startingPosition": "TRIM_HORIZON", **DATABRICKS_DIALECT}
    frame = source(spark, kinesis_endpoint, stream, requireConsumerDeregistration="true", **options)
    assert drain(frame, tmp_path / "asked").numbers == list(range(5))
    # Deregistered when the query stopped: DELETING, then gone.
    assert consumers_of(kinesis_client, stream).get("reader") in (None, "DELETING")
