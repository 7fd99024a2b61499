"""The sink's ledger: which checkpoint owns the output, the last batch it published, totals.

One small JSON file, `_sink.json`, at the root of CONSUMER_OUTPUT_PATH,
replaced whole after each batch. It lets the consumer refuse to write a new
checkpoint's batch 0 over an older run's output, keeps the running per-type
totals the console shows without re-reading the sink, and remembers which
hours still wait for compaction. A batch that runs again after a crash finds
itself already counted (`last_batch`) and is not added twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from consumer.fs import read_text, write_text
from consumer.layout import LEDGER


@dataclass(frozen=True)
class Totals:
    """What the sink holds, summed over every batch published so far."""

    events: int = 0
    dead_letters: int = 0
    # message_type -> [events, sum of their `count`]
    counts: dict[str, list[int]] = field(default_factory=dict)

    def plus(self, other: Totals) -> Totals:
        counts = {name: list(values) for name, values in self.counts.items()}
        for name, (events, count_sum) in other.counts.items():
            mine = counts.setdefault(name, [0, 0])
            mine[0] += events
            mine[1] += count_sum
        return Totals(
            self.events + other.events,
            self.dead_letters + other.dead_letters,
            dict(sorted(counts.items())),
        )


@dataclass(frozen=True)
class Ledger:
    query_id: str
    last_batch: int = -1
    totals: Totals = field(default_factory=Totals)
    # Hour folders written to since their last compaction, oldest first.
    open_hours: tuple[str, ...] = ()

    def with_batch(self, batch_id: int, batch: Totals, hours: set[str]) -> Ledger:
        """The ledger after `batch_id`; the same ledger if that batch was counted already."""
        if batch_id <= self.last_batch:
            return self
        return replace(
            self,
            last_batch=batch_id,
            totals=self.totals.plus(batch),
            open_hours=tuple(sorted(set(self.open_hours) | hours)),
        )

    def to_json(self) -> str:
        document = asdict(self)
        document["open_hours"] = list(self.open_hours)
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Ledger:
        document: dict[str, Any] = json.loads(text)
        return cls(
            query_id=document["query_id"],
            last_batch=int(document["last_batch"]),
            totals=Totals(**document["totals"]),
            open_hours=tuple(document.get("open_hours", ())),
        )


def load_ledger(output_path: str) -> Ledger | None:
    text = read_text(f"{output_path}/{LEDGER}")
    return None if text is None else Ledger.from_json(text)


def save_ledger(output_path: str, ledger: Ledger) -> None:
    write_text(f"{output_path}/{LEDGER}", ledger.to_json())


class SinkOwnershipError(RuntimeError):
    """The output folder holds another checkpoint's run; writing would replace it."""


def checkpoint_id(checkpoint_location: str) -> str | None:
    """The query id Spark keeps in a checkpoint (its `metadata` file); None before the first run."""
    text = read_text(f"{checkpoint_location}/metadata")
    return None if text is None else str(json.loads(text)["id"])


def owned_ledger(output_path: str, checkpoint_location: str) -> Ledger | None:
    """The output's ledger if this checkpoint wrote it (None for an output never written).

    Raises SinkOwnershipError when the output belongs to another checkpoint: a
    deleted or reset checkpoint restarts at batch 0, and its batches would
    replace the earlier run's files of the same numbers.
    """
    ledger = load_ledger(output_path)
    if ledger is None:
        return None
    owner = checkpoint_id(checkpoint_location)
    if ledger.query_id == owner:
        return ledger
    checkpoint_state = "is new or was reset" if owner is None else f"belongs to query {owner}"
    raise SinkOwnershipError(
        f"CONSUMER_OUTPUT_PATH={output_path} holds the output of query {ledger.query_id} "
        f"(up to batch {ledger.last_batch}), but CONSUMER_CHECKPOINT_PATH's checkpoint "
        f"{checkpoint_location} {checkpoint_state}: writing would replace that output. Point "
        "CONSUMER_OUTPUT_PATH at a new folder (or move the old output away), or restore the "
        "checkpoint that wrote it"
    )
