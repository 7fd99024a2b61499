"""Reading one shard: the GetRecords loop, a batch's records, and a look ahead for planning.

Plain functions over a boto3 client, testable without Spark. The driver uses
`peek_shard` to see whether a shard has records for the next batch; tasks use
`TakeRead` to read what a batch takes, or `read_range` to read again up to an
end an earlier read found. `TakeRead` is one `TakeReader`, the interface every
way of reading a shard's take implements (see `take_readers`).

Each record read carries its rows under `ROWS`: its user records after KPL
de-aggregation, less those its shard position says were read already. Limits
count rows, so a batch may end inside an aggregate (see `positions`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field
from itertools import takewhile
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from pyspark_kinesis.aggregation import UserRecord, user_records
from pyspark_kinesis.client import KinesisSourceError, error_code, read_call
from pyspark_kinesis.ends import ShardEnd
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after, skips
from pyspark_kinesis.shards import Shard, Take

log = logging.getLogger(__name__)

# The key under which a record read carries its rows (a list of UserRecord).
ROWS = "Rows"
# How long a task waits for records an earlier read saw before calling them lost.
VISIBILITY_PATIENCE_S = 60.0
# AWS's read rate per shard, the default pace of one reader when maxFetchRate is unset.
DEFAULT_FETCH_RATE_MB = 2.0
_BYTES_PER_MB = 1024 * 1024


class DataLossError(KinesisSourceError):
    """Records the query must read are gone (past retention, or the shard was deleted)."""


@dataclass
class Fetch:
    """One GetRecords answer."""

    records: list[dict[str, Any]]
    ended: bool
    millis_behind_latest: int
    # Records Kinesis returned from before an AT_TIMESTAMP start, left out of `records`.
    skipped: int = 0


@dataclass
class ShardCursor:
    """Walks a shard with GetRecords from a position, re-acquiring expired iterators.

    Its calls are paced (`next_call_s`) so that readers of a shard taking turns
    (the driver's peek, then a task, then the next peek) stay inside Kinesis'
    per-shard limits together: each starts no sooner than `not_before_s`, the
    previous reader's `next_call_s` (wall-clock seconds, as they may run in
    different processes).
    """

    client: Any
    options: KinesisOptions
    shard_id: str
    position: Position
    _iterator: str | None = None
    not_before_s: float = 0.0
    _last_call_s: float = 0.0
    _pause_s: float = 0.0
    exhausted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # It reads options.stream_name: with several streams, that is only the first.
        self.options.require_one_stream("a shard's reader")

    def fetch(self, limit: int) -> Fetch:
        if self._iterator is None:
            self._iterator = self._open_iterator()
        self._pace()
        try:
            answer = read_call(
                self.options,
                self._where,
                self.client.get_records,
                ShardIterator=self._iterator,
                Limit=limit,
            )
        except ClientError as error:
            if error_code(error) != "ExpiredIteratorException":
                raise
            log.info("iterator for %s expired; reopening at %s", self.shard_id, self.position)
            self._iterator = None
            return Fetch([], ended=False, millis_behind_latest=1)
        returned = answer.get("Records", [])
        records = at_or_after(returned, self.position)
        with_rows(records, self.position)
        if records:
            self.position = after(records[-1]["SequenceNumber"])
        self._iterator = answer.get("NextShardIterator")
        self.exhausted = self._iterator is None
        self._throttle_bytes(sum(len(record["Data"]) for record in records))
        behind = int(answer.get("MillisBehindLatest", 0))
        return Fetch(records, self.exhausted, behind, skipped=len(returned) - len(records))

    @property
    def _where(self) -> str:
        return f"shard {self.shard_id} of stream {self.options.stream_name!r}"

    @property
    def next_iterator(self) -> str | None:
        return self._iterator

    def _open_iterator(self) -> str:
        try:
            answer = read_call(
                self.options,
                self._where,
                self.client.get_shard_iterator,
                StreamName=self.options.stream_name,
                ShardId=self.shard_id,
                **self.position.iterator_request(),
            )
        except ClientError as error:
            if error_code(error) != "InvalidArgumentException":
                raise
            report_lost_start(self.options, self.shard_id, self.position, error)
            self.position = TRIM_HORIZON
            return self._open_iterator()
        return str(answer["ShardIterator"])

    @property
    def next_call_s(self) -> float:
        """The wall-clock time before which this shard should not be read again."""
        if not self._last_call_s:
            return self.not_before_s
        return self._last_call_s + max(self.options.min_fetch_period_s, self._pause_s)

    def _pace(self) -> None:
        # minFetchPeriod and maxFetchRate keep the shard's readers under Kinesis'
        # per-shard limits (5 reads/s, 2 MB/s) instead of being throttled.
        wait = self.next_call_s - time.time()
        if wait > 0:
            time.sleep(wait)
        self._last_call_s = time.time()

    def _throttle_bytes(self, size: int) -> None:
        rate = self.options.max_fetch_rate_mb or DEFAULT_FETCH_RATE_MB
        self._pause_s = size / (rate * _BYTES_PER_MB)


@dataclass(eq=False)
class TakeReader(ABC):
    """A task's read of what `take` covers in one shard after `start`: iterated, it yields
    the records in pages (each record with its rows, `ROWS`); then `end` says where they end.

    Every way of reading a shard is one: `TakeRead` (GetRecords) and
    `subscriptions.SubscribedTake` (enhanced fan-out), picked for a query by
    `take_readers.take_reader_for`. All return the same records for the same take;
    `not_before_s` is when the shard's previous reader lets this one call Kinesis.
    """

    client: Any
    options: KinesisOptions
    shard_id: str
    start: Position
    take: Take
    _: KW_ONLY
    not_before_s: float = 0.0
    end: ShardEnd | None = field(default=None, init=False)

    @abstractmethod
    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        """The records, a page at a time; `end` is set once they were all read."""

    def read_to_end(self) -> ShardEnd:
        """Reads the records only to learn where they end."""
        for _ in self:
            pass
        assert self.end is not None
        return self.end


@dataclass(eq=False)
class TakeRead(TakeReader):
    """The records `take` covers in a shard after `start`, read with GetRecords.

    Reading stops at the first record that arrived after `take.until_s`, at
    `take.limit` records, at the end of a closed shard, or where the shard's
    records end for now. The last case is the same on a later read too: a
    record added afterwards arrives after `until_s`, which was fixed earlier.
    """

    def __post_init__(self) -> None:
        self._cursor = ShardCursor(
            self.client, self.options, self.shard_id, self.start, not_before_s=self.not_before_s
        )

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        limit = self.take.limit
        last: Position | None = None
        taken = 0
        ended = False
        next_arrival_s: float | None = None
        behind = 0
        while limit is None or taken < limit:
            # Each record holds at least one row: never ask for more records than rows wanted.
            most = self.options.max_records_per_fetch
            room = most if limit is None else min(limit - taken, most)
            fetch = self._cursor.fetch(room)
            page = take_from_page(
                fetch.records, self.take.until_s, None if limit is None else limit - taken
            )
            next_arrival_s, behind = page.next_arrival_s, fetch.millis_behind_latest
            if page.kept:
                last = page.end
                taken += page.rows
                yield page.kept
            if page.last:
                break
            if fetch.ended:
                ended = True
                break
            if fetch.millis_behind_latest == 0 and len(fetch.records) < room:
                break
        self.end = ShardEnd(
            last or self.start, ended, taken, self._cursor.next_call_s, next_arrival_s, behind
        )


@dataclass(frozen=True)
class Peek:
    """A look at the first record after a shard's position, as a batch being planned sees it."""

    has_records: bool
    first_arrival_s: float | None
    ended: bool
    millis_behind_latest: int
    # Still at the position (nothing was taken), so the next look can use it.
    iterator: str | None
    next_read_s: float = 0.0


