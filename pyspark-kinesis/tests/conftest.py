"""A real local Spark session, shared by the source's Spark tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kinesis_proxy import Behaviours, running_proxy
from pyspark.sql import SparkSession

from testkit.streams import read_stream

# Every behaviour of the AWS-faithful proxy on, at rates a test of a few hundred records
# meets: AWS's read, write and control-plane limits, empty pages while records wait,
# iterators that expire within a test (AWS: 5 minutes), records visible only a while after
# their arrival time, KMS throttling, 500 and 503 answers, and dropped connections.
EVERY_BEHAVIOUR = Behaviours.aws(
    iterator_lifetime_s=3.0,
    empty_pages_first=2,
    empty_page_probability=0.1,
    visibility_delay_s=0.5,
    kms_throttling_probability=0.03,
    server_error_probability=0.03,
    unavailable_probability=0.03,
    dropped_connection_probability=0.03,
)


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
        return [(read.shard_id, read.record) for read in read_stream(kinesis_client, stream)]

    return read


@pytest.fixture(params=["directory", "s3"])
def notes_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where batch ends are noted: a local directory, or a prefix in a fresh LocalStack bucket."""
    if request.param == "directory":
        return str(tmp_path / "ends")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/checkpoints/kinesis-ends"


@pytest.fixture(params=["localstack", "aws-faithful"])
def read_endpoint(request: pytest.FixtureRequest, kinesis_endpoint: str) -> Iterator[str]:
    """Where a query reads: LocalStack itself, or the AWS-faithful proxy in front of it with
    EVERY_BEHAVIOUR on. Records are put straight into LocalStack either way."""
    if request.param == "localstack":
        yield kinesis_endpoint
        return
    with running_proxy(kinesis_endpoint, EVERY_BEHAVIOUR) as proxy:
        yield proxy.url
        # The query did read through the proxy, and met AWS's ways on the way.
        assert proxy.events["records_read"] > 0
        assert proxy.events["empty_pages"] > 0
