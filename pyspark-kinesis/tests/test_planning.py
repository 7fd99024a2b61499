"""The driver's plans, batch after batch, with the reader's own methods (no Spark needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows
from pyspark_kinesis.positions import TRIM_HORIZON
from pyspark_kinesis.shards import progress_from_offset
from pyspark_kinesis.source import DEFAULT_MAX_RECORDS_PER_SHARD, KinesisStreamReader
from test_reading import options_for, shard_ids

pytestmark = pytest.mark.unit


def fill_every_shard(kinesis_client: Any, stream: str, per_shard: int) -> None:
    for shard in kinesis_client.list_shards(StreamName=stream)["Shards"]:
        key = shard["HashKeyRange"]["StartingHashKey"]
        entries = [
            {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": key} for _ in range(per_shard)
        ]
        assert (
            kinesis_client.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0
        )


def run_batch(reader: KinesisStreamReader, start: dict[str, Any], end: dict[str, Any]) -> None:
    """What Spark's tasks would do with the batch (start, end)."""
    for partition in reader.partitions(start, end):
        list(reader.read(partition))


def test_a_budget_smaller_than_the_shard_count_reaches_every_shard_in_turn(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(4)
    fill_every_shard(kinesis_client, stream, 3)
    options = options_for(
        kinesis_endpoint, stream, starting_position=TRIM_HORIZON, metadata_path=str(tmp_path)
    )
    reader = KinesisStreamReader(options)
    start = reader.initialOffset()
    read: list[str] = []
    for _ in range(4):
        end = reader.latestOffset(start, ReadMaxRows(1))
        read += [
            shard_id
            for shard_id, state in progress_from_offset(end).items()
            if state.take is not None and state.take.limit
        ]
        run_batch(reader, start, end)
        start = end
    assert sorted(read) == sorted(shard_ids(kinesis_client, stream))


def test_a_batch_without_limits_takes_at_most_the_default_cap_per_shard(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(1)
    fill_every_shard(kinesis_client, stream, 1)
    options = options_for(
        kinesis_endpoint, stream, starting_position=TRIM_HORIZON, metadata_path=str(tmp_path)
    )
    reader = KinesisStreamReader(options)
    end = reader.latestOffset(reader.initialOffset(), ReadAllAvailable())
    (state,) = progress_from_offset(end).values()
    assert state.take is not None
    assert state.take.limit == DEFAULT_MAX_RECORDS_PER_SHARD


def test_committing_a_batch_removes_the_notes_of_the_batch_before(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(1)
    options = options_for(
        kinesis_endpoint, stream, starting_position=TRIM_HORIZON, metadata_path=str(tmp_path)
    )
    reader = KinesisStreamReader(options)
    ends = []
    start = reader.initialOffset()
    for _ in range(3):
        fill_every_shard(kinesis_client, stream, 2)
        end = reader.latestOffset(start, ReadAllAvailable())
        run_batch(reader, start, end)
        reader.commit(end)
        ends.append(end)
        start = end

    def noted(offset: dict[str, Any]) -> bool:
        ((shard_id, state),) = progress_from_offset(offset).items()
        assert state.take is not None
        return reader.ends.get(shard_id, state.position, state.take) is not None

    assert [noted(end) for end in ends] == [False, False, True]
