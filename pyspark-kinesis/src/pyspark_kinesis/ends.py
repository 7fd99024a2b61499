"""Where tasks note how far each batch read a shard, so the driver need not read it again.

A task that read what a batch takes from a shard writes the end it found to a
small JSON file under `metadataPath`; the driver plans the next batch from it,
and a task reading the same batch again (a retry, a replay after a crash) reads
exactly to it. A missing file costs speed, never correctness: the driver then
reads the shard itself to find the same end (see `TakeRead`).

Files are named by everything that fixes a batch's records (stream, shard,
start, take), so they never go stale; each shard keeps its newest few.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import Position
from pyspark_kinesis.reading import ShardEnd
from pyspark_kinesis.shards import Take

log = logging.getLogger(__name__)

# Spark only ever re-runs the batch after the last committed one; a few spare
# entries cover a driver and a task that are one batch apart.
ENTRIES_KEPT_PER_SHARD = 8


def default_root() -> str:
    """A directory on this machine: enough when driver and executors share it (local mode)."""
    return str(Path(tempfile.gettempdir()) / f"pyspark-kinesis-{os.getuid()}")


class EndStore:
    """Batch ends by (shard, start, take), as files under one directory."""

    def __init__(self, options: KinesisOptions) -> None:
        self.options = options
        self.root = Path(options.metadata_path or default_root())

    def get(self, shard_id: str, start: Position, take: Take) -> ShardEnd | None:
        try:
            document = json.loads(self._path(shard_id, start, take).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable batch end for %s: %s", shard_id, error)
            return None
        return ShardEnd.from_json(document)

    def put(self, shard_id: str, start: Position, take: Take, end: ShardEnd) -> None:
        path = self._path(shard_id, start, take)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole, then renamed: a reader never sees half a file.
            with tempfile.NamedTemporaryFile(
                "w", dir=path.parent, prefix=".", suffix=".tmp", delete=False
            ) as partial:
                json.dump(end.to_json(), partial)
            os.replace(partial.name, path)
            self._prune(path.parent)
        except OSError as error:
            # Only speed depends on it: the driver finds the end by reading instead.
            log.warning("cannot note where %s's batch ended in %s: %s", shard_id, self.root, error)

    def _path(self, shard_id: str, start: Position, take: Take) -> Path:
        identity = [
            self.options.endpoint_url,
            self.options.region,
            self.options.stream_name,
            shard_id,
            str(start),
            take.to_json(),
        ]
        digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
        return self.root / _safe(self.options.stream_name) / _safe(shard_id) / f"{digest}.json"

    def _prune(self, folder: Path) -> None:
        entries = sorted(folder.glob("*.json"), key=lambda entry: entry.stat().st_mtime)
        for stale in entries[:-ENTRIES_KEPT_PER_SHARD]:
            stale.unlink(missing_ok=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
