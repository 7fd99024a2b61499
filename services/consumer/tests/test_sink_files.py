"""The sink's file logic without Spark: names, what readers read, the ledger, a task's write,
compaction and the console view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from consumer import fs
from consumer.compaction import compact_hour
from consumer.console import batch_view, table
from consumer.layout import (
    compacted_name,
    hour_of,
    in_flight_name,
    parse_name,
    part_name,
    superseded_files,
    visible_files,
)
from consumer.ledger import (
    Ledger,
    SinkOwnershipError,
    Totals,
    load_ledger,
    owned_ledger,
    save_ledger,
)
from consumer.report import read_table
from consumer.writing import BatchPlan, write_partition

pytestmark = pytest.mark.unit

BATCH_TIME = datetime(2026, 11, 25, 16, 5, tzinfo=UTC)


def test_names_round_trip_and_in_flight_files_are_hidden_from_parquet_globs():
    assert parse_name(part_name(7, 3)).first_batch == 7
    assert parse_name(compacted_name(3, 9)).last_batch == 9
    assert in_flight_name(7, 3).startswith(".")
    assert not in_flight_name(7, 3).endswith(".parquet")
    assert parse_name("_SUCCESS") is None
    assert hour_of(BATCH_TIME) == "2026-11-25T16"


def test_readers_see_a_compacted_range_once_and_later_parts_beside_it():
    names = [
        part_name(3, 0),
        part_name(4, 1),  # merged into the compacted file, not yet removed
        compacted_name(0, 4),
        compacted_name(0, 2),  # an older merge the newer one covers
        part_name(5, 0),  # written after the merge
        in_flight_name(6, 0),
        "notes.txt",
    ]
    assert visible_files(names) == [compacted_name(0, 4), part_name(5, 0)]
    assert superseded_files(names) == sorted(
        [part_name(3, 0), part_name(4, 1), compacted_name(0, 2), in_flight_name(6, 0)]
    )


def test_a_batch_counts_once_in_the_ledger():
    batch = Totals(events=2, dead_letters=1, counts={"message1": [2, 5]})
    once = Ledger("query").with_batch(0, batch, {"2026-11-25T16"})
    again = once.with_batch(0, batch, {"2026-11-25T16"})
    later = again.with_batch(1, Totals(1, 0, {"message2": [1, 1]}), {"2026-11-25T17"})

    assert again == once
    assert later.totals == Totals(3, 1, {"message1": [2, 5], "message2": [1, 1]})
    assert later.open_hours == ("2026-11-25T16", "2026-11-25T17")
    assert Ledger.from_json(later.to_json()) == later


def test_an_output_of_another_checkpoint_is_refused_with_the_variables_to_change(tmp_path):
    output, checkpoint = str(tmp_path / "output"), str(tmp_path / "checkpoint")
    save_ledger(output, Ledger("old-query", last_batch=41))

    with pytest.raises(SinkOwnershipError, match=r"CONSUMER_OUTPUT_PATH.*is new or was reset"):
        owned_ledger(output, checkpoint)

    fs.write_text(f"{checkpoint}/metadata", json.dumps({"id": "new-query"}))
    with pytest.raises(SinkOwnershipError, match="belongs to query new-query"):
        owned_ledger(output, checkpoint)

    fs.write_text(f"{checkpoint}/metadata", json.dumps({"id": "old-query"}))
    assert owned_ledger(output, checkpoint) == load_ledger(output)


def _rows(count: int, *, dead: int = 0) -> pa.RecordBatch:
    """Rows as `events.sink_rows` and `first_copies` hand them to a task."""
    kinds = ["events"] * count + ["dead_letters"] * dead
    n = count + dead
    arrival = [BATCH_TIME - timedelta(seconds=1)] * n
    return pa.RecordBatch.from_pydict(
        {
            "kind": kinds,
            "dedup_key": [f"key-{i}" for i in range(n)],
            "event_id": [f"id-{i}" if i < count else None for i in range(n)],
            "event_time": [arrival[0] if i < count else None for i in range(n)],
            "message_type": [f"message{i % 2}" if i < count else None for i in range(n)],
            "count": [i if i < count else None for i in range(n)],
            "raw": [None if i < count else b"{not json" for i in range(n)],
            "error": [None if i < count else "not a JSON object" for i in range(n)],
            "partition_key": ["pk"] * n,
            "shard_id": ["shardId-000000000000"] * n,
            "sequence_number": [str(100 + i) for i in range(n)],
            "sub_sequence_number": [0] * n,
            "arrival_time": arrival,
            "batch_time": [BATCH_TIME] * n,
        }
    )


def test_a_task_writes_hidden_files_and_summarizes_them(tmp_path):
    plan = BatchPlan(str(tmp_path), batch_id=7, sample_size=2)

    summary = write_partition(plan, 3, iter([_rows(3, dead=1)]))

    assert summary["files"] == {"events": "2026-11-25T16", "dead_letters": "2026-11-25T16"}
    assert summary["events"] == 3
    assert summary["dead_letters"] == 1
    assert summary["counts"] == {"message0": [2, 2], "message1": [1, 1]}
    assert [row[3] for row in summary["sample"]] == ["id-0", "id-1"]
    folder = tmp_path / "events" / "hour=2026-11-25T16"
    assert [p.name for p in folder.iterdir()] == [in_flight_name(7, 3)]
    # Nothing is published yet: a reader sees no rows.
    assert read_table(str(tmp_path), "events", ["event_id"]) == {}


def test_an_empty_partition_writes_nothing():
    plan = BatchPlan("/nonexistent", batch_id=0, sample_size=20)
    assert write_partition(plan, 0, iter([])) == {
        "partition": 0,
        "files": {},
        "events": 0,
        "dead_letters": 0,
        "counts": {},
        "sample": [],
    }


def _publish(
    output: Path, batch_id: int, rows: pa.RecordBatch, partition: int = 0, *, record: bool = True
) -> None:
    """As the sink does: the task's write, the rename, then (`record`) the ledger."""
    summary = write_partition(BatchPlan(str(output), batch_id, 0), partition, iter([rows]))
    for table_name, hour in summary["files"].items():
        folder = output / table_name / f"hour={hour}"
        fs.move(
            str(folder / in_flight_name(batch_id, partition)),
            str(folder / part_name(batch_id, partition)),
        )
    if record:
        save_ledger(str(output), Ledger("query", last_batch=batch_id))


