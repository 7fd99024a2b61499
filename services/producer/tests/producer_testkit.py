"""Helpers of the producer's tests: run the CLI, read a stream back, poll with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import testkit.streams

DEADLINE_S = 60.0


def read_stream(kinesis_client: Any, stream: str) -> list[dict[str, Any]]:
    """Every record in the stream as {'data', 'key'} (the test kit's `read_stream`)."""
    return [
        {"data": read.record["Data"], "key": read.record["PartitionKey"]}
        for read in testkit.streams.read_stream(kinesis_client, stream)
    ]


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