def peek_shard(
    client: Any,
    options: KinesisOptions,
    shard_id: str,
    position: Position,
    *,
    until_s: float,
    iterator: str | None = None,
    not_before_s: float = 0.0,
) -> Peek:
    """Whether a record that arrived by `until_s` waits after `position`.

    One GetRecords call, or more while Kinesis answers empty pages with
    `MillisBehindLatest` > 0 (records wait further on, as AWS documents): an
    empty look must mean an empty shard, or Trigger.AvailableNow would stop
    before its backlog. `iterator`, if given, must point at `position` (an
    earlier Peek's `iterator`).
    """
    cursor = ShardCursor(
        client, options, shard_id, position, _iterator=iterator, not_before_s=not_before_s
    )
    fetch = cursor.fetch(1)
    while not fetch.records and not fetch.ended and (fetch.skipped or fetch.millis_behind_latest):
        # An AT_TIMESTAMP start lands on a whole second: step over its earlier records.
        fetch = cursor.fetch(options.max_records_per_fetch if fetch.skipped else 1)
    first = fetch.records[0]["ApproximateArrivalTimestamp"] if fetch.records else None
    return Peek(
        has_records=first is not None and first <= until_s,
        first_arrival_s=first,
        ended=fetch.ended and not fetch.records,
        millis_behind_latest=fetch.millis_behind_latest,
        iterator=None if fetch.records else cursor.next_iterator,
        next_read_s=cursor.next_call_s,
    )


