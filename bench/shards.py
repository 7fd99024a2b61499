"""Figures 12 to 14: many shards on few cores (a task reads `shardsPerTask` shards at once).

12. End-to-end latency p50 at 200 events/s on 16 shards against 2 shards: figure 3's
    pipeline (the consumer's query, its sink, the stack's trigger), one run each, same run.
13. Batch time with a handful of records per batch (10 events/s at the 500 ms trigger, about
    5 records a batch) on 64 shards against 4 shards: the same pipeline, median batch.
14. The planner's own cost on 64 shards: the reader's `latestOffset` on the driver, timed
    in this process (no Spark), when no shard needs a look (each shard's last read saw the
    record that follows its end, as on a busy stream) and when every shard needs one (an
    idle stream: a GetRecords per shard). Triggers are spaced as the stack's (500 ms), so
    no look waits for its shard's pace.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.streaming.datasource import ReadAllAvailable
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON
from pyspark_kinesis.shards import streams_from_offset
from pyspark_kinesis.stream_reader import KinesisStreamReader

from bench import latency
from bench.emulator import client, create_stream, fresh_localstack
from testkit.clients import REGION

LATENCY_RATE = 200
LATENCY_SECONDS = 10.0
LATENCY_SHARDS = (2, 16)
HANDFUL_RATE = 10  # events/s: about 5 records a batch at the stack's 500 ms trigger
HANDFUL_SECONDS = 20.0
HANDFUL_SHARDS = (4, 64)
PLANNED_SHARDS = 64
PLANNING_ROUNDS = 10
TRIGGER_S = 0.5
PLAN_DEADLINE_S = 60.0


def measure_latency(spark: SparkSession) -> dict[str, Any]:
    """Figure 12: p50 at 200 events/s, 16 shards against 2."""
    runs = _pipeline_runs(spark, LATENCY_RATE, LATENCY_SECONDS, LATENCY_SHARDS)
    few, many = (runs[str(shards)] for shards in LATENCY_SHARDS)
    return {"runs": runs, "p50_ratio": many["p50_s"] / few["p50_s"]}


def measure_handful(spark: SparkSession) -> dict[str, Any]:
    """Figure 13: median batch time at a handful of records per batch, 64 shards against 4."""
    runs = _pipeline_runs(spark, HANDFUL_RATE, HANDFUL_SECONDS, HANDFUL_SHARDS)
    few, many = (runs[str(shards)] for shards in HANDFUL_SHARDS)
    return {"runs": runs, "batch_ratio": many["batch_ms_median"] / few["batch_ms_median"]}


def _pipeline_runs(
    spark: SparkSession, rate: int, seconds: float, shard_counts: tuple[int, ...]
) -> dict[str, dict[str, Any]]:
    """Figure 3's measure at `rate` on a fresh stream of each shard count, by shard count."""
    latency.keep_every_progress(spark)
    return {
        str(shards): latency.measure_rate(spark, rate, seconds, shards=shards)
        for shards in shard_counts
    }


def measure_planning() -> dict[str, Any]:
    """Figure 14: `latestOffset` on 64 shards, without looks and with a look at every shard."""
    with fresh_localstack() as url, tempfile.TemporaryDirectory() as notes:
        stream = create_stream(url, PLANNED_SHARDS)
        options = KinesisOptions(
            stream_name=stream,
            region=REGION,
            endpoint_url=url,
            starting_position=TRIM_HORIZON,
            metadata_path=notes,
        )
        reader = KinesisStreamReader(options)
        calls = _Calls(reader)
        start = reader.initialOffset()
        put_one_on_every_shard(url, stream)
        start = _first_batch(url, stream, reader, start)
        busy, start = _busy_triggers(url, stream, reader, start, calls)
        idle = _idle_triggers(reader, start, calls)
    return {
        "shards": PLANNED_SHARDS,
        "no_look": busy,
        "every_shard_looked_at": idle,
    }


def put_one_on_every_shard(url: str, stream: str) -> None:
    kinesis = client(url)
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    keys = [shard["HashKeyRange"]["StartingHashKey"] for shard in shards]
    entries = [{"Data": b"{}", "PartitionKey": "k", "ExplicitHashKey": key} for key in keys]
    if kinesis.put_records(StreamName=stream, Records=entries)["FailedRecordCount"]:
        raise RuntimeError("the emulator refused records")


class _Calls:
    """The reader's client's GetRecords calls (the driver's looks, here) and the time its
    ListShards calls took (the listing, refreshed once per listing interval)."""

    def __init__(self, reader: KinesisStreamReader) -> None:
        self.get_records = 0
        self.listing_s = 0.0
        self._listing_since = 0.0
        events = reader.client.meta.events
        events.register("before-call.kinesis.GetRecords", self._count)
        events.register("before-call.kinesis.ListShards", self._listing_starts)
        events.register("after-call.kinesis.ListShards", self._listing_ends)

    def _count(self, **_: Any) -> None:
        self.get_records += 1

    def _listing_starts(self, **_: Any) -> None:
        self._listing_since = time.perf_counter()

    def _listing_ends(self, **_: Any) -> None:
        self.listing_s += time.perf_counter() - self._listing_since


