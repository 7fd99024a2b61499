"""Limits count rows (user records after KPL de-aggregation), cutting aggregates with exact replay.

Against a real LocalStack Kinesis: aggregates are put as the KPL writes them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from pyspark_kinesis.client import make_client
from pyspark_kinesis.ends import ShardEnd
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after, parse_position
from pyspark_kinesis.reading import ROWS, TakeRead, peek_shard, read_range
from pyspark_kinesis.shards import Take

pytestmark = pytest.mark.unit

SHARD_0 = "shardId-000000000000"


def put_aggregate(kinesis_client: Any, stream: str, rows: list[bytes]) -> str:
    """Puts one KPL aggregate of `rows`; returns its sequence number."""
    aggregator = RecordAggregator()
    for data in rows:
        aggregator.add_user_record("k", data)
    partition_key, _, data = aggregator.clear_and_get().get_contents()
    answer = kinesis_client.put_record(StreamName=stream, Data=data, PartitionKey=partition_key)
    return str(answer["SequenceNumber"])


def put_plain(kinesis_client: Any, stream: str, data: bytes) -> str:
    answer = kinesis_client.put_record(StreamName=stream, Data=data, PartitionKey="k")
    return str(answer["SequenceNumber"])


def take(
    client: Any, options: KinesisOptions, start: Position, limit: int | None, until_s: float
) -> tuple[list[bytes], ShardEnd]:
    reader = TakeRead(client, options, SHARD_0, start, Take(until_s, limit))
    rows = [row.data for records in reader for record in records for row in record[ROWS]]
    assert reader.end is not None
    return rows, reader.end


@pytest.fixture
def stream(stream_factory: Any) -> str:
    return str(stream_factory(1))


@pytest.fixture
def options(kinesis_endpoint: str, stream: str) -> KinesisOptions:
    return KinesisOptions(stream_name=stream, region="us-east-1", endpoint_url=kinesis_endpoint)


@pytest.fixture
def client(options: KinesisOptions) -> Any:
    return make_client(options)


def test_a_limit_counts_rows_and_cuts_an_aggregate(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence = put_aggregate(kinesis_client, stream, [b"a", b"b", b"c", b"d", b"e"])
    rows, end = take(client, options, TRIM_HORIZON, 3, time.time() + 60)
    assert (rows, end) == ([b"a", b"b", b"c"], ShardEnd(after(sequence, 2), False, 3))


def test_the_next_batch_starts_inside_the_aggregate(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence = put_aggregate(kinesis_client, stream, [b"a", b"b", b"c", b"d", b"e"])
    plain = put_plain(kinesis_client, stream, b"f")
    until_s = time.time() + 60
    _, first_end = take(client, options, TRIM_HORIZON, 2, until_s)
    rows, end = take(client, options, first_end.position, None, until_s)
    assert (rows, end.position) == ([b"c", b"d", b"e", b"f"], after(plain))
    assert first_end.position == after(sequence, 1)


def test_a_peek_inside_an_aggregate_sees_its_rest(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence = put_aggregate(kinesis_client, stream, [b"a", b"b"])
    peek = peek_shard(client, options, SHARD_0, after(sequence, 0), until_s=time.time() + 60)
    assert peek.has_records


def test_replaying_a_cut_batch_reads_exactly_its_rows(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    first = put_aggregate(kinesis_client, stream, [b"a", b"b"])
    put_aggregate(kinesis_client, stream, [b"c", b"d", b"e"])
    rows, end = take(client, options, after(first, 0), 3, time.time() + 60)
    assert rows == [b"b", b"c", b"d"]
    last = end.position
    replayed = read_range(
        client,
        options,
        SHARD_0,
        after(first, 0),
        str(last.argument),
        last_sub_sequence_number=last.sub_sequence_number,
    )
    assert [row.data for records in replayed for record in records for row in record[ROWS]] == rows


def test_a_position_inside_an_aggregate_survives_its_text_form() -> None:
    position = after("49590338271490256608559692538361571095921575989136588898", 7)
    assert (
        str(position)
        == "AFTER_SEQUENCE_NUMBER:49590338271490256608559692538361571095921575989136588898/7"
    )
    assert parse_position(str(position)) == position


def test_a_position_inside_an_aggregate_reads_the_aggregate_again() -> None:
    assert after("42", 3).iterator_request() == {
        "ShardIteratorType": "AT_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "42",
    }