def peek_from_end(end: ShardEnd, until_s: float) -> Peek | None:
    """What a look at the shard after `end` would see, if the read that ended there saw it.

    A busy shard's read stops before records that arrived after its batch was
    planned; the first of them is the first record after `end`, as a peek
    would find it. None when the read saw no record after its end: then only
    a look can tell.
    """
    if end.next_arrival_s is None:
        return None
    return Peek(
        has_records=end.next_arrival_s <= until_s,
        first_arrival_s=end.next_arrival_s,
        ended=False,
        millis_behind_latest=end.millis_behind_latest,
        iterator=None,
        next_read_s=end.next_read_s,
    )


def read_range(
    client: Any,
    options: KinesisOptions,
    shard_id: str,
    start: Position,
    last_sequence_number: str,
    *,
    last_sub_sequence_number: int | None = None,
    not_before_s: float = 0.0,
) -> Iterator[list[dict[str, Any]]]:
    """Yields the records after `start` up to and including `last_sequence_number`, in order.

    With `last_sub_sequence_number`, the last record's rows end at that user record.
    An earlier read of the same batch saw these records, so they exist; a shard
    that seems to end early is waited for (eventual visibility), then reported.
    """
    cursor = ShardCursor(client, options, shard_id, start, not_before_s=not_before_s)
    last = int(last_sequence_number)
    patience_ends = time.monotonic() + VISIBILITY_PATIENCE_S
    while True:
        fetch = cursor.fetch(options.max_records_per_fetch)
        wanted = [record for record in fetch.records if int(record["SequenceNumber"]) <= last]
        if wanted and last_sub_sequence_number is not None:
            _end_rows_at(wanted, last_sequence_number, last_sub_sequence_number)
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
                f"record {last_sequence_number} that this batch read before: the records were "
                "trimmed (retention) or the stream was recreated",
            )
            return
        # Caught up with what Kinesis shows so far; the planned records are due shortly.
        time.sleep(0.1)


def listed_shards(client: Any, options: KinesisOptions) -> list[Shard]:
    """The shards of `options.stream_name` ListShards shows (open, and closed in retention)."""
    where = f"stream {options.stream_name!r}"
    pages: list[dict[str, Any]] = [
        read_call(options, where, client.list_shards, StreamName=options.stream_name)
    ]
    while pages[-1].get("NextToken"):
        pages.append(
            read_call(options, where, client.list_shards, NextToken=pages[-1]["NextToken"])
        )
    return [Shard.from_listing(entry) for page in pages for entry in page["Shards"]]


def missing_streams(client: Any, options: KinesisOptions) -> list[str]:
    """The streams of `options.stream_names` that Kinesis does not know, in order."""
    missing = []
    for stream_name in options.stream_names:
        try:
            client.describe_stream_summary(StreamName=stream_name)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
            missing.append(stream_name)
    return missing


