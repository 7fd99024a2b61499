"""Reading one shard: the GetRecords loop, planning a batch's end, and reading a planned range.

Plain functions over a boto3 client, testable without Spark. The driver uses
`plan_shard` to find where a batch ends in a shard (a real sequence number);
the executors use `read_range` to return exactly the records up to that number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from pyspark_kinesis.client import KinesisSourceError, call, error_code
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after

log = logging.getLogger(__name__)

# How long a task waits for records the driver already saw before calling them lost.
VISIBILITY_PATIENCE_S = 60.0
_BYTES_PER_MB = 1024 * 1024


class DataLossError(KinesisSourceError):
    """Records the query must read are gone (past retention, or the shard was deleted)."""


@dataclass
class Fetch:
    """One GetRecords answer."""

    records: list[dict[str, Any]]
    ended: bool
    millis_behind_latest: int


@dataclass
class ShardCursor:
    """Walks a shard with GetRecords from a position, re-acquiring expired iterators."""

    client: Any
    options: KinesisOptions
    shard_id: str
    position: Position
    _iterator: str | None = None
    _last_call_s: float = 0.0
    _pause_s: float = 0.0
    exhausted: bool = field(default=False, init=False)

    def fetch(self, limit: int) -> Fetch:
        if self._iterator is None:
            self._iterator = self._open_iterator()
        self._pace()
        try:
            answer = call(
                self.options, self.client.get_records, ShardIterator=self._iterator, Limit=limit
            )
        except ClientError as error:
            if error_code(error) != "ExpiredIteratorException":
                raise
            log.info("iterator for %s expired; reopening at %s", self.shard_id, self.position)
            self._iterator = None
            return Fetch([], ended=False, millis_behind_latest=1)
        records = self._at_or_after_start(answer.get("Records", []))
        if records:
            self.position = after(records[-1]["SequenceNumber"])
        self._iterator = answer.get("NextShardIterator")
        self.exhausted = self._iterator is None
        self._throttle_bytes(sum(len(record["Data"]) for record in records))
        return Fetch(records, self.exhausted, int(answer.get("MillisBehindLatest", 0)))

    @property
    def next_iterator(self) -> str | None:
        return self._iterator

    def _at_or_after_start(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # boto3 sends an AT_TIMESTAMP start in whole seconds: drop what arrived
        # in that second before the instant, so LATEST means the query's start.
        if self.position.kind != "AT_TIMESTAMP":
            return records
        since = float(self.position.argument or 0)
        return [r for r in records if r["ApproximateArrivalTimestamp"] >= since]

    def _open_iterator(self) -> str:
        try:
            answer = call(
                self.options,
                self.client.get_shard_iterator,
                StreamName=self.options.stream_name,
                ShardId=self.shard_id,
                **self.position.iterator_request(),
            )
        except ClientError as error:
            if error_code(error) != "InvalidArgumentException":
                raise
            _report_loss(
                self.options,
                f"cannot start reading shard {self.shard_id} of {self.options.stream_name!r} "
                f"at {self.position} ({error}): the records may be past the stream's retention",
            )
            self.position = TRIM_HORIZON
            return self._open_iterator()
        return str(answer["ShardIterator"])

    def _pace(self) -> None:
        # minFetchPeriod and maxFetchRate keep several readers of a shard under
        # Kinesis' per-shard limits (5 reads/s, 2 MB/s) instead of being throttled.
        wait = max(self.options.min_fetch_period_s, self._pause_s)
        elapsed = time.monotonic() - self._last_call_s
        if wait > elapsed:
            time.sleep(wait - elapsed)
        self._last_call_s = time.monotonic()

    def _throttle_bytes(self, size: int) -> None:
        rate = self.options.max_fetch_rate_mb
        self._pause_s = size / (rate * _BYTES_PER_MB) if rate else 0.0


@dataclass(frozen=True)
class ShardPlan:
    """Where a batch ends in one shard, as found by the driver."""

    shard_id: str
    last_sequence_number: str | None
    records: int
    ended: bool
    millis_behind_latest: int
    # The iterator right after the batch's last record, when planning stopped on a
    # response boundary: the next plan of this shard starts with it, saving a call.
    next_iterator: str | None = None


def plan_shard(
    client: Any,
    options: KinesisOptions,
    shard_id: str,
    start: Position,
    budget: int | None,
    *,
    cutoff_s: float | None = None,
    iterator: str | None = None,
) -> ShardPlan:
    """Reads ahead from `start` to find the last record this batch takes from the shard.

    Stops at the budget, at the shard's current end, at the first record that
    arrived after `cutoff_s` (Trigger.AvailableNow), or after maxFetchDuration,
    whichever comes first. The records themselves are discarded. `iterator`, if
    given, must point at `start` (a previous plan's `next_iterator`).
    """
    cursor = ShardCursor(client, options, shard_id, start, _iterator=iterator)
    deadline = time.monotonic() + options.max_fetch_duration_s
    last: str | None = None
    taken = 0
    behind = 0
    while budget is None or taken < budget:
        room = options.max_records_per_fetch if budget is None else budget - taken
        fetch = cursor.fetch(min(room, options.max_records_per_fetch))
        behind = fetch.millis_behind_latest
        for record in fetch.records:
            if cutoff_s is not None and record["ApproximateArrivalTimestamp"] > cutoff_s:
                return ShardPlan(shard_id, last, taken, False, behind)
            last = record["SequenceNumber"]
            taken += 1
        if fetch.ended:
            return ShardPlan(shard_id, last, taken, True, 0)
        if (not fetch.records and behind == 0) or time.monotonic() > deadline:
            break
    return ShardPlan(shard_id, last, taken, False, behind, cursor.next_iterator)


def read_range(
    client: Any, options: KinesisOptions, shard_id: str, start: Position, last_sequence_number: str
) -> Iterator[list[dict[str, Any]]]:
    """Yields the records after `start` up to and including `last_sequence_number`, in order.

    The driver saw these records while planning, so they exist; a shard that
    seems to end early is waited for (eventual visibility), then reported.
    """
    cursor = ShardCursor(client, options, shard_id, start)
    last = int(last_sequence_number)
    patience_ends = time.monotonic() + VISIBILITY_PATIENCE_S
    while True:
        fetch = cursor.fetch(options.max_records_per_fetch)
        wanted = [record for record in fetch.records if int(record["SequenceNumber"]) <= last]
        if wanted:
            yield wanted
            patience_ends = time.monotonic() + VISIBILITY_PATIENCE_S
        if len(wanted) < len(fetch.records) or (
            wanted and int(wanted[-1]["SequenceNumber"]) == last
        ):
            return
        if fetch.records:
            continue
        if fetch.ended or time.monotonic() > patience_ends:
            _report_loss(
                options,
                f"shard {shard_id} of {options.stream_name!r} ended at {cursor.position} before "
                f"record {last_sequence_number} that this batch planned to read: the records were "
                "trimmed (retention) or the stream was recreated",
            )
            return
        # Caught up with what Kinesis shows so far; the planned records are due shortly.
        time.sleep(0.1)


def _report_loss(options: KinesisOptions, message: str) -> None:
    if options.fail_on_data_loss:
        raise DataLossError(f"{message}. Set failOnDataLoss=false to skip past lost records.")
    log.warning("data loss, continuing because failOnDataLoss=false: %s", message)
