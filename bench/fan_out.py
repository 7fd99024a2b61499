"""Figures 15 and 16 (opt-in): enhanced fan-out against polling, through the AWS-faithful proxy.

15. Two readers of one stream (`python -m bench --only two_readers`): two queries draining
    figure 10's preloaded 4-shard stream at once, through one proxy enforcing AWS's limits
    (bytes scaled as figure 10 scales them, `drain.LIMIT_SCALE`, for GetRecords and for each
    fan-out consumer's pushes alike). With GetRecords every reader of a shard shares its
    byte rate, so the two together can reach one reader's limit (about 0.5x each is the
    ceiling); with fan-out each registered consumer gets that rate of its own. Each reader's
    rate is its bytes over its batches' time, as a share of one reader's limit (shards x the
    scaled byte rate). Each reader has a task slot for every shard: one task reads its 4
    shards at once (`shardsPerTask`), and the session has a slot for each reader's task.
    The fan-out consumers are registered (and ACTIVE) before the clock starts, as a running
    stack's are; a half that does not finish by its deadline is an error, the other half
    is kept, and each half is logged as it ends. Beside them, the test double's own
    ceiling: two consumers at once, each a plain boto3 subscriber per shard, through a
    fresh proxy with the same limits (`plain_subscribers`).
16. Latency at 200 events/s with fan-out against polling (`python -m bench --only
    fan_out_latency`): figure 3's pipeline (the consumer's query and sink, the stack's
    500 ms trigger) reading through the proxy with AWS's limits at their real values, one
    run each, same run; each run's events split where their time went (`latency.stretches`)
    beside the batches' median phases, each stage's median task time (the read stage
    first: GetRecords, or the wait for the subscription's buffer) and the proxy's counters.
    Then the proxy's push delay alone (`push_delays`): records put at the same rate, each
    one's receipt by a plain boto3 subscriber minus its arrival time.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from typing import Any

import requests
from kinesis_proxy import Behaviours, running_proxy
from pyspark.sql import SparkSession
from pyspark_kinesis.client import make_client
from pyspark_kinesis.consumers import consumer_arn
from pyspark_kinesis.options import KinesisOptions

from bench import latency, profile
from bench.drain import (
    LIMITED_RECORDS,
    LIMITED_SHARDS,
    SCALED,
    limited_figure,
    scaled_limits,
    share_of_limit,
    spark_drain,
)
from bench.emulator import client, create_stream, fresh_localstack, timed_threads
from bench.shards import LATENCY_RATE, LATENCY_SECONDS
from testkit.clients import REGION
from testkit.waiting import wait_until

log = logging.getLogger(__name__)

READERS = ("reader-a", "reader-b")
READ_MODES = ("polling", "fan-out")
# Each reader's task reads all its shards at once.
SHARDS_PER_TASK = LIMITED_SHARDS
# Both readers at the limit take about 25 s (fan-out) or 50 s (polling, the limit shared);
# a half still running after this is reported as an error rather than waited for.
TWO_READERS_DEADLINE_S = 240
# The push delay is measured with records put at the latency figure's rate for this long.
PUSH_PROBE_SECONDS = 5.0
PUSH_PROBE_DEADLINE_S = 30.0
# What the proxy counted that says how a half read: refusals, subscriptions, pushes.
COUNTERS = (
    "throttled_reads",
    "calls:GetRecords",
    "calls:SubscribeToShard",
    "subscriptions",
    "subscriptions_in_use",
    "subscriptions_expired",
    "records_pushed",
)


def tasks_at_once(readers: int, shards: int, shards_per_task: int) -> int:
    """Task slots the readers need for every shard of each to be read at once."""
    return readers * -(-shards // shards_per_task)


def reader_options(mode: str, reader: str) -> dict[str, str]:
    """A reader's source options under figure 10's scaled limits, polling or fan-out."""
    options = {**SCALED, "shardsPerTask": str(SHARDS_PER_TASK)}
    if mode == "fan-out":
        options |= {"consumerMode": "efo", "consumerName": reader}
    return options


def registered(url: str, stream: str, name: str) -> str:
    """The ARN of the stream's fan-out consumer `name`, registered if missing and ACTIVE
    (the library's own way)."""
    options = KinesisOptions.parse(
        {"streamName": stream, "endpointUrl": url, "region": REGION}
        | reader_options("fan-out", name)
    )
    return consumer_arn(make_client(options), options)


def _readers_at_once(
    spark: SparkSession, url: str, stream: str, options_of: dict[str, dict[str, str]]
) -> dict[str, dict[str, Any]]:
    """Each reader's `spark_drain`, all started together; any reader's failure is raised
    naming every reader that failed."""
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, Exception] = {}

    def drain_as(reader: str) -> None:
        try:
            results[reader] = spark_drain(
                spark,
                url,
                stream,
                LIMITED_RECORDS,
                deadline_s=TWO_READERS_DEADLINE_S,
                **options_of[reader],
            )
        except Exception as error:  # raised below, with the other reader's
            failures[reader] = error

    timed_threads(drain_as, list(options_of))
    if failures:
        told = "; ".join(f"{reader}: {type(e).__name__}: {e}" for reader, e in failures.items())
        raise RuntimeError(f"{len(failures)} of {len(options_of)} readers failed: {told}")
    return results