def at_or_after(records: list[dict[str, Any]], start: Position) -> list[dict[str, Any]]:
    """`records` read from `start`, less those that arrived before an AT_TIMESTAMP start.

    botocore sends an AT_TIMESTAMP start in whole seconds: what arrived in that
    second before the instant is dropped, so LATEST means the query's start.
    """
    if start.kind != "AT_TIMESTAMP":
        return records
    since = float(start.argument or 0)
    return [r for r in records if r["ApproximateArrivalTimestamp"] >= since]


def with_rows(records: list[dict[str, Any]], position: Position) -> None:
    """Gives each record read from `position` its rows (`ROWS`), less those read already."""
    for record in records:
        rows = list(user_records(record["Data"], record["PartitionKey"]))
        record[ROWS] = rows[skips(position, record["SequenceNumber"]) :]


class PageTake(NamedTuple):
    """What a take keeps of one page of records, and whether the take ends there."""

    kept: list[dict[str, Any]]
    end: Position | None
    rows: int
    # The arrival time of the first record of the page left behind, if any.
    next_arrival_s: float | None
    # The take ends in this page: its row limit or a later arrival cut it.
    last: bool


def take_from_page(page: list[dict[str, Any]], until_s: float, rows_left: int | None) -> PageTake:
    """The leading records of `page` (with their rows) that arrived by `until_s`, holding
    at most `rows_left` rows."""
    wanted = list(takewhile(lambda record: record["ApproximateArrivalTimestamp"] <= until_s, page))
    kept, end, rows = first_rows(wanted, rows_left)
    cut = len(kept) < len(wanted) or (end is not None and end.sub_sequence_number is not None)
    return PageTake(kept, end, rows, first_left(page, kept, end), cut or len(wanted) < len(page))


def first_rows(
    records: list[dict[str, Any]], limit: int | None
) -> tuple[list[dict[str, Any]], Position | None, int]:
    """The leading records holding at most `limit` rows, where they end, and their row count.

    A record whose rows do not all fit is cut: it is kept with the rows that fit,
    and the end is after its last row kept (inside the aggregate).
    """
    kept: list[dict[str, Any]] = []
    end: Position | None = None
    count = 0
    for record in records:
        rows: list[UserRecord] = record[ROWS]
        if limit is not None and count + len(rows) > limit:
            fitting = rows[: limit - count]
            if fitting:
                kept.append({**record, ROWS: fitting})
                end = after(record["SequenceNumber"], fitting[-1].sub_sequence_number)
                count += len(fitting)
            break
        kept.append(record)
        end = after(record["SequenceNumber"])
        count += len(rows)
    return kept, end, count


def first_left(
    page: list[dict[str, Any]], kept: list[dict[str, Any]], end: Position | None
) -> float | None:
    """The arrival time of the first record of `page` that a read keeping `kept` leaves behind.

    `kept` is a prefix of `page`; its last record may have been cut inside an
    aggregate (`end` then has a sub-sequence number), and its other rows are
    left.
    """
    cut = bool(kept) and end is not None and end.sub_sequence_number is not None
    left = page[len(kept) - 1 if cut else len(kept) :]
    return float(left[0]["ApproximateArrivalTimestamp"]) if left else None


def _end_rows_at(records: list[dict[str, Any]], sequence_number: str, sub_sequence: int) -> None:
    last = records[-1]
    if last["SequenceNumber"] == sequence_number:
        last[ROWS] = [row for row in last[ROWS] if row.sub_sequence_number <= sub_sequence]


def report_lost_start(
    options: KinesisOptions, shard_id: str, position: Position, error: Exception
) -> None:
    """A start at `position` that Kinesis refused (InvalidArgumentException, as for a
    sequence number past the stream's retention): DataLossError, or with
    failOnDataLoss=false a warning, the caller then reading from TRIM_HORIZON."""
    _report_loss(
        options,
        f"cannot start reading shard {shard_id} of {options.stream_name!r} at {position} "
        f"({error}): the records may be past the stream's retention; what lay between there "
        "and the shard's oldest record (TRIM_HORIZON) is lost",
    )


def _report_loss(options: KinesisOptions, message: str) -> None:
    if options.fail_on_data_loss:
        raise DataLossError(f"{message}. Set failOnDataLoss=false to skip past lost records.")
    log.warning("data loss, continuing because failOnDataLoss=false: %s", message)
