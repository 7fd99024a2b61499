"""Planning and reading one shard, against a real LocalStack Kinesis."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pyspark_kinesis.client import KinesisSourceError, call, make_client
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, after
from pyspark_kinesis.reading import plan_shard, read_range

pytestmark = pytest.mark.unit

REGION = "us-east-1"
SHARD_0 = "shardId-000000000000"
RESHARD_DEADLINE_S = 60.0


def options_for(endpoint: str, stream: str, **overrides: Any) -> KinesisOptions:
    return KinesisOptions(
        stream_name=stream,
        region=REGION,
        endpoint_url=endpoint,
        access_key_id="test",
        secret_access_key="test",
        **overrides,
    )


def put(kinesis_client: Any, stream: str, count: int, first: int = 0) -> list[str]:
    """Puts `count` records on one shard; returns their sequence numbers in order."""
    return [
        kinesis_client.put_record(StreamName=stream, Data=str(n).encode(), PartitionKey="k")[
            "SequenceNumber"
        ]
        for n in range(first, first + count)
    ]


def wait_until_active(kinesis_client: Any, stream: str) -> None:
    deadline = time.monotonic() + RESHARD_DEADLINE_S
    while time.monotonic() < deadline:
        summary = kinesis_client.describe_stream_summary(StreamName=stream)
        if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise AssertionError(f"{stream} not ACTIVE again within {RESHARD_DEADLINE_S}s")


def shard_ids(kinesis_client: Any, stream: str) -> list[str]:
    return [shard["ShardId"] for shard in kinesis_client.list_shards(StreamName=stream)["Shards"]]


@pytest.fixture
def stream(stream_factory: Any) -> str:
    return str(stream_factory(1))


@pytest.fixture
def options(kinesis_endpoint: str, stream: str) -> KinesisOptions:
    return options_for(kinesis_endpoint, stream)


@pytest.fixture
def client(options: KinesisOptions) -> Any:
    return make_client(options)


def test_plan_of_an_empty_shard_returns_quickly_with_nothing(
    client: Any, options: KinesisOptions
) -> None:
    started = time.monotonic()
    plan = plan_shard(client, options, SHARD_0, TRIM_HORIZON, None)
    assert (plan.last_sequence_number, plan.records, plan.ended) == (None, 0, False)
    assert time.monotonic() - started < options.max_fetch_duration_s / 2


def test_plan_stops_at_the_budget(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 10)
    plan = plan_shard(client, options, SHARD_0, TRIM_HORIZON, 4)
    assert (plan.records, plan.last_sequence_number) == (4, sequence_numbers[3])


def test_plan_budget_spans_several_fetches(
    kinesis_endpoint: str, kinesis_client: Any, stream: str
) -> None:
    options = options_for(kinesis_endpoint, stream, max_records_per_fetch=3)
    sequence_numbers = put(kinesis_client, stream, 10)
    plan = plan_shard(make_client(options), options, SHARD_0, TRIM_HORIZON, 7)
    assert (plan.records, plan.last_sequence_number) == (7, sequence_numbers[6])


def test_plan_without_budget_takes_everything(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 5)
    plan = plan_shard(client, options, SHARD_0, TRIM_HORIZON, None)
    assert (plan.records, plan.last_sequence_number) == (5, sequence_numbers[-1])


def test_plan_continues_after_the_previous_end(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 6)
    plan = plan_shard(client, options, SHARD_0, after(sequence_numbers[1]), 3)
    assert (plan.records, plan.last_sequence_number) == (3, sequence_numbers[4])


def test_plan_with_a_cutoff_before_all_arrivals_takes_nothing(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    cutoff_s = time.time() - 5
    put(kinesis_client, stream, 3)
    plan = plan_shard(client, options, SHARD_0, TRIM_HORIZON, None, cutoff_s=cutoff_s)
    assert (plan.records, plan.last_sequence_number) == (0, None)


def test_plan_with_a_cutoff_after_all_arrivals_takes_everything(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 3)
    plan = plan_shard(client, options, SHARD_0, TRIM_HORIZON, None, cutoff_s=time.time() + 5)
    assert (plan.records, plan.last_sequence_number) == (3, sequence_numbers[-1])


def test_read_range_returns_exactly_the_planned_records(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 8)
    plan = plan_shard(client, options, SHARD_0, TRIM_HORIZON, 5)
    assert plan.last_sequence_number is not None
    put(kinesis_client, stream, 4, first=8)
    batches = read_range(client, options, SHARD_0, TRIM_HORIZON, plan.last_sequence_number)
    assert [record["Data"] for batch in batches for record in batch] == [
        str(n).encode() for n in range(5)
    ]


def test_read_range_stops_at_a_fetch_boundary(
    kinesis_endpoint: str, kinesis_client: Any, stream: str
) -> None:
    options = options_for(kinesis_endpoint, stream, max_records_per_fetch=2)
    sequence_numbers = put(kinesis_client, stream, 6)
    batches = list(
        read_range(make_client(options), options, SHARD_0, TRIM_HORIZON, sequence_numbers[3])
    )
    assert [record["SequenceNumber"] for batch in batches for record in batch] == sequence_numbers[
        :4
    ]


def test_consecutive_ranges_neither_overlap_nor_skip(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 7)
    first = read_range(client, options, SHARD_0, TRIM_HORIZON, sequence_numbers[2])
    second = read_range(client, options, SHARD_0, after(sequence_numbers[2]), sequence_numbers[6])
    read = [
        record["SequenceNumber"] for batches in (first, second) for b in batches for record in b
    ]
    assert read == sequence_numbers


def test_split_parent_is_ended_once_drained(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 3)
    kinesis_client.split_shard(
        StreamName=stream, ShardToSplit=SHARD_0, NewStartingHashKey=str(2**127)
    )
    wait_until_active(kinesis_client, stream)
    plan = plan_shard(client, options, SHARD_0, TRIM_HORIZON, None)
    assert (plan.records, plan.ended) == (3, True)


def test_merged_parents_are_ended_once_drained(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    stream = stream_factory(2)
    options = options_for(kinesis_endpoint, stream)
    first, second = sorted(shard_ids(kinesis_client, stream))
    kinesis_client.merge_shards(StreamName=stream, ShardToMerge=first, AdjacentShardToMerge=second)
    wait_until_active(kinesis_client, stream)
    client = make_client(options)
    plans = [
        plan_shard(client, options, shard_id, TRIM_HORIZON, None) for shard_id in (first, second)
    ]
    assert [plan.ended for plan in plans] == [True, True]


def test_missing_stream_error_names_stream_and_region(kinesis_endpoint: str) -> None:
    options = options_for(kinesis_endpoint, "no-such-stream")
    client = make_client(options)
    with pytest.raises(KinesisSourceError, match=r"'no-such-stream'.*'us-east-1'"):
        call(options, client.list_shards, StreamName=options.stream_name)


def test_unreachable_endpoint_error_names_the_endpoint() -> None:
    options = options_for("http://127.0.0.1:9", "events")
    client = make_client(options)
    with pytest.raises(KinesisSourceError, match=r"http://127\.0\.0\.1:9"):
        call(options, client.list_shards, StreamName=options.stream_name)