def _run_batch(reader: KinesisStreamReader, start: dict[str, Any], end: dict[str, Any]) -> int:
    """What Spark's tasks do with the batch, in this process: rows read."""
    return sum(
        batch.num_rows
        for partition in reader.partitions(start, end)
        for batch in reader.read(partition)
    )


def _first_batch(
    url: str, stream: str, reader: KinesisStreamReader, start: dict[str, Any]
) -> dict[str, Any]:
    """Plans and runs a first batch taking from every shard; returns its end."""
    deadline = time.monotonic() + PLAN_DEADLINE_S
    while True:
        # Records count once 2 s old until a note is seen: wait for every shard's.
        end = reader.latestOffset(start, ReadAllAvailable())
        progress = streams_from_offset(end, (stream,))
        if sum(state.take is not None for state in progress.values()) == PLANNED_SHARDS:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("no batch took from every shard")
        time.sleep(TRIGGER_S)
    put_one_on_every_shard(url, stream)  # after the plan: the batch's reads see it follow
    _run_batch(reader, start, end)
    return end


def _busy_triggers(
    url: str, stream: str, reader: KinesisStreamReader, start: dict[str, Any], calls: _Calls
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rounds of: the next plan, timed (the last batch's reads saw a record follow their
    ends, so no shard needs a look); a record lands on every shard; the batch runs, taking
    one record a shard. Returns the timings and the last batch's end."""
    plans = _Plans(calls)
    for _ in range(PLANNING_ROUNDS):
        end = plans.timed(partial(reader.latestOffset, start, ReadAllAvailable()))
        put_one_on_every_shard(url, stream)
        if _run_batch(reader, start, end) != PLANNED_SHARDS:
            raise RuntimeError("a busy round did not read one record per shard")
        start = end
    return plans.summary(), start


def _idle_triggers(
    reader: KinesisStreamReader, end: dict[str, Any], calls: _Calls
) -> dict[str, Any]:
    """Triggers on the drained stream, one every TRIGGER_S: each looks at every shard."""
    last = reader.latestOffset(end, ReadAllAvailable())  # the records the last round left
    _run_batch(reader, end, last)
    started = time.perf_counter()
    if reader.latestOffset(last, ReadAllAvailable()) != last:  # resolves that batch's ends
        raise RuntimeError("records arrived on the drained stream")
    _wait_for_next_trigger(started)
    plans = _Plans(calls)
    for _ in range(PLANNING_ROUNDS):
        started = time.perf_counter()
        if plans.timed(partial(reader.latestOffset, last, ReadAllAvailable())) != last:
            raise RuntimeError("an idle trigger planned a batch")
        _wait_for_next_trigger(started)
    return plans.summary()


def _wait_for_next_trigger(started: float) -> None:
    time.sleep(max(0.0, started + TRIGGER_S - time.perf_counter()))


class _Plans:
    """Timed plans: each one's time, its GetRecords calls and its time in ListShards."""

    def __init__(self, calls: _Calls) -> None:
        self.calls = calls
        self.timings: list[float] = []
        self.listings: list[float] = []
        self.looks = 0

    def timed(self, plan: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        reads, listing_s = self.calls.get_records, self.calls.listing_s
        started = time.perf_counter()
        end = plan()
        self.timings.append(time.perf_counter() - started)
        self.listings.append(self.calls.listing_s - listing_s)
        self.looks += self.calls.get_records - reads
        return end

    def summary(self) -> dict[str, Any]:
        pairs = zip(self.timings, self.listings, strict=True)
        without_listing = [plan - listing for plan, listing in pairs]
        return {
            "rounds": len(self.timings),
            "ms_median": statistics.median(self.timings) * 1000,
            "ms_max": max(self.timings) * 1000,
            "listing_ms_median": statistics.median(self.listings) * 1000,
            "without_listing_ms_median": statistics.median(without_listing) * 1000,
            "looks_per_round": self.looks / len(self.timings),
        }


def figures(
    attempt: Callable[[str, Callable[[], Any]], Any], spark: SparkSession
) -> dict[str, Any]:
    """Figures 12 to 14 through the bench's `attempt` (each reported even if another fails)."""
    return {
        "many_shards_latency": attempt("many shards latency", lambda: measure_latency(spark)),
        "many_shards_handful": attempt("many shards handful", lambda: measure_handful(spark)),
        "many_shards_planning": attempt("many shards planning", measure_planning),
    }
