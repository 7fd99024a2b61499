"""A fresh LocalStack Kinesis per figure, and the Kinesis calls the figures share."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import localstack_client.session
import requests
from botocore.config import Config
from consumer.settings import ConsumerSettings
from producer.events import EventFactory, Record, to_record
from testcontainers.core.container import DockerContainer

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
# LocalStack accepts any key. The figures' Spark sources and producers, built from settings
# like the services', find these fixed dummies, never the host's real profile.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"
REGION = "us-east-1"
STARTUP_DEADLINE_S = 90.0
MAX_PUT_RECORDS = 500


@contextmanager
def fresh_localstack() -> Iterator[str]:
    """URL of a new LocalStack Kinesis on 127.0.0.1, removed afterwards."""
    container = DockerContainer(LOCALSTACK_IMAGE).with_env("SERVICES", "kinesis")
    container.with_env("KINESIS_LATENCY", "0")
    container.ports["4566/tcp"] = ("127.0.0.1",)
    container.start()
    try:
        port = container.get_docker_client().port(container.get_container_id(), 4566)
        url = f"http://127.0.0.1:{port}"
        _wait_for_kinesis(url)
        yield url
    finally:
        # Killed, not stopped: its data is thrown away anyway, and a stop waits 10 s.
        container.get_wrapped_container().remove(force=True, v=True)


def _wait_for_kinesis(url: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            services = requests.get(f"{url}/_localstack/health", timeout=2).json()["services"]
            if services.get("kinesis") in ("available", "running"):
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"LocalStack at {url} not ready within {STARTUP_DEADLINE_S:g}s")


def client(url: str) -> Any:
    """A Kinesis client of the LocalStack at `url`, built by localstack-client (as the
    producer's `--localstack` builds its own): the emulator's endpoint and dummy keys."""
    config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=32)
    session = localstack_client.session.Session(
        localstack_host=urlparse(url).netloc, region_name=REGION
    )
    return session.client("kinesis", config=config)


def create_stream(url: str, shards: int) -> str:
    """A new ACTIVE stream with a unique name."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    kinesis = client(url)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    return name


def event_records(count: int, seed: int = 5) -> list[Record]:
    factory = EventFactory(seed)
    return [to_record(event) for event in factory.random_events(count)]


def put_concurrently(url: str, stream: str, records: list[Record], threads: int = 4) -> float:
    """Raw PutRecords of 500 from a few threads (the emulator's ceiling); returns seconds."""
    batches = [records[i : i + MAX_PUT_RECORDS] for i in range(0, len(records), MAX_PUT_RECORDS)]
    lock = threading.Lock()

    def work(kinesis: Any) -> None:
        while True:
            with lock:
                if not batches:
                    return
                batch = batches.pop()
            entries = [{"Data": r.data, "PartitionKey": r.partition_key} for r in batch]
            while entries:
                answer = kinesis.put_records(StreamName=stream, Records=entries)
                entries = [
                    entry
                    for entry, result in zip(entries, answer["Records"], strict=True)
                    if "ErrorCode" in result
                ]

    # Built before the clock starts (0.003-0.03 s each with botocore's loader warm, 0.5 s
    # for a process's first): the sink it is compared with reuses its workers' clients.
    clients = [client(url) for _ in range(threads)]
    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(kinesis,)) for kinesis in clients]
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
