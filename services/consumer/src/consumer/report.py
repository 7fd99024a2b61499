"""`python -m consumer report`: what the durable sink holds, as one JSON object.

Read with pyarrow, not Spark, so it answers in a second next to a running
query; it reads a local (or mounted) output path. Only batches whose write
finished (`_SUCCESS`) are counted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from consumer.settings import ConsumerSettings


def sink_report(settings: ConsumerSettings) -> dict[str, Any]:
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
    return {
        "events": sum(ids.values()),
        "event_ids": sorted(ids),
        "duplicate_event_ids": sum(1 for seen in ids.values() if seen > 1),
        "dead_letters": len(dead.get("error", [])),
        "dead_letter_errors": dict(Counter(dead.get("error", []))),
        "counts": dict(sorted(counts.items())),
    }


def _read(root: str, columns: list[str]) -> dict[str, list[Any]]:
    finished = sorted(str(marker.parent) for marker in Path(root).glob("batch_id=*/_SUCCESS"))
    if not finished:
        return {}
    files = [str(path) for folder in finished for path in Path(folder).glob("*.parquet")]
    if not files:
        return {}
    table = ds.dataset(files, format="parquet").to_table(columns=columns)
    return dict(table.to_pydict())


def print_report(settings: ConsumerSettings) -> None:
    print(json.dumps(sink_report(settings)))
