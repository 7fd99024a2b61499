"""How the driver plans a streaming batch, shard by shard: plain functions, no Spark, no Kinesis.

`KinesisStreamReader.latestOffset` plans a batch in these steps, each a function
here: the instant until which the batch takes records (`planning_instant`); the
shards that may have records (`shards_to_look_at`), of which those whose last
read saw what follows need no look at Kinesis (`peeks_spared`); the shards whose
look found their end (`with_ended_shards`); and what the batch takes from each
shard with records (`takes_from_peeks`: `maxRecordsPerTrigger` shared out,
`maxRecordsPerShard`, `maxFetchDuration`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark_kinesis.ends import ShardEnd
from pyspark_kinesis.positions import Position
from pyspark_kinesis.reading import Peek, peek_from_end
from pyspark_kinesis.shards import (
    ShardProgress,
    StreamShard,
    StreamsProgress,
    Take,
    split_budget,
)

# A batch takes at most this many records from a shard unless maxRecordsPerShard
# says otherwise, so the first batch after an outage stays a batch, not the backlog.
DEFAULT_MAX_RECORDS_PER_SHARD = 100_000
# Kinesis shows a record at most this long after its approximate arrival time
# (the bound under which a batch read without a note is exact; see `planning_instant`).
VISIBILITY_MARGIN_S = 2.0


def planning_instant(now_s: float, cutoff_s: float | None, notes_seen: bool) -> tuple[float, float]:
    """Until when the next batch takes records (their approximate arrival time), and how
    long the driver waits before planning it, at wall-clock time `now_s`.

    `cutoff_s` is Trigger.AvailableNow's instant, if the query runs under it.
    Until a task's note has been seen (`notes_seen`), the driver may have to read
    a batch again to find its end, which is exact only if the task saw every
    record the driver will see. Kinesis shows a record a little after its
    arrival time, so the batch then takes only records older than
    VISIBILITY_MARGIN_S (under Trigger.AvailableNow, it waits that long past the
    query's cutoff once).
    """
    if notes_seen:
        return (now_s if cutoff_s is None else cutoff_s), 0.0
    if cutoff_s is None:
        return now_s - VISIBILITY_MARGIN_S, 0.0
    return cutoff_s, max(0.0, cutoff_s + VISIBILITY_MARGIN_S - now_s)


def shards_to_look_at(progress: StreamsProgress) -> list[StreamShard]:
    """The shards the next batch may take from, in order: those not seen to end."""
    return sorted(shard for shard, state in progress.items() if not state.ended)


def peeks_spared(
    progress: StreamsProgress,
    shards: Sequence[StreamShard],
    ends: Mapping[StreamShard, ShardEnd],
    until_s: float,
) -> dict[StreamShard, Peek]:
    """What a look at each of `shards` would see, where the shard's last read saw it.

    A busy shard's read (`ends`, by shard) stopped before records that arrived
    after its batch was planned and noted when the first of them arrived
    (`peek_from_end`): if the shard is still where that read ended, the driver
    needs no call to Kinesis, nor to wait for the shard's pace. The other shards
    need a look (`reading.peek_shard`).
    """
    spared: dict[StreamShard, Peek] = {}
    for shard in shards:
        end = ends.get(shard)
        if end is None or end.position != progress[shard].position:
            continue
        seen = peek_from_end(end, until_s)
        if seen is not None:
            spared[shard] = seen
    return spared


def with_ended_shards(
    progress: StreamsProgress, peeks: Mapping[StreamShard, Peek]
) -> StreamsProgress:
    """`progress` with the shards whose look found them closed and read to the end marked
    ended (no later batch looks at them; their children may join)."""
    ended = dict(progress)
    for shard, peek in peeks.items():
        if peek.ended:
            ended[shard] = ShardProgress(progress[shard].position, ended=True)
    return ended


def takes_from_peeks(
    peeks: Mapping[StreamShard, Peek],
    *,
    budget: int | None,
    per_shard_cap: int,
    last_served: StreamShard | None,
    until_s: float,
    fetch_window_s: float | None,
) -> tuple[dict[StreamShard, Take], StreamShard | None]:
    """What the batch takes from each shard whose look found records, and the last shard
    served (for the offset; see `shards.split_budget`).

    Each shard takes the records that arrived by `until_s`, at most its share of
    `budget` (maxRecordsPerTrigger, None for no limit) and `per_shard_cap` rows
    (maxRecordsPerShard). With `fetch_window_s` (maxFetchDuration), a shard takes
    only what arrived within that long of its first record waiting. A shard
    whose share is 0 (a budget smaller than the shards with records) takes
    nothing this batch.
    """
    with_records = [shard for shard, peek in peeks.items() if peek.has_records]
    shares, served = split_budget(budget, with_records, per_shard_cap, last_served)
    takes: dict[StreamShard, Take] = {}
    for shard, share in shares.items():
        if share == 0:
            continue
        first_arrival_s = peeks[shard].first_arrival_s
        shard_until_s = until_s
        if fetch_window_s is not None and first_arrival_s is not None:
            shard_until_s = min(until_s, first_arrival_s + fetch_window_s)
        takes[shard] = Take(shard_until_s, share)
    return takes, served


def with_takes(progress: StreamsProgress, takes: Mapping[StreamShard, Take]) -> StreamsProgress:
    """`progress` with each shard of `takes` taking its take from where it stands."""
    taking = dict(progress)
    for shard, take in takes.items():
        taking[shard] = ShardProgress(progress[shard].position, take=take)
    return taking


def planned_takes(progress: StreamsProgress) -> frozenset[tuple[StreamShard, Position, Take]]:
    """Every (shard, start, take) an offset plans: what names a batch's notes."""
    return frozenset(
        (shard, state.position, state.take)
        for shard, state in progress.items()
        if state.take is not None
    )


def behind_by_stream(behind_ms: Mapping[StreamShard, int]) -> dict[str, dict[str, int]]:
    """Each shard's millisBehindLatest, by stream then shard id, in order (for the progress)."""
    behind: dict[str, dict[str, int]] = {}
    for shard, millis in sorted(behind_ms.items()):
        behind.setdefault(shard.stream_name, {})[shard.shard_id] = millis
    return behind
