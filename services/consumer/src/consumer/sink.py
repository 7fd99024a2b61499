"""The durable sink: each micro-batch written once, whatever the restarts.

Spark's foreachBatch is at-least-once: after a crash the last batch runs again
with the same id, and (with `pyspark_kinesis`) the very same records. So every
output of batch N goes to its own `batch_id=N` directory, written in overwrite
mode: a rerun replaces a half-written attempt instead of adding to it. An event
resent by a producer (same `event_id`, arriving again) is dropped if an earlier
batch holds it; the lookup reads only events that arrived within
CONSUMER_DEDUP_WINDOW before the batch's first arrival, which Parquet's
statistics keep cheap, so a resend later than that window is kept twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from consumer.events import classify, dead_letters, good_events, message_counts
from consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)


class BatchSink:
    """`foreachBatch` target writing events, dead letters and per-type counts."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        classified = classify(batch, self.settings.consumer_max_event_bytes).persist()
        try:
            events = self._not_written_before(good_events(classified), batch_id).persist()
            rejected = dead_letters(classified)
            _write(events, self.settings.events_path, batch_id)
            _write(rejected, self.settings.dead_letters_path, batch_id)
            _write(message_counts(events), self.settings.counts_path, batch_id)
            log.info(
                "batch %d: %d events, %d dead letters", batch_id, events.count(), rejected.count()
            )
            if self.settings.consumer_console:
                self._print(events)
            events.unpersist()
        finally:
            classified.unpersist()

    def _not_written_before(self, events: DataFrame, batch_id: int) -> DataFrame:
        first_arrival = events.agg(F.min("arrival_time")).first()
        if first_arrival is None or first_arrival[0] is None:
            return events
        since = first_arrival[0] - timedelta(seconds=self.settings.dedup_window_seconds)
        try:
            written = events.sparkSession.read.parquet(self.settings.events_path)
        except AnalysisException:  # nothing written yet
            return events
        earlier = (
            written.where(F.col("batch_id") < batch_id)
            .where(F.col("arrival_time") >= since)
            .select("event_id")
        )
        return events.join(earlier, "event_id", "left_anti")

    def _print(self, events: DataFrame) -> None:
        # The tutorial's console view, plus running totals across all batches.
        events.select("event_time", "message_type", "count", "event_id").show(20, truncate=False)
        totals = (
            events.sparkSession.read.parquet(self.settings.counts_path)
            .groupBy("message_type")
            .agg(F.sum("events").alias("events"), F.sum("count_sum").alias("count_sum"))
            .orderBy("message_type")
        )
        totals.show(truncate=False)


def _write(frame: DataFrame, root: str, batch_id: int) -> None:
    frame.write.mode("overwrite").parquet(f"{root}/batch_id={batch_id}")
