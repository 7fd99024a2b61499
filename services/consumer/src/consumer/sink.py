"""The durable sink: each micro-batch written once, in one Spark job, whatever the restarts.

The query hands `BatchSink` each batch already deduplicated by Spark's state
(`events.first_copies`). One job (`mapInArrow` + `collect`) has every task
write its rows, events and dead letters apart, under hidden in-flight names,
and return a summary. The driver then publishes the batch (renames the files
to their `part-<batch>-<partition>.parquet` names), records it in the ledger
(only then is it whole to readers that honour the ledger: `layout.visible_files`)
and prints the console view from the summaries. Nothing reads the sink back,
so the sink costs the same on the first day and the hundredth (the deduplication
state before it grows to a window's worth of keys, then stays flat).

Spark's foreachBatch is at-least-once: after a crash the last batch runs again
with the same id, the same records (`pyspark_kinesis`) and the same state, so
its tasks write the same names with the same rows and publishing replaces
them; the ledger counts a batch once. Hours that are over are compacted in
the background (`compaction.compact_hour`).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from pyspark.sql import DataFrame

from consumer import fs
from consumer.compaction import compact_hour
from consumer.console import batch_view
from consumer.layout import hour_folder, in_flight_name, part_name
from consumer.ledger import Ledger, Totals, checkpoint_id, owned_ledger, save_ledger
from consumer.settings import ConsumerSettings
from consumer.writing import SUMMARY_DDL, BatchPlan, task_writer

log = logging.getLogger(__name__)

CONSOLE_ROWS = 20


class BatchSink:
    """`foreachBatch` target: one Spark job per batch, then publish, count and show."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self.output_path = settings.consumer_output_path.rstrip("/")
        self.checkpoint_location = settings.query_checkpoint_path
        # Read by the main thread when it stops the query: which batch was cut short.
        self.in_flight: int | None = None
        self.last_written: int | None = None
        self._ledger: Ledger | None = None
        self._compactor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compaction")
        self._compacting: dict[str, Future[None]] = {}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self.in_flight = batch_id
        plan = BatchPlan(
            self.output_path, batch_id, CONSOLE_ROWS if self.settings.consumer_console else 0
        )
        rows = batch.mapInArrow(task_writer(plan), SUMMARY_DDL).collect()
        summaries = [json.loads(row.summary) for row in rows]
        hours = self._publish(batch_id, summaries)
        totals = _batch_totals(summaries)
        ledger = self._ledger_after(batch_id, totals, hours)
        log.info(
            "batch %d: %d events, %d dead letters", batch_id, totals.events, totals.dead_letters
        )
        if self.settings.consumer_console:
            sample = [row for s in summaries for row in s["sample"]][:CONSOLE_ROWS]
            print(batch_view(batch_id, sample, totals.events, ledger.totals), flush=True)
        self._compact_closed_hours(ledger)
        self.in_flight, self.last_written = None, batch_id

    def close(self) -> None:
        """Waits for a compaction under way (it is safe to cut, but cleaner to finish)."""
        self._compactor.shutdown(wait=True)

    def _publish(self, batch_id: int, summaries: list[dict[str, Any]]) -> set[str]:
        hours: set[str] = set()
        for summary in summaries:
            for table, hour in summary["files"].items():
                folder = hour_folder(f"{self.output_path}/{table}", hour)
                partition = summary["partition"]
                fs.move(
                    f"{folder}/{in_flight_name(batch_id, partition)}",
                    f"{folder}/{part_name(batch_id, partition)}",
                )
                hours.add(hour)
        return hours

    def _ledger_after(self, batch_id: int, totals: Totals, hours: set[str]) -> Ledger:
        if self._ledger is None:
            self._ledger = owned_ledger(self.output_path, self.checkpoint_location) or Ledger(
                query_id=str(checkpoint_id(self.checkpoint_location))
            )
        compacted = {hour for hour, done in self._compacting.items() if done.done()}
        for hour in compacted:
            self._compacting.pop(hour).result()  # a failed compaction stops the query
        ledger = self._ledger.with_batch(batch_id, totals, hours)
        still_open = tuple(hour for hour in ledger.open_hours if hour not in compacted)
        ledger = replace(ledger, open_hours=still_open)
        save_ledger(self.output_path, ledger)
        self._ledger = ledger
        return ledger

    def _compact_closed_hours(self, ledger: Ledger) -> None:
        if not ledger.open_hours:
            return
        newest = ledger.open_hours[-1]
        for hour in ledger.open_hours:
            if hour < newest and hour not in self._compacting:
                self._compacting[hour] = self._compactor.submit(
                    compact_hour, self.output_path, hour
                )


def _batch_totals(summaries: list[dict[str, Any]]) -> Totals:
    totals = Totals()
    for summary in summaries:
        totals = totals.plus(Totals(summary["events"], summary["dead_letters"], summary["counts"]))
    return totals
