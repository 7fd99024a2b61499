"""Helpers of the producer's tests: run the CLI, read a stream back, poll with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

DEADLINE_S = 60.0


def read_stream(kinesis_client: Any, stream: str) -> list[dict[str, Any]]:
    """Every record in the stream as {'data', 'key'}, shard by shard, with plain GetRecords."""
    records: list[dict[str, Any]] = []
    for shard in kinesis_client.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis_client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis_client.get_records(ShardIterator=iterator, Limit=10_000)
            records += [{"data": r["Data"], "key": r["PartitionKey"]} for r in answer["Records"]]
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")
    return records


def producer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "producer", *args]


def run_producer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        producer_command(*args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
