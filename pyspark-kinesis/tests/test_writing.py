"""PutRecords batching, KPL aggregation and the resend path, against real LocalStack Kinesis."""

from __future__ import annotations

import base64

import pytest
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from kinesis_proxy import Behaviours
from pyspark_kinesis.aggregation import AGGREGATE_MAX_BYTES, user_records
from pyspark_kinesis.client import make_client
from pyspark_kinesis.extra_options import SinkOptions
from pyspark_kinesis.writing import (
    Aggregator,
    RecordsNotWrittenError,
    RequestPacker,
    SinkRecord,
    StreamWriter,
    checked,
)

pytestmark = pytest.mark.unit


def records(count: int, size: int = 10, keys: int = 7) -> list[SinkRecord]:
    return [SinkRecord(f"{n:0{size}d}".encode(), f"key-{n % keys}") for n in range(count)]


def sink_options(endpoint: str, stream: str, **extra: str) -> SinkOptions:
    return SinkOptions.parse(
        {"streamName": stream, "endpointUrl": endpoint, "region": "us-east-1", **extra}
    )


def test_requests_close_at_the_record_limit() -> None:
    packer = RequestPacker(max_records=500, max_bytes=5 * 1024 * 1024)
    closed = [request for record in records(1201) if (request := packer.add(record))]
    assert [len(request) for request in closed] + [len(packer.flush())] == [500, 500, 201]


def test_requests_close_before_the_byte_limit() -> None:
    packer = RequestPacker(max_records=500, max_bytes=1000)
    big = [SinkRecord(b"x" * 295, "k-1234") for _ in range(7)]  # 301 bytes each
    closed = [request for record in big if (request := packer.add(record))]
    assert [len(request) for request in closed] + [len(packer.flush())] == [3, 3, 1]


def test_a_record_over_one_mebibyte_is_refused_with_its_size() -> None:
    with pytest.raises(RecordsNotWrittenError, match=r"1048577 bytes.*over Kinesis. 1 MiB"):
        checked(SinkRecord(b"x" * (1024 * 1024 - 2), "key"))


def aggregates_of(user: list[SinkRecord]) -> list[SinkRecord]:
    aggregator = Aggregator()
    built = [aggregate for record in user if (aggregate := aggregator.add(record))]
    last = aggregator.flush()
    return built + ([last] if last else [])


def test_aggregates_read_back_with_our_deaggregation() -> None:
    user = [*records(50), SinkRecord("\u00e9t\u00e9 \u20ac".encode(), "\u00e9t\u00e9")]
    (aggregate,) = aggregates_of(user)
    assert aggregate.user_records == 51
    back = list(user_records(aggregate.data, aggregate.partition_key))
    assert [(r.data, r.partition_key) for r in back] == [(r.data, r.partition_key) for r in user]


def test_aggregates_read_back_with_aws_kinesis_agg() -> None:
    user = [
        SinkRecord(b"a", "key-1", explicit_hash_key="12345"),
        SinkRecord(b"", "key-2", explicit_hash_key="12345"),
        SinkRecord(b"\xff\x00", "key-1", explicit_hash_key="999"),
    ]
    (aggregate,) = aggregates_of(user)
    boto3_record = {
        "Data": aggregate.data,
        "PartitionKey": aggregate.partition_key,
        "SequenceNumber": "1",
        "ApproximateArrivalTimestamp": 0.0,
    }
    back = list(iter_deaggregate_records(boto3_record, data_format="Boto3"))
    assert [
        (base64.b64decode(r["kinesis"]["data"]), r["kinesis"]["partitionKey"]) for r in back
    ] == [(r.data, r.partition_key) for r in user]
    assert [r["kinesis"].get("explicitHashKey") for r in back] == ["12345", "12345", "999"]
    assert aggregate.explicit_hash_key == "12345"


def test_aggregates_stay_under_the_kpl_size() -> None:
    built = aggregates_of(records(3000, size=100))
    assert len(built) > 1
    assert all(aggregate.size <= AGGREGATE_MAX_BYTES for aggregate in built)
    assert sum(aggregate.user_records for aggregate in built) == 3000


def test_every_record_is_written(kinesis_endpoint, stream_factory, stream_contents) -> None:
    stream = stream_factory(shards=2)
    options = sink_options(kinesis_endpoint, stream, maxRecordsPerRequest="100")
    summary = StreamWriter(make_client(options.connection), options).write(records(1234))
    assert (summary.user_records, summary.kinesis_records) == (1234, 1234)
    written = sorted(record["Data"] for _, record in stream_contents(stream))
    assert written == sorted(record.data for record in records(1234))


def test_one_keys_records_keep_their_order(kinesis_endpoint, stream_factory, stream_contents):
    stream = stream_factory(shards=2)
    options = sink_options(kinesis_endpoint, stream, maxRecordsPerRequest="10")
    StreamWriter(make_client(options.connection), options).write(records(700, keys=3))
    by_key: dict[str, list[bytes]] = {}
    for _, record in stream_contents(stream):
        by_key.setdefault(record["PartitionKey"], []).append(record["Data"])
    assert all(data == sorted(data) for data in by_key.values())


def test_refused_entries_are_resent_until_written(
    kinesis_proxy, stream_factory, stream_contents
) -> None:
    # A shard takes 300 records/s here (AWS: 1,000), so the write is refused in part.
    kinesis_proxy.behaviours = Behaviours(write_limits=True, writes_per_s=300)
    stream = stream_factory(shards=2)
    options = sink_options(kinesis_proxy.url, stream)
    summary = StreamWriter(make_client(options.connection), options).write(records(2000))
    assert kinesis_proxy.events["refused_writes"] > 0
    assert summary.resent == kinesis_proxy.events["refused_writes"]
    written = sorted(record["Data"] for _, record in stream_contents(stream))
    assert written == sorted(record.data for record in records(2000))


def test_records_still_refused_at_the_deadline_fail_the_write_with_their_count(
    kinesis_proxy, stream_factory
) -> None:
    stream = stream_factory(shards=1)
    kinesis_proxy.behaviours = Behaviours(write_limits=True, writes_per_s=0)
    options = sink_options(
        kinesis_proxy.url, stream, writeRetryDeadline="1s", maxRecordsPerRequest="100"
    )
    writer = StreamWriter(make_client(options.connection), options)
    with pytest.raises(RecordsNotWrittenError) as failure:
        writer.write(records(1000))
    message = str(failure.value)
    assert message.startswith("1000 of this task's 1000 records were not written")
    assert "ProvisionedThroughputExceededException" in message
    assert "writeRetryDeadline (1s)" in message


def test_aggregated_records_are_written_and_read_back(
    kinesis_endpoint, stream_factory, stream_contents
) -> None:
    stream = stream_factory(shards=2)
    options = sink_options(kinesis_endpoint, stream, aggregate="true")
    summary = StreamWriter(make_client(options.connection), options).write(records(5000))
    assert summary.user_records == 5000
    assert summary.kinesis_records < 100
    back = [
        user.data
        for _, record in stream_contents(stream)
        for user in user_records(record["Data"], record["PartitionKey"])
    ]
    assert sorted(back) == sorted(record.data for record in records(5000))
