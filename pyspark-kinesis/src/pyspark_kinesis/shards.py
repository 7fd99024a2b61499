"""Which shards a query reads, as the stream is resharded under it.

Kinesis closes a shard when it is split or merged and opens children that list
it as parent. Order per partition key holds only if a parent is read to its end
before its children are read at all, so a child joins the query's offset in the
batch after all its parents were seen to end. A closed, drained parent is
dropped from the offset once all its children are in it; afterwards a shard in
the listing that is an ancestor of a shard in the offset is known to be
consumed, which keeps the offset small without re-reading old shards.

This module owns the checkpoint format: the offset Spark logs per batch is
`{"streams": {<stream>: {"shards": {<shard id>: <ShardProgress>}}}, "lastServed":
"<stream>/<shard id>"}`, one entry per stream and shard (`lastServed` only under
maxRecordsPerTrigger). Offsets written before several streams could be read have
no stream level (`{"shards": {...}, "turn": n}`; the `turn` index is ignored, so
the budget's rotation restarts); they load as the
shards of the one stream the query reads, and a query that now names several
streams cannot resume from them (the offset does not say which stream it was).
Golden files in the tests pin both forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from pyspark_kinesis.options import KinesisOptionError
from pyspark_kinesis.positions import TRIM_HORIZON, Position, at_timestamp, parse_position


@dataclass(frozen=True)
class Shard:
    """A shard as ListShards describes it."""

    shard_id: str
    parents: tuple[str, ...]
    closed: bool

    @classmethod
    def from_listing(cls, entry: Mapping[str, Any]) -> Shard:
        parents = tuple(
            entry[key] for key in ("ParentShardId", "AdjacentParentShardId") if entry.get(key)
        )
        closed = "EndingSequenceNumber" in entry.get("SequenceNumberRange", {})
        return cls(entry["ShardId"], parents, closed)


@dataclass(frozen=True)
class Take:
    """What a planned batch takes from a shard after its position.

    The records that arrived at or before `until_s`, and at most `limit` of them.
    Both bounds are fixed when the batch is planned, so reading the shard again
    from the same position under the same Take returns the same records: a batch
    is replayable although where it ends is only known once it has been read.
    """

    until_s: float
    limit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"until": self.until_s, "limit": self.limit}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Take:
        limit = document.get("limit")
        return cls(float(document["until"]), None if limit is None else int(limit))


@dataclass(frozen=True)
class ShardProgress:
    """How far a query has read one shard.

    Either a known place (`position`, and whether the shard ended there), or,
    with `take`, the place a batch reaches by taking `take` from `position`.
    """

    position: Position
    ended: bool = False
    take: Take | None = None

    def to_json(self) -> dict[str, Any]:
        document = {"position": str(self.position), "ended": self.ended}
        if self.take is not None:
            document["take"] = self.take.to_json()
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ShardProgress:
        take = document.get("take")
        return cls(
            parse_position(document["position"]),
            bool(document.get("ended", False)),
            None if take is None else Take.from_json(take),
        )


class StreamShard(NamedTuple):
    """A shard of one of the streams a query reads: shard ids repeat across streams."""

    stream_name: str
    shard_id: str

    def __str__(self) -> str:
        return f"{self.stream_name}/{self.shard_id}"


# One stream's progress, by shard id; and every stream's, by StreamShard.
Progress = dict[str, ShardProgress]
StreamsProgress = dict[StreamShard, ShardProgress]
K = TypeVar("K")


class OffsetStreamsError(KinesisOptionError):
    """The streams option names streams a logged offset does not hold."""


def progress_to_offset(progress: Mapping[str, ShardProgress]) -> dict[str, Any]:
    """One stream's entry in the offset (and, alone, the offset before several streams)."""
    return {"shards": {shard_id: progress[shard_id].to_json() for shard_id in sorted(progress)}}


def progress_from_offset(offset: Mapping[str, Any]) -> Progress:
    return {
        shard_id: ShardProgress.from_json(entry) for shard_id, entry in offset["shards"].items()
    }


def streams_to_offset(progress: Mapping[StreamShard, ShardProgress]) -> dict[str, Any]:
    """The offset of every stream read, streams and shards in order (see the module's doc)."""
    streams = sorted({key.stream_name for key in progress})
    return {"streams": {name: progress_to_offset(by_stream(progress, name)) for name in streams}}


def streams_from_offset(offset: Mapping[str, Any], stream_names: Sequence[str]) -> StreamsProgress:
    """The progress an offset logged for `stream_names`, in either form (see the module's doc).

    Raises OffsetStreamsError when the offset lacks one of the streams.
    """
    if "streams" not in offset:
        if len(stream_names) != 1:
            raise OffsetStreamsError(
                "this checkpoint was written by a query of one stream, and its offset does not "
                f"say which; it cannot resume reading {_quoted(stream_names)}: read that one "
                "stream again, or start the query with a new checkpointLocation"
            )
        return of_streams({stream_names[0]: progress_from_offset(offset)})
    logged = offset["streams"]
    missing = [name for name in stream_names if name not in logged]
    if missing:
        raise OffsetStreamsError(
            f"this checkpoint's offset holds the streams {_quoted(sorted(logged))}, not "
            f"{_quoted(missing)}: a query reads the same streams for its whole life; start one "
            "with a new checkpointLocation to read others"
        )
    return of_streams({name: progress_from_offset(logged[name]) for name in stream_names})


def by_stream(progress: Mapping[StreamShard, ShardProgress], stream_name: str) -> Progress:
    """One stream's share of `progress`, by shard id."""
    return {
        key.shard_id: state for key, state in progress.items() if key.stream_name == stream_name
    }


