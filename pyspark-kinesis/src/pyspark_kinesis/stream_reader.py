"""The stream reader (`spark.readStream.format("kinesis")`): plans batches on the driver,
its tasks read them on the executors.

Where each method runs
----------------------
Spark calls the planning methods (`initialOffset`, `getDefaultReadLimit`,
`prepareForTriggerAvailableNow`, `latestOffset`, `reportLatestOffset`,
`partitions`, `commit`; `stop`: see there) on the driver, in one Python process per
source of a running query (the driver's Python planner process, pyspark's
`python_streaming_source_runner`), which keeps this reader and its state for
the whole run. `read` runs on the executors, in their Python workers, on a
pickled copy of a reader that Spark makes on the driver (in another Python
process) and ships with the tasks: the driver's state stays behind
(`__getstate__`), and what a task learns reaches the driver through the
batch-end notes (`ends`).

Several streams
---------------
A query may read several streams (`streamName` a comma-separated list): each
shard is a `StreamShard` (stream, shard id) in one plan, the offset holds one
entry per stream and shard (`pyspark_kinesis.shards` owns its format), and
reading a shard uses its stream's own options (`KinesisOptions.for_stream`),
so everything below holds per shard of each stream.

How a batch replays exactly, reading each record once
-----------------------------------------------------
A Kinesis batch's end is not known before its records are read, yet Spark
logs a batch's end offset *before* running it, and re-runs an unfinished batch
from the logged (start, end) after a restart. So the end offset the driver
logs says, per shard, where the batch starts and what it takes (`Take`): the
records that arrived by the planning instant, at most the batch's share of
`maxRecordsPerTrigger`. Both bounds are fixed at planning, so any read of the
batch returns the same records; the driver only looks at one record per shard
to see whether there is anything to take (`peek_shard`, which looks past empty
pages that say records wait further on, so Trigger.AvailableNow never mistakes
them for a drained shard). A busy shard needs no look: the task that read its
last batch stopped before the records that arrived after that batch was
planned, and its note says when the first of them arrived (`planning.peeks_spared`),
so a shard that always has records is read once per batch, by its task.

The task that reads a shard's batch notes where it ended in a small document
under `metadataPath` (`ends`, the AWS connector's design): a file in a directory
every node sees, or an object under an `s3://` prefix. Once: a later attempt
of the same task that read to another end fails, and its retry reads exactly
to the note. The driver starts the next batch there, a retried or replayed
task reads exactly to it, and `commit` removes the notes of the batch before
the one Spark committed. Without a note (executors on other machines and no
`metadataPath` they all reach) the driver reads the batch's records again to find the
same end. That is exact only if the task saw every record the driver sees, so
until the driver has seen a note, a batch takes only records that arrived
VISIBILITY_MARGIN_S (2 s) before it was planned (`planning.planning_instant`).

Tasks: a batch's shards with records are read `shardsPerTask` to a task
(`partitions.shard_groups`), the shards of a task at once, each in a thread of its own
with its own pace, note and end (`task_reading`), so a task takes about as
long as its slowest shard. A batch runs in one wave of tasks while its shards
with records are at most `shardsPerTask` per task slot.

Enhanced fan-out (`consumerMode=efo`, `kinesis.consumerType=SubscribeToShard`):
planning, notes and replays are the same; a task takes its `Take` from its
worker's subscription to the shard (`subscriptions.SubscribedTake`, picked by
`take_readers.take_reader_for`), which keeps
the records past the planned end for the next batch, and the query's consumer
is registered when the query first plans (`consumers`).

Pacing: the driver's look at a shard and the task reading it take turns, each
starting when the previous reader's pace allows (wall-clock times carried in
the partition and in the note): `minFetchPeriod` (default 250 ms) between
GetRecords calls and `maxFetchRate` (default 2 MB/s), inside AWS's 5 calls/s
and 2 MB/s per shard when the query is the shard's only reader. A batch takes
at most DEFAULT_MAX_RECORDS_PER_SHARD (100,000) records per shard unless
`maxRecordsPerShard` says otherwise, so the first batch after an outage is
bounded too. The remainder of `maxRecordsPerTrigger` goes to each shard in
turn, the last shard served kept in the offset (`planning.takes_from_peeks`).

Limits: the bound is Kinesis' approximate arrival time against the driver's
clock, so clocks should agree (NTP). A record Kinesis shows later than its
arrival time falls to the next batch when notes are seen; without notes it is
read in its batch if Kinesis shows it within 2 s, and one shown later still
can be skipped: on clusters, set `metadataPath` to a directory every node
shares or to an `s3://` prefix. After a
restart, the notes of the batch before the first commit stay behind.
`maxRecordsPerTrigger` and the per-shard limit count rows (user records, after
KPL de-aggregation), so a batch may end inside an aggregate.
`maxRecordsPerTrigger` is shared over all shards with records of all streams;
the per-shard limit (`maxRecordsPerShard`) holds for each shard of each stream.
`LATEST` is the arrival time at which the query first plans, so a record whose
approximate arrival time is skewed across that instant may fall either side;
and as Spark logs no start offset for the first batch, a query that dies
before its first batch commits
pins a new instant on restart (its sink never committed that batch, so nothing
is doubled or lost in it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from pyspark.sql.datasource import DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)

from pyspark_kinesis.client import KinesisSourceError, make_client
from pyspark_kinesis.consumers import at_query_stop, prepare_for_stop, register_consumers
from pyspark_kinesis.ends import ShardEnd, end_store
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.partitions import ShardBatch, read_group, shard_groups
from pyspark_kinesis.planning import (
    DEFAULT_MAX_RECORDS_PER_SHARD,
    behind_by_stream,
    peeks_spared,
    planned_takes,
    planning_instant,
    shards_to_look_at,
    takes_from_peeks,
    with_ended_shards,
    with_takes,
)
from pyspark_kinesis.positions import Position
from pyspark_kinesis.reading import Peek, TakeRead, listed_shards, peek_shard, read_range
from pyspark_kinesis.rows import arrow_batches
from pyspark_kinesis.shards import (
    Shard,
    ShardProgress,
    StreamShard,
    StreamsProgress,
    Take,
    by_stream,
    initial_progress,
    last_served_from_offset,
    of_streams,
    streams_from_offset,
    streams_to_offset,
    with_new_shards,
)
from pyspark_kinesis.take_readers import take_reader_for

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

K = TypeVar("K")
T = TypeVar("T")


class KinesisStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Plans batches on the driver as per-shard takes; a task reads `shardsPerTask` shards at once.

    Every stream read has its shards in the same plan, each keyed by
    `StreamShard`: one offset per stream and shard, resharding followed per
    stream, `maxRecordsPerShard` per shard and `maxRecordsPerTrigger` shared
    over all shards of all streams.
    """

    def __init__(self, options: KinesisOptions) -> None:
        self.options = options
        # Each stream's own options: what reading, noting and listing its shards need.
        self._stream_options = {name: options.for_stream(name) for name in options.stream_names}
        self.ends_by_stream = {
            name: end_store(self._stream_options[name]) for name in options.stream_names
        }
        self._client: Any = None
        # (when, each stream's shards): planning reuses a listing younger than the interval.
        self._listing: tuple[float, dict[str, list[Shard]]] | None = None
        self._available_now: tuple[float, frozenset[StreamShard]] | None = None
        self._initial_offset: dict[str, Any] | None = None
        self._behind_ms: dict[StreamShard, int] = {}
        # shard -> (position, iterator still at that position), from the last look.
        self._iterators: dict[StreamShard, tuple[Position, str]] = {}
        # Where the batches of the last start offset ended: every idle trigger plans
        # from that same offset, and must not look (or, with no note, read) again.
        self._found_ends: dict[tuple[StreamShard, Position, Take], ShardEnd] = {}
        # shard -> that end, by shard: what its reader saw after it spares a look.
        self._ends_by_shard: dict[StreamShard, ShardEnd] = {}
        # shard -> wall-clock time its last reader (a peek or a task) lets it be read again.
        self._next_read_s: dict[StreamShard, float] = {}
        self._committed_takes: frozenset[tuple[StreamShard, Position, Take]] = frozenset()
        # Whether the tasks' notes reach this driver (see `planning.planning_instant`).
        self._notes_seen = False
        self._warned_about_rereading = False
        prepare_for_stop(options)

    def __getstate__(self) -> dict[str, Any]:
        # Spark pickles the reader to run `read` on executors: the driver's state stays behind.
        state = dict(self.__dict__)
        state["_client"] = None
        state["_listing"] = None
        state["_iterators"] = {}
        state["_found_ends"] = {}
        state["_ends_by_shard"] = {}
        state["_next_read_s"] = {}
        return state

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.options)
        return self._client

    def initialOffset(self) -> dict[str, Any]:
        """Where a new query starts: every shard listed, at `startingPosition`.

        Spark calls it on the driver's Python planner process, when a query
        without a checkpointed offset plans its first batch; it may ask more
        than once, and LATEST must pin one instant for the whole run.
        """
        if self._initial_offset is None:
            self._initial_offset = self._pin_initial_offset()
        return self._initial_offset

    def _pin_initial_offset(self) -> dict[str, Any]:
        query_start_s = time.time()
        listings = self._list_shards(fresh=True)
        progress = of_streams(
            {
                name: initial_progress(
                    listings[name],
                    options.starting_position,
                    options.shard_starting_positions,
                    query_start_s=query_start_s,
                )
                for name, options in self._stream_options.items()
            }
        )
        log.info("starting at %s", _describe(progress))
        return streams_to_offset(progress)

    def getDefaultReadLimit(self) -> ReadLimit:
        """`maxRecordsPerTrigger` as Spark's read limit (`ReadMaxRows`), else no limit.

        Spark calls it on the driver's Python planner process when the query
        starts; `latestOffset` then receives it, or ReadAllAvailable where the
        trigger asks for everything.
        """
        limit = self.options.max_records_per_trigger
        return ReadMaxRows(limit) if limit else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        """Fixes what a Trigger.AvailableNow query reads: records that arrive after this
        instant, and shards created after it, are not read.

        Spark calls it on the driver's Python planner process once, when a query
        under Trigger.AvailableNow starts, before its first `latestOffset`.
        """
        listings = self._list_shards(fresh=True)
        listed = frozenset(
            StreamShard(name, shard.shard_id)
            for name, shards in listings.items()
            for shard in shards
        )
        self._available_now = (time.time(), listed)

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        """The next batch's end offset: per shard, where it starts and what it takes; `start`
        itself when there is nothing to read (Spark then runs no batch).

        Spark calls it on the driver's Python planner process at every trigger,
        with `start` the previous batch's end (or `initialOffset`), and logs the
        answer before the batch runs. The steps are plain functions
        (`planning`); here they meet Kinesis (listing, looks) and the notes.
        """
        if self.options.fan_out:
            register_consumers(self.client, self.options)  # kept per process once ACTIVE
        cutoff_s, eligible = self._available_now or (None, None)
        known = self._where_batches_ended(self._progress_of(start))
        until_s, wait_s = planning_instant(time.time(), cutoff_s, self._notes_seen)
        time.sleep(wait_s)
        progress = self._with_new_shards(known, eligible)
        peeks = self._peek(progress, shards_to_look_at(progress), until_s)
        self._behind_ms = {shard: peek.millis_behind_latest for shard, peek in peeks.items()}
        progress = with_ended_shards(progress, peeks)
        if not any(peek.has_records for peek in peeks.values()) and progress == known:
            return start  # nothing to read: Spark runs no batch
        takes, served = takes_from_peeks(
            peeks,
            budget=limit.max_rows if isinstance(limit, ReadMaxRows) else None,
            per_shard_cap=self.options.max_records_per_shard or DEFAULT_MAX_RECORDS_PER_SHARD,
            last_served=last_served_from_offset(start),
            until_s=until_s,
            fetch_window_s=self.options.max_fetch_duration_s,
        )
        offset = streams_to_offset(with_takes(progress, takes))
        if served is not None:
            offset["lastServed"] = str(served)
        return offset

    def _progress_of(self, offset: dict[str, Any]) -> StreamsProgress:
        return streams_from_offset(offset, self.options.stream_names)

    def _with_new_shards(
        self, progress: StreamsProgress, eligible: frozenset[StreamShard] | None
    ) -> StreamsProgress:
        """`progress` with the shards each stream's resharding lets the query read now."""
        listings = self._list_shards()

        def eligible_in(name: str) -> frozenset[str] | None:
            if eligible is None:
                return None
            return frozenset(shard.shard_id for shard in eligible if shard.stream_name == name)

        return of_streams(
            {
                name: with_new_shards(by_stream(progress, name), listings[name], eligible_in(name))
                for name in self.options.stream_names
            }
        )

    def reportLatestOffset(self) -> dict[str, Any] | None:
        """Each shard's millisBehindLatest as the last `latestOffset` saw it, by stream,
        for the query's progress (None before any look).

        Spark calls it on the driver's Python planner process after planning a
        trigger, for the progress it reports.
        """
        if not self._behind_ms:
            return None
        return {"millisBehindLatest": behind_by_stream(self._behind_ms)}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        """The batch's shards with records, `shardsPerTask` to a task.

        Spark calls it on the driver's Python planner process once a batch is
        planned, and again for a batch it replays after a restart (from the
        logged offsets). A child shard never shares a batch with its parents (it
        joins the offset once they were seen to end), so a task's shards are
        read at once freely.
        """
        batches = [
            ShardBatch(shard, state.position, state.take, self._next_read_s.get(shard, 0.0))
            for shard, state in sorted(self._progress_of(end).items())
            if state.take is not None
        ]
        return shard_groups(batches, self.options.shards_per_task)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Reads the task's shards at once (`partitions.read_group`), each exactly to its
        noted end if it has one, else its take, noting where it ended.

        Spark calls it on an executor's Python worker, once per task, on a
        pickled copy of the reader (no driver state: `__getstate__`).
        """
        return read_group(partition, self._read_shard)

    def _read_shard(self, batch: ShardBatch) -> Iterator[pa.RecordBatch]:
        """One shard's records of the batch, exactly to its noted end if it has one."""
        shard, start, take = batch.shard, batch.start, batch.take
        options = self._stream_options[shard.stream_name]
        ends = self.ends_by_stream[shard.stream_name]
        client = make_client(options)
        not_before_s = batch.not_before_s
        known_end = ends.get(shard.shard_id, start, take)
        if known_end is not None:
            # Read before (a retry, a replay): exactly to where that read ended.
            if known_end.position != start:
                end = known_end.position
                pages = read_range(
                    client,
                    options,
                    shard.shard_id,
                    start,
                    str(end.argument),
                    last_sub_sequence_number=end.sub_sequence_number,
                    not_before_s=not_before_s,
                )
                yield from arrow_batches(pages, shard)
            return
        take_reader = take_reader_for(options)
        take_read = take_reader(
            client, options, shard.shard_id, start, take, not_before_s=not_before_s
        )
        yield from arrow_batches(take_read, shard)
        assert take_read.end is not None  # set once its records were all read
        noted = ends.put(shard.shard_id, start, take, take_read.end)
        if noted != take_read.end:
            # Spark keeps the output of one attempt only: this one must match the note.
            raise KinesisSourceError(
                f"another attempt of this task read shard {shard} to {noted.position}, this "
                f"one to {take_read.end.position}: failing it, so that its retry reads exactly "
                "to the noted end"
            )

    def commit(self, end: dict[str, Any]) -> None:
        """Removes the notes of the batch before the one ending at `end`.

        Spark calls it on the driver's Python planner process with the end of
        a batch it has committed, when it constructs the batch after that one.
        The next batch starts from `end`'s notes; the batch before needs none
        any more. (After a restart the first commit has no batch before it:
        that batch's notes stay behind.)
        """
        takes = planned_takes(self._progress_of(end))
        for shard, position, take in self._committed_takes - takes:
            self.ends_by_stream[shard.stream_name].remove(shard.shard_id, position, take)
        self._committed_takes = takes

    def stop(self) -> None:
        """Releases what the driver's planning holds: its client reference, shard listing,
        iterators and the ends found. Safe to call more than once.

        Spark's contract: called when the query stops, on the driver's Python
        planner process. The JVM ends that process with SIGTERM (tests/test_stop.py,
        tests/test_query_stop.py, on the installed PySpark), which by default ends
        it before its runner (`python_streaming_source_runner`) reaches its
        `reader.stop()`: so it runs only where the reader had `query_stop` turn
        SIGTERM into a call of it, that is with requireConsumerDeregistration
        under fan-out, when it deregisters the consumer (`consumers.at_query_stop`).
        The notes stay (a restarted query plans from them); the process's shared
        clients stay too, and fan-out consumers unless deregistered here
        (`deregister_consumers` removes those).
        """
        at_query_stop(self.options)
        self.__dict__.update(self.__getstate__())

    def _list_shards(self, *, fresh: bool = False) -> dict[str, list[Shard]]:
        """Each stream's shards, listed in parallel.

        Unless `fresh`, a listing younger than `shard_listing_interval_s` (the
        peers' describeShardInterval / shardFetchInterval, default 1 s) is
        reused: a trigger then makes no ListShards call, and a reshard is seen
        within the interval.
        """
        now = time.monotonic()
        if (
            not fresh
            and self._listing is not None
            and now - self._listing[0] < self.options.shard_listing_interval_s
        ):
            return self._listing[1]
        listings = self._in_parallel(
            lambda name: listed_shards(self.client, self._stream_options[name]),
            list(self.options.stream_names),
        )
        self._listing = (now, listings)
        return listings

    def _where_batches_ended(self, progress: StreamsProgress) -> StreamsProgress:
        """`progress` with every take replaced by the place it reached."""
        taken = {
            (shard, state.position, state.take): shard
            for shard, state in progress.items()
            if state.take is not None
        }
        found = {key: end for key, end in self._found_ends.items() if key in taken}

        missing: list[StreamShard] = []

        def end_of(key: tuple[StreamShard, Position, Take]) -> ShardEnd:
            shard, position, take = key
            ends = self.ends_by_stream[shard.stream_name]
            known_end = ends.get(shard.shard_id, position, take)
            if known_end is not None:
                return known_end
            missing.append(shard)
            if not self._warned_about_rereading:
                self._warned_about_rereading = True
                log.warning(
                    "no batch end noted under metadataPath=%s for %s; the driver reads the "
                    "batch again to find it (slower): set metadataPath to a directory the "
                    "driver and every executor share, or to an s3:// prefix",
                    ends.location,
                    shard,
                )
            # The task's last read of the shard is unknown: one period after now is safe.
            not_before_s = time.time() + self.options.min_fetch_period_s
            options = self._stream_options[shard.stream_name]
            return TakeRead(
                self.client, options, shard.shard_id, position, take, not_before_s=not_before_s
            ).read_to_end()

        unresolved = [key for key in taken if key not in found]
        found.update(self._in_parallel(end_of, unresolved))
        if unresolved:
            self._notes_seen = not missing
        self._found_ends = found
        self._ends_by_shard = {shard: end for (shard, _, _), end in found.items()}
        for (shard, _, _), end in found.items():
            self._next_read_s[shard] = max(self._next_read_s.get(shard, 0.0), end.next_read_s)
        resolved = dict(progress)
        for key, end in found.items():
            resolved[taken[key]] = ShardProgress(end.position, end.ended)
        return resolved

    def _peek(
        self, progress: StreamsProgress, shards: list[StreamShard], until_s: float
    ) -> dict[StreamShard, Peek]:
        """A look at each of `shards` (in order), at Kinesis where the last reads do not
        spare it (`planning.peeks_spared`), the looks in parallel."""
        spared = peeks_spared(progress, shards, self._ends_by_shard, until_s)

        def peek(shard: StreamShard) -> Peek:
            position = progress[shard].position
            saved_position, iterator = self._iterators.get(shard, (None, None))
            return peek_shard(
                self.client,
                self._stream_options[shard.stream_name],
                shard.shard_id,
                position,
                until_s=until_s,
                iterator=iterator if saved_position == position else None,
                not_before_s=self._next_read_s.get(shard, 0.0),
            )

        looked = self._in_parallel(peek, [shard for shard in shards if shard not in spared])
        peeks = {shard: spared[shard] if shard in spared else looked[shard] for shard in shards}
        self._next_read_s.update({shard: peek.next_read_s for shard, peek in peeks.items()})
        self._iterators = {
            shard: (progress[shard].position, peek.iterator)
            for shard, peek in peeks.items()
            if peek.iterator
        }
        return peeks

    def _in_parallel(self, work: Callable[[K], T], items: list[K]) -> dict[K, T]:
        """`work` for every item (a shard each), in parallel: one slow shard holds up no other."""
        if not items:
            return {}
        with ThreadPoolExecutor(max_workers=min(32, len(items))) as pool:
            return dict(zip(items, pool.map(work, items), strict=True))


def _describe(progress: StreamsProgress) -> str:
    return ", ".join(f"{shard}@{state.position}" for shard, state in sorted(progress.items()))
