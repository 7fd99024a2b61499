"""`python -m bench.profile`: where a consumer batch's time goes (cProfile; not in `make bench`).

Two views of the slowest stage, the consumer:
1. one micro-batch of the real pipeline (`start_query` with `BatchSink`), the
   sink's driver-side calls profiled: each Spark action it triggers shows up as
   the py4j call that waits for it, so cumulative times split the batch by action;
2. the source alone, without Spark: the driver's planning (`latestOffset`) and
   the tasks' reads (`read`) on the same 4-shard stream, in this process.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import tempfile
import time

from consumer.app import build_session
from consumer.settings import ConsumerSettings
from consumer.sink import BatchSink
from pyspark.sql import DataFrame
from pyspark.sql.streaming.datasource import ReadAllAvailable
from pyspark_kinesis.source import KinesisDataSource

from bench.emulator import (
    consumer_settings,
    create_stream,
    event_records,
    fresh_localstack,
    put_concurrently,
)

BATCH = 1_000
BATCHES = 4
SOURCE_RECORDS = 6_000


class ProfiledSink(BatchSink):
    def __init__(self, settings: ConsumerSettings, profiler: cProfile.Profile) -> None:
        super().__init__(settings)
        self.profiler = profiler
        self.seconds: list[float] = []

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        self.profiler.enable()
        try:
            super().__call__(batch, batch_id)
        finally:
            self.profiler.disable()
            self.seconds.append(time.perf_counter() - started)


def _top(profiler: cProfile.Profile, pattern: str, limit: int = 18) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(pattern, limit)
    return out.getvalue()


def sink_profile(url: str) -> None:
    stream = create_stream(url, 2)
    put_concurrently(url, stream, event_records(BATCH * BATCHES))
    spark = build_session(ConsumerSettings(consumer_console=False))
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as work:
        settings = consumer_settings(
            stream,
            url,
            work,
            consumer_trigger="availableNow",
            consumer_max_records_per_trigger=BATCH,
        )
        sink = ProfiledSink(settings, profiler)
        # `consumer.app.start_query`'s query, with the profiled sink in place of BatchSink.
        query = (
            spark.readStream.format("kinesis")
            .options(**settings.source_options())
            .load()
            .writeStream.foreachBatch(sink)
            .option("checkpointLocation", f"{work}/checkpoints/events")
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        for progress in query.recentProgress:
            if progress["numInputRows"]:
                print(progress["batchId"], progress["numInputRows"], progress["durationMs"])
    print("sink seconds per batch:", [round(s, 2) for s in sink.seconds])
    print(_top(profiler, "sink.py|events.py|dataframe.py|readwriter.py|java_gateway.py"))
    spark.stop()


def source_profile(url: str) -> None:
    stream = create_stream(url, 4)
    put_concurrently(url, stream, event_records(SOURCE_RECORDS))
    options = {
        "streamName": stream,
        "endpointUrl": url,
        "region": "us-east-1",
        "startingPosition": "TRIM_HORIZON",
    }
    source = KinesisDataSource(options)
    reader = source.streamReader(source.schema())
    profiler = cProfile.Profile()
    profiler.enable()
    started = time.perf_counter()
    start = reader.initialOffset()
    end = reader.latestOffset(start, ReadAllAvailable())
    planned = time.perf_counter()
    rows = 0
    for partition in reader.partitions(start, end):
        for batch in reader.read(partition):
            rows += batch.num_rows
    read = time.perf_counter()
    profiler.disable()
    print(
        f"source alone: {rows} rows; planning {planned - started:.2f} s, "
        f"reading {read - planned:.2f} s (one thread, shards in turn)"
    )
    print(_top(profiler, "", 25))


def main() -> None:
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS", "--conf spark.ui.showConsoleProgress=false pyspark-shell"
    )
    with fresh_localstack() as url:
        source_profile(url)
        sink_profile(url)


if __name__ == "__main__":
    main()
