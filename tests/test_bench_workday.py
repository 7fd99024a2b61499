"""The working day's per-call table holds levels no fill reaches in time by growing
kinesis-mock's saved state (`bench.workday.grown_state`): the grown records must be what a
fresh LocalStack loads, serves in order, and numbers new records after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.workday import SEQUENCE_STEP, grown_state
from testkit.clients import localstack_kinesis
from testkit.localstack import running_localstack
from testkit.streams import read_stream, wait_active

pytestmark = pytest.mark.unit

SAVING = {"PERSISTENCE": "1", "KINESIS_PERSISTENCE": "1", "KINESIS_MOCK_PERSIST_INTERVAL": "10m"}


def saved(shards: dict[str, list[int]]) -> dict:
    return {
        "streams": {
            "arn": {
                "shards": {
                    shard: [
                        {
                            "SequenceNumber": str(n),
                            "Data": f"{shard}-{n}",
                            "ApproximateArrivalTimestamp": n,
                        }
                        for n in numbers
                    ]
                    for shard, numbers in shards.items()
                }
            }
        }
    }


def test_each_shard_grows_by_copies_of_its_own_records_numbered_on_from_its_last():
    shards = grown_state(saved({"a": [10, 20], "b": [5]}), 7)["streams"]["arn"]["shards"]
    assert [r["Data"] for r in shards["a"]] == ["a-10", "a-20", "a-10", "a-20"]
    assert [r["Data"] for r in shards["b"]] == ["b-5"] * 3
    numbers = [int(r["SequenceNumber"]) for r in shards["a"]]
    assert numbers == [10, 20, 20 + SEQUENCE_STEP, 20 + 2 * SEQUENCE_STEP]
    assert {r["ApproximateArrivalTimestamp"] for r in shards["a"][2:]} == {20}


def test_an_empty_shard_cannot_grow():
    with pytest.raises(ValueError, match="no record to copy"):
        grown_state(saved({"a": []}), 4)


def test_a_fresh_localstack_serves_a_grown_state_and_numbers_new_records_after_it(tmp_path: Path):
    with running_localstack(state_dir=tmp_path, **SAVING) as url:
        kinesis = localstack_kinesis(url)
        kinesis.create_stream(StreamName="grown", ShardCount=1)
        wait_active(kinesis, "grown")
        entries = [{"Data": f"{n}".encode(), "PartitionKey": "k"} for n in range(10)]
        kinesis.put_records(StreamName="grown", Records=entries)
    (state_file,) = (tmp_path / "state" / "kinesis").glob("*.json")  # saved at the stop
    state_file.write_text(json.dumps(grown_state(json.loads(state_file.read_text()), 100)))
    with running_localstack(state_dir=tmp_path, **SAVING) as url:
        kinesis = localstack_kinesis(url)
        kinesis.put_records(StreamName="grown", Records=[{"Data": b"new", "PartitionKey": "k"}])
        records = [read.record for read in read_stream(kinesis, "grown")]
    assert [r["Data"] for r in records] == [f"{n % 10}".encode() for n in range(100)] + [b"new"]
    numbers = [int(r["SequenceNumber"]) for r in records]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