def of_streams(progress_by_stream: Mapping[str, Mapping[str, ShardProgress]]) -> StreamsProgress:
    """Every stream's progress in one map (the inverse of `by_stream`)."""
    return {
        StreamShard(name, shard_id): state
        for name, progress in progress_by_stream.items()
        for shard_id, state in progress.items()
    }


def split_budget(
    budget: int | None,
    shards: Sequence[StreamShard],
    per_shard_cap: int,
    last_served: StreamShard | None,
) -> tuple[dict[StreamShard, int], StreamShard | None]:
    """Each shard's share of `budget` (maxRecordsPerTrigger), at most `per_shard_cap`, and
    the last shard served.

    The budget is shared over every shard given, of every stream. The remainder
    goes to the shards in (stream, shard id) order from the first after
    `last_served` on (wrapping round), and the offset carries the last of them
    forward (the last of the round when there is no remainder), so with a budget
    smaller than the shard count every shard gets records within a few batches,
    even as the shards with records change from batch to batch; a replayed batch
    keeps the shares its offset logged.
    """
    if budget is None or not shards:
        return dict.fromkeys(shards, per_shard_cap), last_served
    ordered = sorted(shards)
    share, extra = divmod(budget, len(ordered))
    first = next(
        (index for index, shard in enumerate(ordered) if last_served and shard > last_served), 0
    )
    rotated = [*ordered[first:], *ordered[:first]]
    shares = {
        shard: min(share + (1 if index < extra else 0), per_shard_cap)
        for index, shard in enumerate(rotated)
    }
    # Without a remainder every shard got the same share: the whole round was served.
    return shares, rotated[extra - 1] if extra else rotated[-1]


def last_served_from_offset(offset: Mapping[str, Any]) -> StreamShard | None:
    """The shard an offset says the trigger budget's remainder last went to (`lastServed`,
    "<stream>/<shard id>"). Older offsets carry an index (`turn`): the rotation restarts."""
    served = offset.get("lastServed")
    if not isinstance(served, str) or "/" not in served:
        return None
    stream_name, _, shard_id = served.partition("/")
    return StreamShard(stream_name, shard_id)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def initial_progress(
    listing: Iterable[Shard],
    default: Position,
    per_shard: Mapping[str, Position],
    query_start_s: float,
) -> Progress:
    """The shards a new query starts with, and where in each it starts."""
    shards = {shard.shard_id: shard for shard in listing}
    if default.kind == "LATEST":
        # Closed shards hold nothing newer than the query: only open ones can.
        chosen = {shard_id for shard_id, shard in shards.items() if not shard.closed}
    else:
        chosen = {
            shard_id for shard_id, shard in shards.items() if not _listed_parents(shard, shards)
        }
    named = set(per_shard) & set(shards)
    chosen = (chosen - _ancestors(named, shards)) | named
    resolved_default = at_timestamp(query_start_s) if default.kind == "LATEST" else default
    progress = {}
    for shard_id in chosen:
        position = per_shard.get(shard_id, resolved_default)
        if position.kind == "LATEST":
            position = at_timestamp(query_start_s)
        progress[shard_id] = ShardProgress(position)
    return progress


def with_new_shards(
    progress: Mapping[str, ShardProgress],
    listing: Iterable[Shard],
    eligible: frozenset[str] | None = None,
) -> Progress:
    """Adds the shards that may be read from now on, and drops parents no longer needed.

    `eligible`, when given, limits new shards to those ids (Trigger.AvailableNow
    must not read shards created after it started).
    """
    shards = {shard.shard_id: shard for shard in listing}
    updated = dict(progress)
    consumed = _ancestors(set(progress), shards)
    for shard_id, shard in shards.items():
        if shard_id in progress or shard_id in consumed:
            continue
        if eligible is not None and shard_id not in eligible:
            continue
        if all(
            _parent_done(parent, progress, consumed)
            for parent in _known_parents(shard, shards, progress)
        ):
            updated[shard_id] = ShardProgress(TRIM_HORIZON)
    for shard_id in [shard_id for shard_id, state in updated.items() if state.ended]:
        children = [shard for shard in shards.values() if shard_id in shard.parents]
        if children and all(child.shard_id in updated for child in children):
            del updated[shard_id]
    return updated


def _parent_done(parent: str, progress: Mapping[str, ShardProgress], consumed: set[str]) -> bool:
    # An untracked parent that is an ancestor of a tracked shard was read, or skipped
    # on purpose by naming a descendant in startingPosition: its children may start.
    return progress[parent].ended if parent in progress else parent in consumed


def _listed_parents(shard: Shard, shards: Mapping[str, Shard]) -> list[str]:
    return [parent for parent in shard.parents if parent in shards]


def _known_parents(
    shard: Shard, shards: Mapping[str, Shard], progress: Mapping[str, ShardProgress]
) -> list[str]:
    # A parent that is neither listed nor tracked has aged out of the stream:
    # there is nothing left to read before the child.
    return [parent for parent in shard.parents if parent in shards or parent in progress]


def _ancestors(shard_ids: set[str], shards: Mapping[str, Shard]) -> set[str]:
    found: set[str] = set()
    pending = [
        parent
        for shard_id in shard_ids
        if shard_id in shards
        for parent in shards[shard_id].parents
    ]
    while pending:
        parent = pending.pop()
        if parent in found:
            continue
        found.add(parent)
        if parent in shards:
            pending.extend(shards[parent].parents)
    return found
