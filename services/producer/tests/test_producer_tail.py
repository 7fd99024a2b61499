"""`producer tail`: what the producer wrote, as it arrives, read back without Spark."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from datetime import UTC, datetime

import pytest
from producer.tail import describe_record
from producer_testkit import DEADLINE_S, producer_command

pytestmark = pytest.mark.unit


def _record(data: bytes) -> dict[str, object]:
    return {
        "Data": data,
        "SequenceNumber": "4960",
        "PartitionKey": "key-1",
        "ApproximateArrivalTimestamp": datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("data", "payload"),
    [
        (
            b'{"message_type": "message1", "count": 2}',
            {"data": {"message_type": "message1", "count": 2}},
        ),
        (b"{not json", {"data_text": "{not json"}),
        (b"\xff\xfe", {"data_base64": "//4="}),
    ],
    ids=["json", "text", "bytes"],
)
def test_a_record_is_shown_decoded_with_its_place_in_the_stream(data, payload):
    assert describe_record("shardId-000000000001", _record(data)) == {
        "shard": "shardId-000000000001",
        "sequence_number": "4960",
        "partition_key": "key-1",
        "arrival": "2026-11-25T08:00:00.000+00:00",
        **payload,
    }


def test_tail_prints_records_already_there_and_those_that_arrive(
    kinesis_endpoint, stream_factory, kinesis_client
):
    stream = stream_factory(2)
    env = {**os.environ, "KINESIS_ENDPOINT_URL": kinesis_endpoint, "KINESIS_STREAM_NAME": stream}
    env |= {"AWS_REGION": "us-east-1"}

    def put(first: int, last: int) -> dict[str, tuple[str, str]]:
        """Events first..last-1; each one's (shard, sequence number) from PutRecords."""
        entries = [
            {"Data": json.dumps({"n": n}).encode(), "PartitionKey": f"key-{n}"}
            for n in range(first, last)
        ]
        answer = kinesis_client.put_records(StreamName=stream, Records=entries)
        return {
            f"key-{n}": (result["ShardId"], result["SequenceNumber"])
            for n, result in zip(range(first, last), answer["Records"], strict=True)
        }

    placed = put(0, 2)
    command = producer_command("tail", "--from-start", "--max-records", "4")
    tail = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in tail.stdout], daemon=True).start()
    try:
        printed = [json.loads(lines.get(timeout=DEADLINE_S)) for _ in range(2)]
        placed |= put(2, 4)  # after tail printed the first two: these arrive while it runs
        printed += [json.loads(lines.get(timeout=DEADLINE_S)) for _ in range(2)]
        assert tail.wait(timeout=DEADLINE_S) == 0, tail.stderr.read()
    finally:
        tail.kill()
    assert sorted(line["data"]["n"] for line in printed) == [0, 1, 2, 3]
    assert {
        line["partition_key"]: (line["shard"], line["sequence_number"]) for line in printed
    } == placed
