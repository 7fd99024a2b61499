"""Where tasks note how far each batch read a shard, so the driver need not read it again.

A task that read what a batch takes from a shard writes the end it found to a
small JSON file under `metadataPath`; the driver plans the next batch from it,
and a task reading the same batch again (a retry, a replay after a crash) reads
exactly to it. A missing file costs speed, never correctness: the driver then
reads the shard itself to find the same end (see `TakeRead`).

Files are named by everything that fixes a batch's records (stream, shard,
start, take), so they never go stale; a query of several streams keeps each
stream's notes under its name. Each is written once: the first attempt
of a task to finish notes its end, and a later attempt that read to another
end fails rather than let two ends stand. The reader removes a batch's notes
once Spark has committed the batch after it (`KinesisStreamReader.commit`).
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


def default_root() -> str:
    """A directory on this machine: enough when driver and executors share it (local mode)."""
    return str(Path(tempfile.gettempdir()) / f"pyspark-kinesis-{os.getuid()}")


class EndStore:
    """One stream's batch ends by (shard, start, take), as files under one directory.

    A query of several streams keeps one store per stream (`KinesisOptions.for_stream`).
    """

    def __init__(self, options: KinesisOptions) -> None:
        # Its files are named by options.stream_name: with several, that is only the first.
        options.require_one_stream("an EndStore")
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

    def put(self, shard_id: str, start: Position, take: Take, end: ShardEnd) -> ShardEnd:
        """Notes `end` unless the batch's end is noted already; returns the end that stands."""
        path = self._path(shard_id, start, take)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole, then linked into place: a reader never sees half a file,
            # and the link fails if another attempt's note is there first.
            with tempfile.NamedTemporaryFile(
                "w", dir=path.parent, prefix=".", suffix=".tmp", delete=False
            ) as partial:
                json.dump(end.to_json(), partial)
            try:
                os.link(partial.name, path)
            except FileExistsError:
                return self.get(shard_id, start, take) or end
            finally:
                os.unlink(partial.name)
        except OSError as error:
            log.warning("cannot note where %s's batch ended in %s: %s", shard_id, self.root, error)
        return end

    def remove(self, shard_id: str, start: Position, take: Take) -> None:
        try:
            self._path(shard_id, start, take).unlink(missing_ok=True)
        except OSError as error:
            log.warning("cannot remove a committed batch's end for %s: %s", shard_id, error)

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


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
