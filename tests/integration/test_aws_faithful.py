"""The whole stack through a Kinesis that behaves like AWS, every behaviour on.

The stack runs from docker-compose.yml with docker-compose.proxy.yml: producer and
consumer reach LocalStack only through the Kinesis proxy (services/kinesis-proxy),
which enforces AWS's per-shard read and write limits, answers empty pages with
MillisBehindLatest > 0, expires iterators after 30 s, shows records 1 s after
their arrival, and answers 2% of data-plane calls each with KMSThrottlingException,
500 and 503, and drops 2% of connections (the rates are the override file's defaults).
The test's own puts go through the proxy too; LocalStack injects nothing itself.

Each case checks the sink holds every event sent so far, exactly once, in
per-partition-key order, and that it caught up within a stated bound (the "stall").
The last case reads the proxy's counters and fails unless every behaviour fired.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

pytestmark = pytest.mark.integration

PRODUCER_COUNT = 600
PRODUCER_RATE = 20
# From a case's last put to the sink holding it, with the consumer running throughout.
STALL_BOUND_S = 90.0
# From a consumer's (re)start to the sink holding everything: a JVM start on a loaded
# 2-core machine included.
RESTART_STALL_BOUND_S = 240.0
ITERATOR_LIFETIME_S = 30.0
# A neighbour's pause between calls: it calls as fast as the proxy answers, give or take.
NEIGHBOUR_PAUSE_S = 0.02
# What each behaviour counts in the proxy when it fires; every one must.
INJECTED = {
    "read limits (5 GetRecords/s, 2 MB/s per shard)": "throttled_reads",
    "write limits (1,000 records/s, 1 MiB/s per shard)": "refused_writes",
    "control-plane limits (ListShards, DescribeStreamSummary)": "limited_control_plane_calls",
    "empty pages with MillisBehindLatest > 0": "empty_pages",
    f"iterators expired ({ITERATOR_LIFETIME_S:.0f} s)": "expired_iterators",
    "records held back (visible 1 s after arrival)": "records_held_back",
    "KMSThrottlingException": "kms_throttled",
    "500 InternalFailure": "server_errors",
    "503 ServiceUnavailable": "unavailable",
    "dropped connections": "dropped_connections",
}


@pytest.fixture(scope="module")
def proxied(stack_factory) -> Iterator[Any]:
    with stack_factory(
        proxy=True,
        # The proxy is the only source of faults.
        KINESIS_ERROR_PROBABILITY="0.0",
        KINESIS_PROXY_ITERATOR_LIFETIME_S=str(ITERATOR_LIFETIME_S),
        PRODUCER_COUNT=str(PRODUCER_COUNT),
        PRODUCER_RATE=str(PRODUCER_RATE),
    ) as started:
        yield started


# The proxy's counters when the neighbours left (end of the first case).
AFTER_NEIGHBOURS: dict[str, int] = {}


def _counters(stack) -> dict[str, int]:
    return dict(requests.get(f"{stack.proxy}/_proxy/events", timeout=5).json())


class _Neighbour:
    """Other applications on the same stream, as fast as the proxy answers them: a reader
    per shard (GetRecords from LATEST) and a caller of ListShards and
    DescribeStreamSummary. AWS's limits are per shard and per account, shared by every
    client, so the stack's own calls meet limits these neighbours have used up."""

    def __init__(self, stack) -> None:
        self.client = boto3.client(
            "kinesis",
            endpoint_url=stack.proxy,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=8),
        )
        self.stopping = threading.Event()
        shards = stack.kinesis().list_shards(StreamName="events")["Shards"]
        self.threads = [
            threading.Thread(target=self._read, args=(shard["ShardId"],), daemon=True)
            for shard in shards
        ]
        self.threads.append(threading.Thread(target=self._control_plane, daemon=True))

    def __enter__(self) -> _Neighbour:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _control_plane(self) -> None:
        while not self.stopping.wait(NEIGHBOUR_PAUSE_S):
            for call in (self.client.list_shards, self.client.describe_stream_summary):
                with contextlib.suppress(ClientError, BotoCoreError):
                    call(StreamName="events")

    def _read(self, shard_id: str) -> None:
        iterator = None
        while not self.stopping.wait(NEIGHBOUR_PAUSE_S):
            try:
                if iterator is None:
                    iterator = self.client.get_shard_iterator(
                        StreamName="events", ShardId=shard_id, ShardIteratorType="LATEST"
                    )["ShardIterator"]
                iterator = self.client.get_records(ShardIterator=iterator, Limit=100).get(
                    "NextShardIterator"
                )
            except ClientError as error:
                if error.response["Error"]["Code"] == "ExpiredIteratorException":
                    iterator = None
            except BotoCoreError:
                pass