def _two_readers_in(
    spark: SparkSession, url: str, stream: str, total_bytes: int, mode: str
) -> dict[str, Any]:
    """Both readers in `mode` through a fresh proxy (a drain leaves the shards' byte budgets
    spent): each one's share of the limit, and what the proxy counted."""
    options_of = {reader: reader_options(mode, reader) for reader in READERS}
    with running_proxy(url, scaled_limits()) as proxy:
        if mode == "fan-out":
            for reader in READERS:
                registered(proxy.url, stream, reader)
        runs = _readers_at_once(spark, proxy.url, stream, options_of)
        counters = proxy.counters()
    half: dict[str, Any] = {
        reader: {**run, "vs_limit": share_of_limit(total_bytes, run["batch_seconds"])}
        for reader, run in runs.items()
    }
    half["least_vs_limit"] = min(half[reader]["vs_limit"] for reader in READERS)
    half["proxy_counters"] = {name: counters.get(name, 0) for name in COUNTERS}
    return half


def plain_subscribers(url: str, stream: str, total_bytes: int) -> dict[str, Any]:
    """Figure 15's ceiling set by the test double itself: two consumers at once, as the two
    readers are, each a plain boto3 subscriber per shard, through a fresh proxy with the
    same limits, from the shards' first record until each holds all of its shard's; each
    consumer's share of one reader's limit."""
    consumers = [f"plain-{reader}" for reader in READERS]
    with running_proxy(url, scaled_limits()) as proxy:
        arns = {name: registered(proxy.url, stream, name) for name in consumers}
        kinesis = client(proxy.url)
        shards = [shard["ShardId"] for shard in kinesis.list_shards(StreamName=stream)["Shards"]]
        received: dict[tuple[str, str], int] = {}
        caught_up_s: dict[tuple[str, str], float] = {}
        started = time.perf_counter()

        def subscribe(pair: tuple[str, str]) -> None:
            name, shard_id = pair
            answer = kinesis.subscribe_to_shard(
                ConsumerARN=arns[name], ShardId=shard_id, StartingPosition={"Type": "TRIM_HORIZON"}
            )
            for message in answer["EventStream"]:
                event = message.get("SubscribeToShardEvent", {})
                received[pair] = received.get(pair, 0) + len(event.get("Records", []))
                if received[pair] and event.get("MillisBehindLatest") == 0:
                    break  # caught up: every record the shard holds was pushed
            caught_up_s[pair] = time.perf_counter() - started

        timed_threads(subscribe, [(name, shard) for name in consumers for shard in shards])
    figure = {}
    for name in consumers:
        seconds = max(at for (of, _), at in caught_up_s.items() if of == name)
        figure[name] = {
            "records": sum(count for (of, _), count in received.items() if of == name),
            "seconds": round(seconds, 1),
            "vs_limit": share_of_limit(total_bytes, seconds),
        }
    return figure


