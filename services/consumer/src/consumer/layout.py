"""Where the sink's files live and which of them a reader should read: names only, no I/O.

The sink is two Parquet tables, `events/` and `dead_letters/`, each split into
one folder per hour of processing (`hour=2026-11-25T16`, Hive-style, so
Spark, pyarrow, pandas, DuckDB and Polars all see an `hour` column). A batch
writes at most one file per Spark partition into its hour's folder, first
under a hidden in-flight name that no reader lists, then renamed to
`part-<batch>-<partition>.parquet` once every task succeeded. Once an hour is
over, its files are merged into one `compacted-<first>-<last>.parquet`, so a
folder holds one file per hour however many batches ran.

Two rules a reader must know. A part file whose batch lies inside a
compacted file's range is already in that file (the moment between the merge
and the removal of the parts). And a batch is whole only once the ledger
(`_sink.json`) counts it: the driver renames a batch's files one by one, then
records the batch, so a crash between two renames leaves part of a batch under
its final names until the re-run renames the rest. `visible_files` leaves out
both kinds of part when given the ledger's last batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

EVENTS = "events"
DEAD_LETTERS = "dead_letters"
TABLES = (EVENTS, DEAD_LETTERS)
LEDGER = "_sink.json"

_PART = re.compile(r"^part-(?P<batch>\d{10})-(?P<partition>\d{5})\.parquet$")
_COMPACTED = re.compile(r"^compacted-(?P<first>\d{10})-(?P<last>\d{10})\.parquet$")
_IN_FLIGHT = re.compile(r"^\.part-(?P<batch>\d{10})-(?P<partition>\d{5})\.in-flight$")


def hour_of(moment: datetime) -> str:
    """The hour folder's value for a batch that Spark timestamped at `moment` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def hour_folder(table_path: str, hour: str) -> str:
    return f"{table_path}/hour={hour}"


def part_name(batch_id: int, partition: int) -> str:
    return f"part-{batch_id:010d}-{partition:05d}.parquet"


def in_flight_name(batch_id: int, partition: int) -> str:
    # Hidden (leading dot) and not `*.parquet`: Spark, pyarrow and globs all skip it.
    return f".part-{batch_id:010d}-{partition:05d}.in-flight"


def compacted_name(first_batch: int, last_batch: int) -> str:
    return f"compacted-{first_batch:010d}-{last_batch:010d}.parquet"


@dataclass(frozen=True)
class FolderFile:
    """A file of one hour folder, by what its name says."""

    name: str
    kind: str  # "part", "compacted" or "in-flight"
    first_batch: int
    last_batch: int


def parse_name(name: str) -> FolderFile | None:
    """What a file in an hour folder is; None for anything the sink did not write."""
    if match := _PART.match(name):
        batch = int(match["batch"])
        return FolderFile(name, "part", batch, batch)
    if match := _COMPACTED.match(name):
        return FolderFile(name, "compacted", int(match["first"]), int(match["last"]))
    if match := _IN_FLIGHT.match(name):
        batch = int(match["batch"])
        return FolderFile(name, "in-flight", batch, batch)
    return None


def visible_files(names: Iterable[str], last_batch: int | None = None) -> list[str]:
    """The files of one hour folder that hold its rows, each row once; with `last_batch`
    (the ledger's), only whole batches: parts of a later batch are left out."""
    files = [parsed for name in names if (parsed := parse_name(name)) is not None]
    compacted = [f for f in files if f.kind == "compacted"]
    # Of two compacted files, a later merge's range covers the earlier's.
    compacted = [
        f
        for f in compacted
        if not any(
            o is not f and o.first_batch <= f.first_batch and f.last_batch <= o.last_batch
            for o in compacted
        )
    ]
    parts = [
        f
        for f in files
        if f.kind == "part"
        and (last_batch is None or f.first_batch <= last_batch)
        and not any(c.first_batch <= f.first_batch <= c.last_batch for c in compacted)
    ]
    return sorted(f.name for f in compacted + parts)


def superseded_files(names: Iterable[str]) -> list[str]:
    """The files of an hour folder that a compaction of it leaves behind to remove."""
    keep = set(visible_files(names))
    return sorted(name for name in names if parse_name(name) is not None and name not in keep)
