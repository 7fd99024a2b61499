"""Figure 1: the project's producer against the tutorial's loop and the emulator's ceiling."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from producer.events import Record
from producer.sending import Pacer, pump
from producer.settings import ProducerSettings
from producer.stream import make_client
from producer.writer import KinesisWriter, UnsentFile

from bench.emulator import client, create_stream, event_records, fresh_localstack, put_concurrently

SHARDS = 2  # the Compose stack's default
TUTORIAL_BUDGET_S = 40.0


def producer_writer(url: str, stream: str, count: int) -> float:
    """The producer's own path (KinesisWriter fed by `pump`, rate unlimited); seconds."""
    settings = ProducerSettings(kinesis_stream_name=stream, kinesis_endpoint_url=url)
    with tempfile.TemporaryDirectory() as unsent:
        writer = KinesisWriter(make_client(settings), stream, UnsentFile(Path(unsent) / "u.jsonl"))
        records = iter(event_records(count))
        started = time.perf_counter()
        pump(writer, records, threading.Event(), Pacer(0))
        elapsed = time.perf_counter() - started
    if writer.stats.sent != count:
        raise RuntimeError(f"producer sent {writer.stats.sent} of {count}")
    return elapsed


def put_one_by_one(
    url: str, stream: str, records: list[Record], budget_s: float | None = None
) -> float:
    """One `put_record` call per record (the tutorial's and qubole's way); seconds for all.

    With `budget_s`, stops after that long (a busy machine can slow it tenfold)
    and scales its time up to all `records`, so `make bench` keeps its time budget.
    """
    kinesis = client(url)
    started = time.perf_counter()
    for sent, record in enumerate(records, start=1):
        kinesis.put_record(StreamName=stream, Data=record.data, PartitionKey=record.partition_key)
        elapsed = time.perf_counter() - started
        if budget_s is not None and elapsed > budget_s:
            return elapsed * len(records) / sent
    return time.perf_counter() - started


def tutorial_loop(url: str, stream: str, count: int) -> float:
    """The tutorial's way: one `put_record` call per message; seconds per `count` records."""
    return put_one_by_one(url, stream, event_records(count), TUTORIAL_BUDGET_S)


def ceiling(url: str, stream: str, count: int) -> float:
    return put_concurrently(url, stream, event_records(count), threads=4)


def measure(count: int) -> dict[str, Any]:
    rates: dict[str, float] = {}
    for name, send in (
        ("producer", producer_writer),
        ("tutorial_loop", tutorial_loop),
        ("emulator_ceiling", ceiling),
    ):
        with fresh_localstack() as url:
            seconds = send(url, create_stream(url, SHARDS), count)
        rates[name] = count / seconds
    return {
        "records": count,
        "shards": SHARDS,
        "records_per_s": rates,
        "producer_vs_ceiling": rates["producer"] / rates["emulator_ceiling"],
        "producer_vs_tutorial": rates["producer"] / rates["tutorial_loop"],
    }
