"""The driver's plans, batch after batch, with the reader's own methods (no Spark needed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.credentials import RefreshableCredentials
from kinesis_proxy import Behaviours
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows
from pyspark_kinesis.client import KinesisSourceError, make_client
from pyspark_kinesis.planning import DEFAULT_MAX_RECORDS_PER_SHARD
from pyspark_kinesis.positions import TRIM_HORIZON
from pyspark_kinesis.shards import (
    Progress,
    ShardProgress,
    Take,
    by_stream,
    progress_to_offset,
    streams_from_offset,
)
from pyspark_kinesis.stream_reader import KinesisStreamReader
from test_reading import SHARD_0, options_for, shard_ids

from testkit.streams import wait_active

pytestmark = pytest.mark.unit

DEADLINE_S = 60.0


def fill_every_shard(
    kinesis_client: Any, stream: str, per_shard: int, only: list[str] | None = None
) -> None:
    """Puts `per_shard` records on every shard of `stream` (or on the shards `only` names)."""
    for shard in kinesis_client.list_shards(StreamName=stream)["Shards"]:
        if only is not None and shard["ShardId"] not in only:
            continue
        key = shard["HashKeyRange"]["StartingHashKey"]
        entries = [
            {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": key} for _ in range(per_shard)
        ]
        assert (
            kinesis_client.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0
        )


def reader_noting_in(
    folder: Path | str, endpoint: str, stream: str, **overrides: Any
) -> KinesisStreamReader:
    """A reader of `stream` from TRIM_HORIZON, its tasks noting batch ends in `folder`
    (a directory, or an s3:// prefix)."""
    options = options_for(
        endpoint, stream, starting_position=TRIM_HORIZON, metadata_path=str(folder), **overrides
    )
    return KinesisStreamReader(options)


def shards_of(offset: dict[str, Any], stream: str) -> Progress:
    """What an offset of a query reading `stream` alone says of its shards."""
    return by_stream(streams_from_offset(offset, (stream,)), stream)


def plan(
    reader: KinesisStreamReader, start: dict[str, Any], limit: ReadLimit | None = None
) -> dict[str, Any]:
    """The next batch's end offset, once the driver plans one."""
    deadline = time.monotonic() + DEADLINE_S
    while (end := reader.latestOffset(start, limit or ReadAllAvailable())) == start:
        assert time.monotonic() < deadline, "no batch planned"
        time.sleep(0.1)
    return end


def run_batch(
    reader: KinesisStreamReader, start: dict[str, Any], end: dict[str, Any]
) -> list[bytes]:
    """What Spark's tasks would do with the batch (start, end): the payloads they read."""
    return [
        payload
        for partition in reader.partitions(start, end)
        for batch in reader.read(partition)
        for payload in batch.column("data").to_pylist()
    ]


def test_a_budget_smaller_than_the_shard_count_reaches_every_shard_in_turn(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(4)
    first, *others = shard_ids(kinesis_client, stream)
    # Which shards have records changes from batch to batch (as when some shards' records
    # are not yet 2 s old at the first plan): the turn must still reach every shard.
    fill_every_shard(kinesis_client, stream, 3, only=[first])
    reader = reader_noting_in(tmp_path, kinesis_endpoint, stream)
    start = reader.initialOffset()
    read: list[str] = []
    for batch in range(4):
        end = plan(reader, start, ReadMaxRows(1))
        read += [
            shard_id
            for shard_id, state in shards_of(end, stream).items()
            if state.take is not None and state.take.limit
        ]
        run_batch(reader, start, end)
        start = end
        if batch == 0:
            fill_every_shard(kinesis_client, stream, 3, only=others)
    assert read == [first, *others]


def test_a_batch_without_limits_takes_at_most_the_default_cap_per_shard(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(1)
    fill_every_shard(kinesis_client, stream, 1)
    reader = reader_noting_in(tmp_path, kinesis_endpoint, stream)
    end = plan(reader, reader.initialOffset())
    (state,) = shards_of(end, stream).values()
    assert state.take is not None
    assert state.take.limit == DEFAULT_MAX_RECORDS_PER_SHARD


def test_committing_a_batch_removes_the_notes_of_the_batch_before(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, notes_path: str
) -> None:
    stream = stream_factory(1)
    reader = reader_noting_in(notes_path, kinesis_endpoint, stream)
    ends = []
    start = reader.initialOffset()
    for _ in range(3):
        fill_every_shard(kinesis_client, stream, 2)
        end = plan(reader, start)
        run_batch(reader, start, end)
        reader.commit(end)
        ends.append(end)
        start = end

    def noted(offset: dict[str, Any]) -> bool:
        ((shard_id, state),) = shards_of(offset, stream).items()
        assert state.take is not None
        return reader.ends_by_stream[stream].get(shard_id, state.position, state.take) is not None

    assert [noted(end) for end in ends] == [False, False, True]


def shown(kinesis_proxy: Any, stream: str, count: int) -> None:
    """Returns once `count` records show through the proxy."""
    client = boto3.client("kinesis", endpoint_url=kinesis_proxy.url, region_name="us-east-1")
    deadline = time.monotonic() + DEADLINE_S
    while True:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=SHARD_0, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        if len(client.get_records(ShardIterator=iterator)["Records"]) >= count:
            return
        assert time.monotonic() < deadline, f"{count} records never showed"
        time.sleep(0.1)


def test_without_notes_a_record_shown_late_is_still_read_once(
    kinesis_proxy: Any, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(1)
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # no note can be written: the driver re-reads each batch
    options = options_for(
        kinesis_proxy.url, stream, starting_position=TRIM_HORIZON, metadata_path=str(blocked)
    )
    reader = KinesisStreamReader(options)
    kinesis_proxy.behaviours = Behaviours(visibility_delay_s=1.8)
    kinesis_client.put_record(StreamName=stream, Data=b"early", PartitionKey="k")
    shown(kinesis_proxy, stream, 1)
    start = reader.initialOffset()
    end = plan(reader, start)
    read = run_batch(reader, start, end)
    kinesis_client.put_record(StreamName=stream, Data=b"late", PartitionKey="k")
    shown(kinesis_proxy, stream, 2)
    # Shown 1.8 s after it arrives: a task reading at once misses it, a re-read later sees it.
    kinesis_client.put_record(StreamName=stream, Data=b"later", PartitionKey="k")
    # Only new batches run (`plan` waits for one), however the 2 s margin falls: "later"
    # may share a batch with "late" or get its own, but each record is read once.
    while len(read) < 3:
        start, end = end, plan(reader, end)
        read += run_batch(reader, start, end)
    assert read == [b"early", b"late", b"later"]


def test_a_busy_shard_is_read_once_per_batch_by_its_task(
    kinesis_proxy: Any, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(1)
    reader = reader_noting_in(tmp_path, kinesis_proxy.url, stream)
    fill_every_shard(kinesis_client, stream, 3)
    start = reader.initialOffset()
    end = plan(reader, start)
    fill_every_shard(kinesis_client, stream, 2)  # arrive after the batch was planned
    assert len(run_batch(reader, start, end)) == 3
    reads_so_far = kinesis_proxy.events["calls:GetRecords"]
    # The task stopped before the later records and noted when the first arrived:
    # planning the next batch needs no look at the shard.
    start, end = end, plan(reader, end)
    assert kinesis_proxy.events["calls:GetRecords"] == reads_so_far
    assert len(run_batch(reader, start, end)) == 2


def test_planning_lists_the_shards_at_most_once_per_listing_interval(
    kinesis_proxy: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(2)

    def listings_by_three_triggers(interval_s: float) -> int:
        options = options_for(
            kinesis_proxy.url,
            stream,
            starting_position=TRIM_HORIZON,
            metadata_path=str(tmp_path),
            shard_listing_interval_s=interval_s,
        )
        reader = KinesisStreamReader(options)
        start = reader.initialOffset()
        listed_before = kinesis_proxy.events["calls:ListShards"]
        for _ in range(3):
            assert reader.latestOffset(start, ReadAllAvailable()) == start  # nothing to read
        return kinesis_proxy.events["calls:ListShards"] - listed_before

    assert listings_by_three_triggers(interval_s=60.0) == 0
    assert listings_by_three_triggers(interval_s=0.0) == 3


def test_a_reshard_is_planned_once_the_listing_interval_has_passed(
    kinesis_client: Any, stream_factory: Any, tmp_path: Path, kinesis_endpoint: str
) -> None:
    stream = stream_factory(1)
    options = options_for(
        kinesis_endpoint,
        stream,
        starting_position=TRIM_HORIZON,
        metadata_path=str(tmp_path),
        shard_listing_interval_s=0.5,
    )
    reader = KinesisStreamReader(options)
    start = reader.initialOffset()
    parent = shard_ids(kinesis_client, stream)[0]
    kinesis_client.split_shard(
        StreamName=stream, ShardToSplit=parent, NewStartingHashKey=str(2**127)
    )
    wait_active(kinesis_client, stream)
    children = set(shard_ids(kinesis_client, stream)) - {parent}
    assert len(children) == 2
    deadline = time.monotonic() + DEADLINE_S
    while not children <= set(shards_of(start, stream)):
        assert time.monotonic() < deadline, "the children were never planned"
        start = reader.latestOffset(start, ReadAllAvailable())
        time.sleep(0.1)


def test_of_two_attempts_racing_on_one_note_the_first_to_note_wins_and_the_other_fails(
    kinesis_proxy: Any,
    kinesis_client: Any,
    stream_factory: Any,
    notes_path: str,
    kinesis_endpoint: str,
) -> None:
    stream = stream_factory(1)
    # Kinesis through the proxy, S3 (when the notes are there) straight to LocalStack.
    s3_endpoint = {"s3_endpoint_url": kinesis_endpoint} if notes_path.startswith("s3://") else {}
    reader = reader_noting_in(notes_path, kinesis_proxy.url, stream, **s3_endpoint)
    kinesis_proxy.behaviours = Behaviours(visibility_delay_s=4.0)
    kinesis_client.put_record(StreamName=stream, Data=b"first", PartitionKey="k")
    shown(kinesis_proxy, stream, 1)
    kinesis_client.put_record(StreamName=stream, Data=b"second", PartitionKey="k")
    # One batch, taking both records; two attempts of its task, as Spark may run
    # (a speculative copy, or a retry while a lost executor still runs the first).
    take = Take(until_s=time.time(), limit=10)
    (batch,) = reader.partitions(
        {}, progress_to_offset({SHARD_0: ShardProgress(TRIM_HORIZON, take=take)})
    )

    def payloads(attempt: Any) -> list[bytes]:
        return [payload for chunk in attempt for payload in chunk.column("data").to_pylist()]

    slow = reader.read(batch)
    # The slow attempt reads before "second" shows, finds no note and stops at "first"
    # (a generator paused after its records, before it notes its end).
    assert payloads([next(slow)]) == [b"first"]
    shown(kinesis_proxy, stream, 2)
    assert payloads(reader.read(batch)) == [b"first", b"second"]  # notes its end first
    with pytest.raises(KinesisSourceError, match="another attempt of this task read shard"):
        next(slow)
    # Spark keeps the winner's output; the loser's retry reads exactly to the note.
    assert payloads(reader.read(batch)) == [b"first", b"second"]


def test_an_assumed_role_is_one_client_per_process_with_credentials_that_refresh(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(1)
    role = {"role_arn": "arn:aws:iam::000000000000:role/reader"}
    # LocalStack's STS answers AssumeRole with temporary keys and an expiry, as AWS does.
    reader = reader_noting_in(
        tmp_path, kinesis_endpoint, stream, sts_endpoint_url=kinesis_endpoint, **role
    )
    start = reader.initialOffset()
    clients = []
    for _ in range(3):
        fill_every_shard(kinesis_client, stream, 2)
        end = plan(reader, start)
        assert len(run_batch(reader, start, end)) == 2  # the task's read: make_client inside
        clients.append(make_client(reader.options))
        start = end
    assert all(client is clients[0] for client in clients)
    credentials = clients[0]._request_signer._credentials
    assert isinstance(credentials, RefreshableCredentials)
    assert credentials.method == "assume-role"
    assert credentials.get_frozen_credentials().access_key != "test"  # the role's, from STS
    # botocore has no public getter for the expiry it refreshes before.
    expiry = credentials._expiry_time
    assert expiry is not None and expiry.timestamp() > time.time()
    assert not credentials.refresh_needed()
