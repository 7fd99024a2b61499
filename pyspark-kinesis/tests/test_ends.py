"""Batch-end notes in both stores, picked by the path's scheme: a directory, and LocalStack S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyspark_kinesis.ends import EndStore, ShardEnd, end_store
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after
from pyspark_kinesis.shards import Take

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
SHARD = "shardId-000000000000"
SEQUENCE_2 = "49650000000000000000000000000000000000000000000000000002"
SEQUENCE_17 = "49650000000000000000000000000000000000000000000000000017"
TAKE = Take(until_s=1_764_000_000.25, limit=10)
END = ShardEnd(after("49590000000000000000000000002"), ended=False, records=10)
OTHER_END = ShardEnd(after("49590000000000000000000000009"), ended=False, records=10)


@pytest.fixture
def endpoint(kinesis_endpoint: str) -> str:
    return kinesis_endpoint


def store(path: str, endpoint: str, stream: str = "events") -> EndStore:
    return end_store(
        KinesisOptions.parse(
            {
                "streamName": stream,
                "metadataPath": path,
                "endpointUrl": endpoint,
                "region": "us-east-1",
                "awsAccessKeyId": "test",
                "awsSecretKey": "test",
            }
        )
    )


def test_a_noted_end_is_found_by_the_same_shard_start_and_take(
    notes_path: str, endpoint: str
) -> None:
    store(notes_path, endpoint).put(SHARD, TRIM_HORIZON, TAKE, END)
    assert store(notes_path, endpoint).get(SHARD, TRIM_HORIZON, TAKE) == END


@pytest.mark.parametrize(
    ("shard_id", "start", "take", "stream"),
    [
        ("shardId-000000000001", TRIM_HORIZON, TAKE, "events"),
        (SHARD, after("1"), TAKE, "events"),
        (SHARD, TRIM_HORIZON, Take(TAKE.until_s, limit=11), "events"),
        (SHARD, TRIM_HORIZON, Take(TAKE.until_s + 0.001, limit=10), "events"),
        (SHARD, TRIM_HORIZON, TAKE, "orders"),
    ],
)
def test_another_batch_finds_no_end(
    notes_path: str, endpoint: str, shard_id: str, start: Position, take: Take, stream: str
) -> None:
    store(notes_path, endpoint).put(SHARD, TRIM_HORIZON, TAKE, END)
    assert store(notes_path, endpoint, stream).get(shard_id, start, take) is None


def test_the_first_noted_end_stands(notes_path: str, endpoint: str) -> None:
    assert store(notes_path, endpoint).put(SHARD, TRIM_HORIZON, TAKE, END) == END
    # A second attempt of the same task, which read to another end, loses the race.
    assert store(notes_path, endpoint).put(SHARD, TRIM_HORIZON, TAKE, OTHER_END) == END
    assert store(notes_path, endpoint).get(SHARD, TRIM_HORIZON, TAKE) == END


def test_a_removed_end_is_gone_and_others_stay(notes_path: str, endpoint: str) -> None:
    ends = store(notes_path, endpoint)
    ends.put(SHARD, TRIM_HORIZON, TAKE, END)
    ends.put(SHARD, after("1"), TAKE, END)
    ends.remove(SHARD, TRIM_HORIZON, TAKE)
    assert ends.get(SHARD, TRIM_HORIZON, TAKE) is None
    assert ends.get(SHARD, after("1"), TAKE) == END


def test_a_note_is_written_whole_with_no_partial_file_left(tmp_path: Path) -> None:
    ends = store(str(tmp_path), "http://127.0.0.1:1")
    ends.put(SHARD, TRIM_HORIZON, TAKE, END)
    ends.put(SHARD, TRIM_HORIZON, TAKE, OTHER_END)
    assert [path.name for path in tmp_path.rglob("*") if path.name.startswith(".")] == []


def test_an_unusable_directory_costs_the_note_not_the_batch(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    ends = store(str(blocked), "http://127.0.0.1:1")
    ends.put(SHARD, TRIM_HORIZON, TAKE, END)  # logs a warning, raises nothing
    assert ends.get(SHARD, TRIM_HORIZON, TAKE) is None


def test_a_missing_bucket_costs_the_note_not_the_batch(endpoint: str) -> None:
    ends = store("s3://no-such-bucket-for-notes/ends", endpoint)
    ends.put(SHARD, TRIM_HORIZON, TAKE, END)  # logs a warning, raises nothing
    assert ends.get(SHARD, TRIM_HORIZON, TAKE) is None


def test_s3_notes_are_objects_under_the_path_s_prefix(
    s3_bucket: str, s3_client: Any, endpoint: str
) -> None:
    store(f"s3://{s3_bucket}/checkpoints/kinesis-ends", endpoint).put(
        SHARD, TRIM_HORIZON, TAKE, END
    )
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)
    (key,) = [entry["Key"] for entry in listed["Contents"]]
    assert key.startswith(f"checkpoints/kinesis-ends/events/{SHARD}/")


def test_a_note_written_before_next_arrival_existed_still_loads() -> None:
    # The format of notes written by the previous release (no nextArrival, no millisBehindLatest).
    older = {"position": "AFTER_SEQUENCE_NUMBER:7", "ended": False, "records": 3, "nextRead": 2.5}
    assert ShardEnd.from_json(older) == ShardEnd(after("7"), ended=False, records=3)
    assert ShardEnd.from_json(older).next_arrival_s is None


def test_what_a_read_saw_after_its_end_survives_the_note() -> None:
    seen = ShardEnd(
        after("7"), False, 3, next_read_s=2.5, next_arrival_s=1.25, millis_behind_latest=40
    )
    again = ShardEnd.from_json(seen.to_json())
    assert (again.next_arrival_s, again.millis_behind_latest, again.next_read_s) == (1.25, 40, 2.5)


# The note's format: golden files written by the release that introduced them.
BUSY_SHARD_END = ShardEnd(
    after(SEQUENCE_17, 3),
    ended=False,
    records=5,
    next_read_s=1_704_067_200.5,
    next_arrival_s=1_704_067_200.75,
    millis_behind_latest=40,
)
CLOSED_SHARD_END = ShardEnd(after(SEQUENCE_2), ended=True, records=2, next_read_s=1_704_067_200.5)


def golden(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((GOLDEN / name).read_text())
    return document


@pytest.mark.parametrize(
    ("name", "end"),
    [("note-busy-shard.json", BUSY_SHARD_END), ("note-closed-shard.json", CLOSED_SHARD_END)],
)
def test_a_golden_note_loads_whole_and_is_written_the_same(name: str, end: ShardEnd) -> None:
    loaded = ShardEnd.from_json(golden(name))
    # Every field, also those ShardEnd's equality leaves out (what the reader saw).
    seen = (loaded.next_read_s, loaded.next_arrival_s, loaded.millis_behind_latest)
    assert (loaded, seen) == (end, (end.next_read_s, end.next_arrival_s, end.millis_behind_latest))
    assert end.to_json() == golden(name)


def test_a_golden_note_in_a_directory_store_is_served(tmp_path: Path) -> None:
    ends = store(str(tmp_path), "http://localhost:4566")
    ends.put(SHARD, TRIM_HORIZON, TAKE, END)
    (written,) = [path for path in tmp_path.rglob("*.json")]
    written.write_text((GOLDEN / "note-busy-shard.json").read_text())
    served = ends.get(SHARD, TRIM_HORIZON, TAKE)
    assert served is not None
    assert (served, served.next_arrival_s) == (BUSY_SHARD_END, 1_704_067_200.75)


def test_a_store_serves_one_stream_of_several(notes_path: str, endpoint: str) -> None:
    several = KinesisOptions.parse(
        {
            "streamName": "orders,payments",
            "metadataPath": notes_path,
            "endpointUrl": endpoint,
            "region": "us-east-1",
            "awsAccessKeyId": "test",
            "awsSecretKey": "test",
        }
    )
    with pytest.raises(ValueError, match="one stream"):
        end_store(several)
    end_store(several.for_stream("payments")).put(SHARD, TRIM_HORIZON, TAKE, END)
    assert store(notes_path, endpoint, "payments").get(SHARD, TRIM_HORIZON, TAKE) == END
    assert store(notes_path, endpoint, "orders").get(SHARD, TRIM_HORIZON, TAKE) is None
