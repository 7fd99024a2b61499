"""Writing records to a stream with PutRecords: full requests, refused entries resent.

Plain functions and classes over a botocore client, testable without Spark.
A task's records are routed by partition key to `concurrentRequests` lanes; a
lane packs its records into requests of at most 500 records and 5 MiB (or
the sink's lower limits) and has one request in flight at a time, so the
lanes write in parallel while one key's records are sent in the order they
came. Entries Kinesis refuses (throttling, internal failures) are resent, with
jittered exponential backoff, until `writeRetryDeadline`; then the write
fails with `RecordsNotWrittenError`, which says how many records were not
written. Nothing is dropped silently. A resent record lands after the ones
Kinesis accepted from the same request, so per-key order holds except across
a refusal.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pyspark_kinesis.aggregation import AGGREGATE_MAX_BYTES, AggregateBuilder
from pyspark_kinesis.client import KinesisSourceError, call
from pyspark_kinesis.extra_options import SinkOptions

log = logging.getLogger(__name__)

# A single Kinesis record, data plus partition key, is at most 1 MiB (API limit).
MAX_RECORD_BYTES = 1024 * 1024
# Entry errors that a later attempt can get past; any other is reported at once.
RETRYABLE_ENTRY_ERRORS = frozenset(
    {"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"}
)
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 2.0


class RecordsNotWrittenError(KinesisSourceError):
    """Some records of a write were not written; the message says how many and why."""


@dataclass(frozen=True)
class SinkRecord:
    """One Kinesis record to put; `user_records` > 1 for a KPL aggregate."""

    data: bytes
    partition_key: str
    explicit_hash_key: str | None = None
    user_records: int = 1

    @property
    def size(self) -> int:
        # What Kinesis counts against its record and request limits.
        return len(self.data) + len(self.partition_key.encode("utf-8"))

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"Data": self.data, "PartitionKey": self.partition_key}
        if self.explicit_hash_key is not None:
            entry["ExplicitHashKey"] = self.explicit_hash_key
        return entry


def checked(record: SinkRecord) -> SinkRecord:
    """The record, if Kinesis can take it; else an error naming the limit."""
    if not 1 <= len(record.partition_key) <= 256:
        raise RecordsNotWrittenError(
            f"partitionKey {record.partition_key[:40]!r} must be 1 to 256 characters long"
        )
    if record.size > MAX_RECORD_BYTES:
        raise RecordsNotWrittenError(
            f"a record of {record.size} bytes (data plus partitionKey, key "
            f"{record.partition_key[:40]!r}) is over Kinesis' 1 MiB limit: split it"
        )
    return record


def backoff_s(attempt: int) -> float:
    """Full jitter: a random pause up to an exponentially growing cap."""
    return random.uniform(0, min(_MAX_BACKOFF_S, _FIRST_BACKOFF_S * 2**attempt))  # noqa: S311 (jitter, not secrecy)


def lane_of(partition_key: str, lanes: int) -> int:
    # Stable across processes (unlike hash()), so a retried task routes alike.
    return zlib.crc32(partition_key.encode("utf-8")) % lanes


class RequestPacker:
    """Packs records, in order, into PutRecords requests within the count and byte limits."""

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._records: list[SinkRecord] = []
        self._bytes = 0

    def add(self, record: SinkRecord) -> list[SinkRecord] | None:
        """Adds `record`; returns the request it closed, if it did not fit in it."""
        full = None
        if self._records and (
            len(self._records) >= self.max_records or self._bytes + record.size > self.max_bytes
        ):
            full = self.flush()
        self._records.append(record)
        self._bytes += record.size
        return full

    def flush(self) -> list[SinkRecord]:
        records, self._records, self._bytes = self._records, [], 0
        return records

    @property
    def user_records(self) -> int:
        return sum(record.user_records for record in self._records)


class Aggregator:
    """Packs user records into KPL aggregates of at most `AGGREGATE_MAX_BYTES`."""

    def __init__(self) -> None:
        self._builder = AggregateBuilder()

    def add(self, record: SinkRecord) -> SinkRecord | None:
        """Adds `record`; returns the aggregate it closed, if it did not fit in it."""
        full = None
        key, hash_key = record.partition_key, record.explicit_hash_key
        if self._builder.count and (
            self._builder.size_with(record.data, key, hash_key) > AGGREGATE_MAX_BYTES
        ):
            full = self.flush()
        self._builder.add(record.data, key, hash_key)
        return full

    def flush(self) -> SinkRecord | None:
        builder, self._builder = self._builder, AggregateBuilder()
        if not builder.count:
            return None
        assert builder.partition_key is not None
        aggregate = SinkRecord(
            builder.build(), builder.partition_key, builder.explicit_hash_key, builder.count
        )
        return checked(aggregate)

    @property
    def user_records(self) -> int:
        return self._builder.count


@dataclass
class RequestRefusedError(Exception):
    """A request's records that were still not written when it gave up, and why."""

    refused: int
    reason: str


