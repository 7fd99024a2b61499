"""Where tasks note how far each batch read a shard, so the driver need not read it again.

A task that read what a batch takes from a shard writes the end it found as a
small JSON document under `metadataPath`; the driver plans the next batch from
it, and a task reading the same batch again (a retry, a replay after a crash)
reads exactly to it. A missing note costs speed, never correctness: the driver
then reads the shard itself to find the same end (see `TakeRead`).

Two stores, one interface (`EndStore`), picked by `metadataPath`'s scheme
(`end_store`): files in a directory that the driver and every executor see (a
local path, or a shared mount), or objects under an `s3://` (or `s3a://`)
prefix, for clusters whose checkpoints live on S3. Notes are named by
everything that fixes a batch's records (stream, shard, start, take), so they
never go stale; a query of several streams keeps each stream's notes under its
name, in a store of its own. Each is written once: the first attempt of a task
to finish notes its end, and a later attempt that read to another end fails
rather than let two ends stand (a directory: a hard link that fails if the file
exists; S3: a conditional write, `If-None-Match: *`, which AWS S3 and LocalStack
4.14 honour; an S3-compatible store that ignores it lets a later attempt's note
replace the first). The reader removes a batch's notes
once Spark has committed the batch after it (`KinesisStreamReader.commit`).

A note is a `ShardEnd` as JSON (`ShardEnd.to_json`, `ShardEnd.from_json`): this
module owns the format, and tests/golden/note-*.json hold notes as written, which
every later release must still load (a query's notes outlive an upgrade).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pyspark_kinesis.client import error_code, make_s3_client
from pyspark_kinesis.options import KinesisOptions, s3_location
from pyspark_kinesis.positions import Position, parse_position
from pyspark_kinesis.shards import Take

log = logging.getLogger(__name__)

# S3 answers 409 while another conditional write of the same key is under way: the
# other attempt's note is then about to stand, or its write failed and ours may.
_CONCURRENT_WRITE = "ConditionalRequestConflict"
_ALREADY_WRITTEN = "PreconditionFailed"
_MISSING = frozenset({"NoSuchKey", "404"})
# How long a task keeps trying to write its note while S3 reports a concurrent write.
NOTE_WRITE_PATIENCE_S = 30.0


@dataclass(frozen=True)
class ShardEnd:
    """Where a batch's read of a shard stopped: the next batch starts at `position`.

    The other fields say what the reader saw, not what the batch read (two
    reads of the same batch may differ in them): `next_read_s`, when the shard
    may be read again (its reader's pace); `next_arrival_s`, the arrival time
    of the first record after `position` when the read's last page held one
    (the batch left it for the next), so the driver need not look at the shard
    again to know that it has records; `millis_behind_latest` of that page.
    """

    position: Position
    ended: bool
    records: int
    next_read_s: float = field(default=0.0, compare=False)
    next_arrival_s: float | None = field(default=None, compare=False)
    millis_behind_latest: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The note's document (as in tests/golden/note-*.json)."""
        document: dict[str, Any] = {
            "position": str(self.position),
            "ended": self.ended,
            "records": self.records,
            "nextRead": self.next_read_s,
            "millisBehindLatest": self.millis_behind_latest,
        }
        if self.next_arrival_s is not None:
            document["nextArrival"] = self.next_arrival_s
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ShardEnd:
        """The end a note says, written by this release or an earlier one (a field added
        since, such as `nextArrival`, takes its default)."""
        next_arrival = document.get("nextArrival")
        return cls(
            parse_position(document["position"]),
            bool(document["ended"]),
            int(document["records"]),
            float(document.get("nextRead", 0.0)),
            None if next_arrival is None else float(next_arrival),
            int(document.get("millisBehindLatest", 0)),
        )


def default_root() -> str:
    """A directory on this machine: enough when driver and executors share it (local mode)."""
    return str(Path(tempfile.gettempdir()) / f"pyspark-kinesis-{os.getuid()}")


def end_store(options: KinesisOptions) -> EndStore:
    """The store `metadataPath` names: S3 for an `s3://` or `s3a://` URL, else a directory."""
    if options.metadata_path and s3_location(options.metadata_path):
        return S3EndStore(options)
    return DirectoryEndStore(options)


class EndStore(ABC):
    """One stream's batch ends by (shard, start, take). A failure to read or write one is
    logged, never raised: it costs the driver a read of the batch, not the batch.

    A query of several streams keeps one store per stream (`KinesisOptions.for_stream`).
    """

    def __init__(self, options: KinesisOptions) -> None:
        # Its files are named by options.stream_name: with several, that is only the first.
        options.require_one_stream("an EndStore")
        self.options = options

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the notes are, for messages."""

    @abstractmethod
    def get(self, shard_id: str, start: Position, take: Take) -> ShardEnd | None:
        """The noted end of the batch, or None."""

    @abstractmethod
    def put(self, shard_id: str, start: Position, take: Take, end: ShardEnd) -> ShardEnd:
        """Notes `end` unless the batch's end is noted already; returns the end that stands."""

    @abstractmethod
    def remove(self, shard_id: str, start: Position, take: Take) -> None:
        """Forgets the batch's note (Spark will not run the batch again)."""

    def _name(self, shard_id: str, start: Position, take: Take) -> str:
        """The note's path under the store's root: stream/shard/digest.json."""
        identity = [
            self.options.endpoint_url,
            self.options.region,
            self.options.stream_name,
            shard_id,
            str(start),
            take.to_json(),
        ]
        digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
        return f"{_safe(self.options.stream_name)}/{_safe(shard_id)}/{digest}.json"


class DirectoryEndStore(EndStore):
    """Notes as files under one directory (default: this machine's temp directory)."""

    def __init__(self, options: KinesisOptions) -> None:
        super().__init__(options)
        self.root = Path(options.metadata_path or default_root())

    @property
    def location(self) -> str:
        return str(self.root)

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
        return self.root / self._name(shard_id, start, take)


class S3EndStore(EndStore):
    """Notes as objects under an S3 prefix, through this process's S3 client.

    The client is the source's identity's (keys, role or default chain), in
    the options' region, at `endpointUrl` when that is not an AWS endpoint
    (LocalStack serves Kinesis and S3 on one port); see `make_s3_client`.
    """

    def __init__(self, options: KinesisOptions) -> None:
        super().__init__(options)
        assert options.metadata_path is not None
        location = s3_location(options.metadata_path)
        assert location is not None
        self.bucket, self.prefix = location

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def get(self, shard_id: str, start: Position, take: Take) -> ShardEnd | None:
        key = self._key(shard_id, start, take)
        try:
            answer = self._client().get_object(Bucket=self.bucket, Key=key)
            document = json.loads(answer["Body"].read())
        except ClientError as error:
            if error_code(error) not in _MISSING:
                log.warning(
                    "cannot read batch end for %s at %s: %s", shard_id, self._url(key), error
                )
            return None
        except (BotoCoreError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable batch end for %s: %s", shard_id, error)
            return None
        return ShardEnd.from_json(document)

    def put(self, shard_id: str, start: Position, take: Take, end: ShardEnd) -> ShardEnd:
        key = self._key(shard_id, start, take)
        body = json.dumps(end.to_json()).encode()
        patience_ends = time.monotonic() + NOTE_WRITE_PATIENCE_S
        pause_s = 0.1
        while True:
            try:
                # Only if no note is there: S3 refuses it (412) when one is, atomically.
                self._client().put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    IfNoneMatch="*",
                    ContentType="application/json",
                )
                return end
            except ClientError as error:
                code = error_code(error)
                if code == _ALREADY_WRITTEN:
                    return self.get(shard_id, start, take) or end
                if code != _CONCURRENT_WRITE or time.monotonic() > patience_ends:
                    self._cannot_note(shard_id, key, error)
                    return end
            except BotoCoreError as error:
                self._cannot_note(shard_id, key, error)
                return end
            # Backing off while the other attempt's write settles (S3 asks to try again).
            time.sleep(pause_s)
            pause_s = min(2 * pause_s, 2.0)

    def remove(self, shard_id: str, start: Position, take: Take) -> None:
        key = self._key(shard_id, start, take)
        try:
            self._client().delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            log.warning("cannot remove a committed batch's end at %s: %s", self._url(key), error)

    def _cannot_note(self, shard_id: str, key: str, error: Exception) -> None:
        log.warning("cannot note where %s's batch ended at %s: %s", shard_id, self._url(key), error)

    def _client(self) -> Any:
        # Made (once per process) where it is used: the store travels pickled to executors.
        return make_s3_client(self.options)

    def _key(self, shard_id: str, start: Position, take: Take) -> str:
        name = self._name(shard_id, start, take)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
