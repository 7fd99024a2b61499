"""Merges an hour folder's small files into one, once no batch can write to that hour again.

Spark re-runs at most the batch after the last committed one, so once a batch
of a later hour has been published every batch of the earlier hours is
final: their files can be merged. The merge is written first and the parts
removed after, so a crash in between leaves rows that `layout.visible_files`
counts once; the next merge of that folder removes what is left.
"""

from __future__ import annotations

import logging

from consumer import fs
from consumer.layout import (
    TABLES,
    compacted_name,
    hour_folder,
    parse_name,
    superseded_files,
    visible_files,
)
from consumer.writing import SCHEMAS

log = logging.getLogger(__name__)


def compact_hour(output_path: str, hour: str) -> None:
    """Every table's folder of `hour` as one file; nothing else of the folder left."""
    for table in TABLES:
        folder = hour_folder(f"{output_path}/{table}", hour)
        names = fs.names_in(folder)
        visible = visible_files(names)
        if len(visible) > 1:
            parsed = [parse_name(name) for name in visible]
            first = min(p.first_batch for p in parsed if p is not None)
            last = max(p.last_batch for p in parsed if p is not None)
            merged = fs.read_parquet([f"{folder}/{name}" for name in visible])
            merged = merged.sort_by([("batch_id", "ascending")]).cast(SCHEMAS[table])
            fs.write_parquet(merged.combine_chunks(), f"{folder}/{compacted_name(first, last)}")
            names = fs.names_in(folder)
        for name in superseded_files(names):
            fs.delete(f"{folder}/{name}")
    log.info("compacted hour %s", hour)
