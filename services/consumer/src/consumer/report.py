"""`python -m consumer report`: what the durable sink holds, as one JSON object.

Read with pyarrow, not Spark, so it answers in a second next to a running
query; it reads a local (or mounted) output path. It reads only the batches
the ledger counts (`layout.visible_files` with its last batch), so a batch is
in the report whole or not at all: one per compacted hour plus the current
hour's batches, so its time grows with the rows the sink holds and the hours
it spans, not with the number of batches. `--rows` adds every event's place
in the stream and its batch, for checking per-partition-key order; the
default report leaves them out, as it is polled often.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from consumer import fs
from consumer.layout import DEAD_LETTERS, EVENTS, hour_folder, visible_files
from consumer.ledger import load_ledger
from consumer.settings import ConsumerSettings

# Each event's place in the stream, and the batch that wrote it.
ROW_COLUMNS = [
    "event_id",
    "partition_key",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
    "batch_id",
]


def sink_report(settings: ConsumerSettings, *, rows: bool = False) -> dict[str, Any]:
    output = settings.consumer_output_path.rstrip("/")
    events = read_table(output, EVENTS, ["event_id", "message_type", "count", *ROW_COLUMNS])
    ids = Counter(events.get("event_id", []))
    counts: dict[str, dict[str, int]] = {}
    for message_type, count in zip(
        events.get("message_type", []), events.get("count", []), strict=True
    ):
        totals = counts.setdefault(message_type, {"events": 0, "count_sum": 0})
        totals["events"] += 1
        totals["count_sum"] += count
    dead = read_table(output, DEAD_LETTERS, ["error"])
    report: dict[str, Any] = {
        "events": sum(ids.values()),
        "event_ids": sorted(ids),
        "duplicate_event_ids": sum(1 for seen in ids.values() if seen > 1),
        "dead_letters": len(dead.get("error", [])),
        "dead_letter_errors": dict(Counter(dead.get("error", []))),
        "counts": dict(sorted(counts.items())),
    }
    if rows:
        report["rows"] = [
            dict(zip(ROW_COLUMNS, row, strict=True))
            for row in zip(*(events.get(column, []) for column in ROW_COLUMNS), strict=True)
        ]
    return report


def read_table(output_path: str, table: str, columns: list[str]) -> dict[str, list[Any]]:
    """The rows of one sink table's whole batches (those the ledger counts; none without
    a ledger), as lists per column."""
    ledger = load_ledger(output_path)
    last_batch = -1 if ledger is None else ledger.last_batch
    root = f"{output_path}/{table}"
    files = [
        f"{hour_folder(root, hour.removeprefix('hour='))}/{name}"
        for hour in fs.subfolders(root)
        if hour.startswith("hour=")
        for name in visible_files(fs.names_in(f"{root}/{hour}"), last_batch)
    ]
    if not files:
        return {}
    return dict(fs.read_parquet(files, columns=sorted(set(columns))).to_pydict())


def print_report(settings: ConsumerSettings, *, rows: bool = False) -> None:
    print(json.dumps(sink_report(settings, rows=rows)))