def put_request(client: Any, options: SinkOptions, records: list[SinkRecord]) -> int:
    """Puts `records` in one PutRecords call, resending refused entries; returns the resends.

    Raises RequestRefusedError, counting user records, when entries are still refused
    at `retry_deadline_s` after the first attempt, are refused for a reason a resend
    cannot fix, or the call itself fails (after the client's own retries).
    """
    deadline = time.monotonic() + options.retry_deadline_s
    pending, attempt, resent = records, 0, 0
    while True:
        try:
            answer = call(
                options.connection,
                client.put_records,
                StreamName=options.connection.stream_name,
                Records=[record.entry() for record in pending],
            )
        except (KinesisSourceError, ClientError) as error:
            users = sum(record.user_records for record in pending)
            raise RequestRefusedError(users, f"got no answer from PutRecords ({error})") from error
        refused = [
            (record, result["ErrorCode"])
            for record, result in zip(pending, answer["Records"], strict=True)
            if result.get("ErrorCode")
        ]
        if not refused:
            return resent
        pending = [record for record, _ in refused]
        codes = ", ".join(sorted({code for _, code in refused}))
        refused_users = sum(record.user_records for record in pending)
        if not {code for _, code in refused} <= RETRYABLE_ENTRY_ERRORS:
            raise RequestRefusedError(refused_users, f"were refused ({codes}), for good")
        pause = backoff_s(attempt)
        if time.monotonic() + pause > deadline:
            raise RequestRefusedError(
                refused_users,
                f"were refused ({codes}) until writeRetryDeadline "
                f"({options.retry_deadline_s:g}s) ran out",
            )
        log.debug("Kinesis refused %d entries (%s); resending", len(pending), codes)
        time.sleep(pause)
        attempt += 1
        resent += len(pending)


@dataclass
class WriteSummary:
    """What one task wrote: user records, Kinesis records, requests and resent entries."""

    user_records: int = 0
    kinesis_records: int = 0
    requests: int = 0
    resent: int = 0


class StreamWriter:
    """Writes one task's records to the stream through parallel lanes (see the module doc)."""

    def __init__(self, client: Any, options: SinkOptions) -> None:
        self.client = client
        self.options = options
        lanes = options.concurrent_requests
        self._packers = [
            RequestPacker(options.max_records_per_request, options.max_bytes_per_request)
            for _ in range(lanes)
        ]
        self._aggregators = [Aggregator() for _ in range(lanes)] if options.aggregate else None
        self._in_flight: list[Future[int] | None] = [None] * lanes
        self._in_flight_users = [0] * lanes
        self.summary = WriteSummary()
        self._unsent_users = 0  # in requests never sent, once a refusal stopped the write

    def write(self, records: Iterable[SinkRecord]) -> WriteSummary:
        """Writes every record, or raises RecordsNotWrittenError saying how many were not."""
        source = iter(records)
        with ThreadPoolExecutor(max_workers=len(self._packers)) as pool:
            try:
                for record in source:
                    self._add(pool, record)
                for lane in range(len(self._packers)):
                    self._flush_lane(pool, lane)
                for lane in range(len(self._packers)):
                    self._settle(lane)
            except RequestRefusedError as refusal:
                raise self._not_written(refusal, source) from None
        return self.summary

    def _add(self, pool: ThreadPoolExecutor, record: SinkRecord) -> None:
        lane = lane_of(record.partition_key, len(self._packers))
        if self._aggregators is not None:
            aggregate = self._aggregators[lane].add(checked(record))
            if aggregate is None:
                return
            record = aggregate
        full = self._packers[lane].add(checked(record))
        if full:
            self._send(pool, lane, full)

    def _flush_lane(self, pool: ThreadPoolExecutor, lane: int) -> None:
        if self._aggregators is not None:
            aggregate = self._aggregators[lane].flush()
            if aggregate is not None:
                full = self._packers[lane].add(aggregate)
                if full:
                    self._send(pool, lane, full)
        rest = self._packers[lane].flush()
        if rest:
            self._send(pool, lane, rest)

    def _send(self, pool: ThreadPoolExecutor, lane: int, request: list[SinkRecord]) -> None:
        try:
            self._settle(lane)  # one request per lane at a time: its keys stay in order
        except RequestRefusedError:
            self._unsent_users += sum(record.user_records for record in request)
            raise
        self._in_flight[lane] = pool.submit(put_request, self.client, self.options, request)
        self._in_flight_users[lane] = sum(record.user_records for record in request)
        self.summary.requests += 1
        self.summary.kinesis_records += len(request)

    def _settle(self, lane: int) -> None:
        future = self._in_flight[lane]
        if future is None:
            return
        self._in_flight[lane] = None
        try:
            self.summary.resent += future.result()
        except RequestRefusedError as refusal:
            self.summary.user_records += self._in_flight_users[lane] - refusal.refused
            raise
        self.summary.user_records += self._in_flight_users[lane]

    def _not_written(self, refusal: RequestRefusedError, rest: Iterator[SinkRecord]) -> Exception:
        settled_refused = refusal.refused
        for lane in range(len(self._packers)):
            try:
                self._settle(lane)
            except RequestRefusedError as other:
                settled_refused += other.refused
        unsent = self._unsent_users + sum(record.user_records for record in rest)
        unsent += sum(packer.user_records for packer in self._packers)
        unsent += sum(aggregator.user_records for aggregator in self._aggregators or [])
        written = self.summary.user_records
        missing = settled_refused + unsent
        return RecordsNotWrittenError(
            f"{missing} of this task's {written + missing} records were not written to stream "
            f"{self.options.connection.stream_name!r}: {settled_refused} {refusal.reason}, and "
            f"{unsent} were not sent after that. The task fails so that Spark retries it "
            "(records written before may be written again); raise writeRetryDeadline, lower "
            "concurrentRequests, or add shards if Kinesis keeps refusing."
        )