def test_the_proxy_serves_in_front_of_localstack(proxied):
    assert _counters(proxied) is not None
    # Producer and consumer are configured to reach Kinesis through it, and nothing else.
    config = proxied.compose.get_config()
    for service in ("producer", "consumer"):
        endpoint = config["services"][service]["environment"]["KINESIS_ENDPOINT_URL"]
        assert endpoint == "http://kinesis-proxy:4567"


def test_producer_and_host_events_arrive_exactly_once(proxied, record_case):
    with _Neighbour(proxied):
        proxied.wait_until(
            lambda: "exited" in proxied.service_state("producer"), "the producer to finish"
        )
        producer = proxied.compose.get_container("producer", include_all=True)
        assert producer.ExitCode == 0
        # Seven keys, each over several batches.
        proxied.put_events(100, "message1")
        proxied.wait_for_sink()
        proxied.put_events(100, "message2")
    AFTER_NEIGHBOURS.update(_counters(proxied))
    record_case(
        proxied,
        "producer (600 at 20/s) and the host (200), neighbours using up the limits",
        len(proxied.expected),
        time.monotonic(),
        STALL_BOUND_S,
    )


def test_oversized_records_meet_the_byte_limits(proxied, record_case):
    before = len(proxied.expected)
    # 8 x 400 KB to one shard: 3.2 MB, over its 1 MiB/s of writes and its 2 MB/s of reads.
    proxied.put([bytes([n]) * 400 * 1024 for n in range(8)], key=lambda n: "big")
    proxied.expected_dead_letters += 8  # over CONSUMER_MAX_EVENT_BYTES: dead letters
    proxied.put_events(50, "message3")
    record_case(
        proxied,
        "8 x 400 KB to one shard (dead letters) and 50 events",
        len(proxied.expected) - before + 8,
        time.monotonic(),
        STALL_BOUND_S,
    )


def test_consumer_killed_and_restarted_under_the_proxy(proxied, record_case):
    sent, started = proxied.kill_consumer_mid_stream("message4", "message5")
    record_case(
        proxied, "consumer SIGKILL mid-stream, restarted", sent, started, RESTART_STALL_BOUND_S
    )


def test_consumer_frozen_past_the_iterator_lifetime(proxied, record_case):
    proxied.wait_for_sink()
    before = len(proxied.expected)
    expired_before = _counters(proxied).get("expired_iterators", 0)
    proxied.put_events(30, "message6")
    proxied.wait_for_sink()
    # Frozen (cgroup freezer, like a long GC pause) with the iterators of its last look
    # in hand; records arrive meanwhile. The fault lasts past the lifetime: that is its
    # length, not a wait for something to happen.
    proxied.run("pause", "consumer")
    try:
        frozen_at = time.monotonic()
        proxied.put_events(70, "message6")
        proxied.wait_until(
            lambda: time.monotonic() - frozen_at > ITERATOR_LIFETIME_S + 5,
            "the iterator lifetime to pass",
        )
    finally:
        proxied.run("unpause", "consumer")
    started = time.monotonic()
    record_case(
        proxied,
        f"consumer frozen {ITERATOR_LIFETIME_S + 5:.0f} s (its iterators expire)",
        len(proxied.expected) - before,
        started,
        STALL_BOUND_S,
    )
    assert _counters(proxied).get("expired_iterators", 0) > expired_before


def test_every_behaviour_fired(proxied, aws_counters):
    counters = _counters(proxied)
    for behaviour, counter in INJECTED.items():
        aws_counters[f"{behaviour}: {counter}"] = counters.get(counter, 0)
    for name in ("throttled_iterators", "records_read", "upstream_unreachable"):
        aws_counters[name] = counters.get(name, 0)
    for name in ("throttled_reads", "limited_control_plane_calls"):
        if AFTER_NEIGHBOURS:
            later = counters.get(name, 0) - AFTER_NEIGHBOURS.get(name, 0)
            aws_counters[f"{name} after the neighbours left (stack alone)"] = later
    aws_counters["calls (all operations)"] = sum(
        times for name, times in counters.items() if name.startswith("calls:")
    )
    quiet = [name for name, counter in INJECTED.items() if not counters.get(counter)]
    assert not quiet, f"behaviours that never fired: {quiet} ({counters})"
