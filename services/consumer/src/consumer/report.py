"""`python -m consumer report`: what the durable sink holds, as one JSON object.

Read with pyarrow, not Spark, so it answers in a second next to a running
query; it reads a local (or mounted) output path. Only batches whose write
finished (`_SUCCESS`) are counted. `--rows` adds every event's place in the
stream and its batch, for checking per-partition-key order; the default report
leaves them out, as it is polled often.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from consumer.settings import ConsumerSettings

# Each event's place in the stream, and the batch (`batch_id=N` directory) that wrote it.
ROW_COLUMNS = [
    "event_id",
    "partition_key",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
    "batch_id",
]


def sink_report(settings: ConsumerSettings, *, rows: bool = False) -> dict[str, Any]:
    events = _read(settings.events_path, ["event_id", "message_type", "count"])
    ids = Counter(events.get("event_id", []))
    counts: dict[str, dict[str, int]] = {}
    for message_type, count in zip(
        events.get("message_type", []), events.get("count", []), strict=True
    ):
        totals = counts.setdefault(message_type, {"events": 0, "count_sum": 0})
        totals["events"] += 1
        totals["count_sum"] += count
    dead = _read(settings.dead_letters_path, ["error"])
    report: dict[str, Any] = {
        "events": sum(ids.values()),
        "event_ids": sorted(ids),
        "duplicate_event_ids": sum(1 for seen in ids.values() if seen > 1),
        "dead_letters": len(dead.get("error", [])),
        "dead_letter_errors": dict(Counter(dead.get("error", []))),
        "counts": dict(sorted(counts.items())),
    }
    if rows:
        report["rows"] = _rows(settings.events_path)
    return report


def _rows(root: str) -> list[dict[str, Any]]:
    columns = _read(root, ROW_COLUMNS)
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _read(root: str, columns: list[str]) -> dict[str, list[Any]]:
    finished = sorted(str(marker.parent) for marker in Path(root).glob("batch_id=*/_SUCCESS"))
    if not finished:
        return {}
    files = [str(path) for folder in finished for path in Path(folder).glob("*.parquet")]
    if not files:
        return {}
    # `batch_id` is no column of the files: it comes from their `batch_id=N` directory.
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=root)
    table = dataset.to_table(columns=columns)
    return dict(table.to_pydict())


def print_report(settings: ConsumerSettings, *, rows: bool = False) -> None:
    print(json.dumps(sink_report(settings, rows=rows)))
