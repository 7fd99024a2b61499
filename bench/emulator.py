"""A fresh LocalStack Kinesis per figure, and the Kinesis calls the figures share."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from consumer.settings import ConsumerSettings
from producer.events import EventFactory, Record, to_record

from testkit.clients import REGION, localstack_kinesis
from testkit.localstack import running_localstack
from testkit.streams import put_all, wait_active

# LocalStack accepts any key. The figures' Spark sources and producers, built from settings
# like the services', find these fixed dummies, never the host's real profile.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


@contextmanager
def fresh_localstack(**env: str) -> Iterator[str]:
    """URL of a new LocalStack Kinesis on 127.0.0.1, removed afterwards; `env` adds to its
    environment."""
    # No figure restarts its emulator, and kinesis-mock's save of every record every 5 s
    # blocks its answers as streams grow: at 70,000 records a GetRecords waited up to 1.9 s
    # with it and at most 32 ms without (2026-12-06), which a figure would count as ours.
    with running_localstack(KINESIS_PERSISTENCE="0", **env) as url:
        yield url


def client(url: str) -> Any:
    """A Kinesis client of the LocalStack at `url` (as the producer's `--localstack` builds
    its own), retrying as the services do, with connections for the figures' threads."""
    config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=32)
    return localstack_kinesis(url, config=config)


def create_stream(url: str, shards: int) -> str:
    """A new ACTIVE stream with a unique name."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    kinesis = client(url)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    wait_active(kinesis, name)
    return name


def event_records(count: int, seed: int = 5) -> list[Record]:
    factory = EventFactory(seed)
    return [to_record(event) for event in factory.random_events(count)]


def put_concurrently(
    url: str, stream: str, records: list[Record], threads: int = 4, per_request: int = 500
) -> float:
    """Raw PutRecords of 500 (or `per_request`, for records too large for 500 in 5 MiB)
    from a few threads (the emulator's ceiling); returns seconds."""
    batches = [records[i : i + per_request] for i in range(0, len(records), per_request)]
    lock = threading.Lock()

    def work(kinesis: Any) -> None:
        while True:
            with lock:
                if not batches:
                    return
                batch = batches.pop()
            put_all(
                kinesis, stream, [{"Data": r.data, "PartitionKey": r.partition_key} for r in batch]
            )

    # Built before the clock starts (0.003-0.03 s each with botocore's loader warm, 0.5 s
    # for a process's first): the sink it is compared with reuses its workers' clients.
    clients = [client(url) for _ in range(threads)]
    return timed_threads(work, clients)


def timed_threads(work: Callable[[Any], None], arguments: list[Any]) -> float:
    """Seconds from starting a thread running `work(argument)` per argument to the last's end."""
    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(argument,)) for argument in arguments]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def consumer_settings(stream: str, url: str, work: str, **overrides: Any) -> ConsumerSettings:
    """The consumer's settings for a bench stream, writing under `work`, console off."""
    return ConsumerSettings(
        kinesis_stream_name=stream,
        kinesis_endpoint_url=url,
        consumer_output_path=f"{work}/output",
        consumer_checkpoint_path=f"{work}/checkpoints",
        consumer_console=False,
        **overrides,
    )