def test_a_batch_is_in_the_report_whole_or_not_at_all(tmp_path):
    _publish(tmp_path, 0, _rows(2, dead=1))
    # Batch 1's first partition renamed, then the driver died before the second and the
    # ledger: the report still shows batch 0 alone.
    _publish(tmp_path, 1, _rows(3, dead=0), partition=0, record=False)
    assert sorted(set(read_table(str(tmp_path), "events", ["batch_id"])["batch_id"])) == [0]
    # The re-run renames the rest and records the batch: now all of it.
    _publish(tmp_path, 1, _rows(3, dead=0), partition=1)
    assert read_table(str(tmp_path), "events", ["batch_id"])["batch_id"].count(1) == 6


def test_a_batch_the_ledger_does_not_count_yet_is_left_out():
    names = [compacted_name(0, 4), part_name(5, 0), part_name(6, 0), part_name(6, 1)]
    assert visible_files(names, last_batch=5) == [compacted_name(0, 4), part_name(5, 0)]
    assert visible_files(names, last_batch=6) == sorted(names)


def test_compaction_leaves_one_file_per_hour_with_every_row_once(tmp_path):
    for batch_id in range(5):
        _publish(tmp_path, batch_id, _rows(2, dead=1))
    before = read_table(str(tmp_path), "events", ["event_id", "batch_id"])

    compact_hour(str(tmp_path), "2026-11-25T16")

    folder = tmp_path / "events" / "hour=2026-11-25T16"
    assert [p.name for p in folder.iterdir()] == [compacted_name(0, 4)]
    after = read_table(str(tmp_path), "events", ["event_id", "batch_id"])
    assert sorted(zip(*after.values(), strict=True)) == sorted(zip(*before.values(), strict=True))
    assert len(read_table(str(tmp_path), "dead_letters", ["error"])["error"]) == 5


def test_console_view_boxes_rows_like_show():
    view = batch_view(3, [["2026-11-25T16:05:00+00:00", "message1", 2, "a"]], 21, Totals())
    assert view.splitlines()[0] == "Batch: 3"
    assert "only showing the first 1 of 21 events" in view
    assert table(("a", "bb"), [[1, None]]).splitlines() == [
        "+---+----+",
        "|  a|  bb|",
        "+---+----+",
        "|  1|null|",
        "+---+----+",
    ]
