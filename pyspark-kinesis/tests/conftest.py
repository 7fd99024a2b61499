"""A real local Spark session, shared by the source's Spark tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[2]")
        .appName("pyspark-kinesis-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture
def stream_contents(kinesis_client):  # type: ignore[no-untyped-def]
    """Reads every Kinesis record a stream holds now, all shards, as (shard, record) pairs."""

    def read(stream: str) -> list[tuple[str, dict[str, Any]]]:
        found: list[tuple[str, dict[str, Any]]] = []
        for shard in kinesis_client.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis_client.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                answer = kinesis_client.get_records(ShardIterator=iterator, Limit=10_000)
                found.extend((shard["ShardId"], record) for record in answer["Records"])
                if answer.get("MillisBehindLatest", 0) == 0 and not answer["Records"]:
                    break
                iterator = answer.get("NextShardIterator")
        return found

    return read


@pytest.fixture(params=["directory", "s3"])
def notes_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where batch ends are noted: a local directory, or a prefix in a fresh LocalStack bucket."""
    if request.param == "directory":
        return str(tmp_path / "ends")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/checkpoints/kinesis-ends"
