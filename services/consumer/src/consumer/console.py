"""The tutorial's console view: each batch's first events and the running per-type totals.

Printed from what the batch's one Spark job already returned (the tasks'
samples and counts, the ledger's totals), never from a second read of the sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consumer.ledger import Totals
from consumer.writing import SAMPLE_COLUMNS


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows boxed as Spark's `show()` boxes them."""
    cells = [[str(value) for value in header]] + [
        ["null" if value is None else str(value) for value in row] for row in rows
    ]
    # Spark pads every column to at least three characters.
    widths = [max(3, *(len(row[column]) for row in cells)) for column in range(len(header))]
    rule = "+" + "+".join("-" * width for width in widths) + "+"

    def line(row: list[str]) -> str:
        padded = (cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        return "|" + "|".join(padded) + "|"

    body = [line(row) for row in cells[1:]]
    return "\n".join([rule, line(cells[0]), rule, *body, rule])


def batch_view(batch_id: int, sample: list[list[Any]], events: int, totals: Totals) -> str:
    shown = f"only showing the first {len(sample)} of {events} events"
    if events <= len(sample):
        shown = ""
    totals_rows = [[name, values[0], values[1]] for name, values in sorted(totals.counts.items())]
    return "\n".join(
        part
        for part in (
            f"Batch: {batch_id}",
            table(SAMPLE_COLUMNS, sample),
            shown,
            "Running totals:",
            table(("message_type", "events", "count_sum"), totals_rows),
        )
        if part
    )
