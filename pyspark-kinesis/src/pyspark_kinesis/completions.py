"""Which partitions of a write have put all their records: a retry or replay skips them.

A write is named by what a task can know without the checkpoint: for a
streaming query, its id and the batch id (Spark's local properties
`sql.streaming.queryId` and `streaming.sql.batchId`, the same when a query
restarts from its checkpoint and re-runs a batch); for `df.write`, an id the
driver draws when it plans the write. A task that has put every record of its
partition leaves an empty marker file under `metadataPath`; a task of the same
write and partition that finds the marker writes nothing.

What this does not cover, and so why the sink is at-least-once: a task that
fails part-way (or dies after its last request but before its marker) is
written again whole, and a marker is only seen by tasks that share its
directory (on a cluster, give every node the same `metadataPath`). Markers are
files only: an `s3://` metadataPath, which the source's batch-end notes accept,
is refused for the sink (`refuse_s3_markers`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pyspark_kinesis.ends import default_root
from pyspark_kinesis.options import KinesisOptionError, s3_location

log = logging.getLogger(__name__)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def refuse_s3_markers(metadata_path: str | None) -> None:
    """Fails the write on the driver when `metadataPath` is on S3, where markers cannot go."""
    if metadata_path and s3_location(metadata_path):
        raise KinesisOptionError(
            f"the Kinesis sink keeps its completion markers in a directory, not on S3: "
            f"metadataPath {metadata_path!r} is for the source's batch-end notes only; give "
            "the sink a directory every node sees, or leave metadataPath out"
        )


class CompletedPartitions:
    """Completion markers for one stream's writes, as files under one directory."""

    def __init__(self, metadata_path: str | None, stream_name: str) -> None:
        self.root = Path(metadata_path or default_root()) / "sink" / _safe(stream_name)

    def is_done(self, write: tuple[str, str], partition: int) -> bool:
        return self._marker(write, partition).exists()

    def mark_done(self, write: tuple[str, str], partition: int) -> None:
        marker = self._marker(write, partition)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError as error:
            # Only a later retry's duplicates depend on it; the records are written.
            log.warning("cannot mark partition %d of write %s done: %s", partition, write, error)

    def forget(self, write: tuple[str, str]) -> None:
        """Drops a finished write's markers: nothing re-runs it any more."""
        shutil.rmtree(self._folder(write), ignore_errors=True)

    def forget_batches_before(self, query_id: str, batch_id: int) -> None:
        """Drops a query's markers of batches before `batch_id`: Spark never re-runs them.

        The batch being committed keeps its markers: should the driver die before
        Spark logs the commit, the restarted query re-runs it, and they spare it.
        """
        query_folder = self.root / _safe(query_id)
        if not query_folder.is_dir():
            return
        for folder in query_folder.iterdir():
            if folder.name.isdigit() and int(folder.name) < batch_id:
                shutil.rmtree(folder, ignore_errors=True)

    def _folder(self, write: tuple[str, str]) -> Path:
        return self.root / _safe(write[0]) / _safe(write[1])

    def _marker(self, write: tuple[str, str], partition: int) -> Path:
        return self._folder(write) / f"{partition}.done"