def measure_two_readers(spark: SparkSession, url: str) -> dict[str, Any]:
    """Figure 15, with the test double's own ceiling (`plain_subscribers`) beside it."""
    slots = spark.sparkContext.defaultParallelism
    needed = tasks_at_once(len(READERS), LIMITED_SHARDS, SHARDS_PER_TASK)
    if needed > slots:
        raise RuntimeError(
            f"{len(READERS)} readers of {LIMITED_SHARDS} shards need {needed} task slots at "
            f"once, the session has {slots}: run with SPARK_MASTER=local[{needed}] or more"
        )
    stream, total_bytes, figure = limited_figure(spark, url)
    figure |= {"shards_per_task": SHARDS_PER_TASK, "tasks_at_once": needed}
    failed = []
    for mode in READ_MODES:
        try:
            figure[mode] = _two_readers_in(spark, url, stream, total_bytes, mode)
        except Exception as error:  # the other half is still measured and reported
            log.exception("two readers, %s: failed", mode)
            figure[mode] = {"error": f"{type(error).__name__}: {error}"}
            failed.append(mode)
        # Logged as it ends: an interrupted run keeps the half it measured.
        log.info("two readers, %s: %s", mode, json.dumps(figure[mode], default=str))
    figure["plain_subscribers"] = plain_subscribers(url, stream, total_bytes)
    log.info("two readers, plain subscribers: %s", json.dumps(figure["plain_subscribers"]))
    if failed:
        figure["error"] = f"failed: {', '.join(failed)} (see each)"
    return figure


def measure_latency(spark: SparkSession) -> dict[str, Any]:
    """Figure 16: p50 and p99 at 200 events/s, fan-out against polling, through the proxy."""
    latency.keep_every_progress(spark)
    runs = {}
    for mode in READ_MODES:
        stages: list[float] = []

        def inspect(query: Any, stages: list[float] = stages) -> None:
            try:
                stages.extend(profile.stage_ms_medians(spark, query))
            except (requests.RequestException, LookupError, ValueError):  # the run stands
                log.exception("fan-out latency: Spark's REST API gave no stage times")

        runs[mode] = latency.measure_rate(
            spark,
            LATENCY_RATE,
            LATENCY_SECONDS,
            inspect,
            behaviours=Behaviours.aws(),
            consumer_read_mode=mode,
        )
        runs[mode]["stage_task_ms_median"] = stages
        log.info("fan-out latency, %s: %s", mode, json.dumps(runs[mode], default=str))
    try:
        push_delay = push_delays()
    except Exception as error:  # the runs above stand without it
        log.exception("fan-out latency: the push delay was not measured")
        push_delay = {"error": f"{type(error).__name__}: {error}"}
    polling, fan_out = runs["polling"], runs["fan-out"]
    return {
        "runs": runs,
        "p50_ratio": _ratio(fan_out["p50_s"], polling["p50_s"]),
        "p99_ratio": _ratio(fan_out["p99_s"], polling["p99_s"]),
        "push_delay": push_delay,
    }


def push_delays() -> dict[str, Any]:
    """The proxy's push delay alone (AWS documents about 70 ms): the producer's events at
    figure 16's rate into a fresh stream, read through the proxy by a boto3 subscriber per
    shard; each record's receipt minus its arrival time."""
    with (
        fresh_localstack() as url,
        running_proxy(url, Behaviours.aws()) as proxy,
        tempfile.TemporaryDirectory() as work,
    ):
        stream = create_stream(url, latency.SHARDS)
        arn = registered(proxy.url, stream, "push-probe")
        kinesis = client(proxy.url)
        delays: list[float] = []
        subscriptions = [
            kinesis.subscribe_to_shard(
                ConsumerARN=arn, ShardId=shard["ShardId"], StartingPosition={"Type": "LATEST"}
            )["EventStream"]
            for shard in kinesis.list_shards(StreamName=stream)["Shards"]
        ]
        for events in subscriptions:
            threading.Thread(target=_note_delays, args=(events, delays), daemon=True).start()
        sent, _ = latency.send_at_rate(
            latency.producer_writer(url, stream, work), LATENCY_RATE, PUSH_PROBE_SECONDS
        )
        wait_until(
            lambda: len(delays) >= sent, "every record pushed", deadline_s=PUSH_PROBE_DEADLINE_S
        )
    ordered = sorted(delays)
    return {
        "records": len(ordered),
        "p50_s": latency.percentile(ordered, 50),
        "p99_s": latency.percentile(ordered, 99),
    }


def _note_delays(events: Any, delays: list[float]) -> None:
    """Notes each pushed record's receipt minus its arrival time, until the stream ends
    (the proxy ends every event stream when it stops)."""
    for message in events:
        received = time.time()
        for record in message.get("SubscribeToShardEvent", {}).get("Records", []):
            delays.append(received - record["ApproximateArrivalTimestamp"].timestamp())


def _ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference
