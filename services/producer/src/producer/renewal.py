"""The shard renewer: `python -m producer.renewal`, the stack's `shard-renewer` service.

LocalStack's Kinesis engine, kinesis-mock, costs more per PutRecords and
GetRecords call the more records the shard it touches holds (it hashes or
scans the shard's whole record list), and it keeps every record for good. So
the renewer counts the records each open shard holds, and once one holds
SHARD_RENEWAL_RECORDS it renews that shard: splits it at the middle of its hash
range, then merges the two children back. The stream keeps its open shards and
their hash ranges; the renewed one is closed and an empty one takes its keys.
Readers see an ordinary reshard (the parent, then its children, then their
merged child). One log line says so each time.

It runs only against LocalStack: with no endpoint (real AWS) it refuses to
start, and SHARD_RENEWAL_RECORDS=0 turns it off. The design decision a reader
must know: shards are counted by reading them (GetRecords from each open
shard's start, then from where the last count ended), not from kinesis-mock's
internals, so any writer's records count, and a restarted renewer counts again.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from producer.settings import SettingsError, ShardRenewalSettings, load_renewal_settings
from producer.stream import ProducerError, explain, make_client, wait_until_active

log = logging.getLogger("producer.renewal")

EXIT_OK, EXIT_STARTUP = 0, 2
# GetRecords returns at most 10,000 records per call.
READ_LIMIT = 10_000


def shard_to_renew(counts: Mapping[str, int], limit: int) -> str | None:
    """The open shard holding the most records, if it holds at least `limit` (0: never)."""
    if limit <= 0 or not counts:
        return None
    fullest = max(counts, key=lambda shard_id: (counts[shard_id], shard_id))
    return fullest if counts[fullest] >= limit else None


def middle_hash_key(shard: Mapping[str, Any]) -> str:
    """Where SplitShard cuts `shard` (a ListShards entry) in two halves of its hash range."""
    low, high = (int(shard["HashKeyRange"][key]) for key in ("StartingHashKey", "EndingHashKey"))
    return str((low + high) // 2 + 1)


def open_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """The stream's open shards (ListShards entries), lowest hash key first."""
    # AT_LATEST lists only the open shards: one page, however many renewals closed (the
    # list_shards paginator resends StreamName with NextToken, which Kinesis refuses).
    shards = kinesis.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    return sorted(shards, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def renew(kinesis: Any, stream: str, shard: Mapping[str, Any]) -> str:
    """Replaces the open `shard` with an empty one over the same hash range (a split at its
    middle, then a merge of the two children); returns the new shard's id."""
    kinesis.split_shard(
        StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=middle_hash_key(shard)
    )
    wait_until_active(kinesis, stream)
    left, right = (
        s for s in open_shards(kinesis, stream) if s.get("ParentShardId") == shard["ShardId"]
    )
    kinesis.merge_shards(
        StreamName=stream, ShardToMerge=left["ShardId"], AdjacentShardToMerge=right["ShardId"]
    )
    wait_until_active(kinesis, stream)
    children = {left["ShardId"], right["ShardId"]}
    (merged,) = (s for s in open_shards(kinesis, stream) if s.get("ParentShardId") in children)
    return str(merged["ShardId"])


@dataclass
class Counted:
    """Where the count of one open shard stands: the iterator after its last record read
    (None once the shard was found closed: it holds no more)."""

    iterator: str | None
    records: int = 0


class ShardCounts:
    """The records each open shard of `stream` holds, counted by reading on from the last count."""

    def __init__(self, kinesis: Any, stream: str) -> None:
        self.kinesis, self.stream = kinesis, stream
        self.shards: dict[str, dict[str, Any]] = {}
        self._counted: dict[str, Counted] = {}

    def refresh(self) -> dict[str, int]:
        """Lists the open shards and counts what each holds now; closed shards are forgotten."""
        self.shards = {s["ShardId"]: s for s in open_shards(self.kinesis, self.stream)}
        self._counted = {
            shard_id: self._read_on(self._counted.get(shard_id) or self._from_start(shard_id))
            for shard_id in self.shards
        }
        return {shard_id: counted.records for shard_id, counted in self._counted.items()}

    def forget(self) -> None:
        """Counts again from each shard's start next time (after an error, the iterators
        may be stale)."""
        self._counted = {}

    def _from_start(self, shard_id: str) -> Counted:
        answer = self.kinesis.get_shard_iterator(
            StreamName=self.stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )
        return Counted(answer["ShardIterator"])

    def _read_on(self, counted: Counted) -> Counted:
        while counted.iterator:
            answer = self.kinesis.get_records(ShardIterator=counted.iterator, Limit=READ_LIMIT)
            # No next iterator: the shard was closed since it was listed (a reshard).
            records = counted.records + len(answer["Records"])
            counted = Counted(answer.get("NextShardIterator"), records)
            if not answer["Records"] or not answer.get("MillisBehindLatest"):
                break
        return counted


def run_renewals(settings: ShardRenewalSettings, kinesis: Any, stop: threading.Event) -> None:
    """Counts and renews every SHARD_RENEWAL_CHECK_SECONDS until `stop` is set; a failed
    check (LocalStack restarting, the stream resharding) is logged and tried again."""
    stream, limit = settings.kinesis_stream_name, settings.shard_renewal_records
    counts = ShardCounts(kinesis, stream)
    last_problem = ""
    while not stop.is_set():
        try:
            held = counts.refresh()
            shard_id = shard_to_renew(held, limit)
            if shard_id is not None:
                new_id = renew(kinesis, stream, counts.shards[shard_id])
                log.info(
                    "renewed shard %s of stream %s (%d records) as the empty shard %s: "
                    "LocalStack's Kinesis slows as a shard fills (SHARD_RENEWAL_RECORDS=%d; "
                    "0 turns this off)",
                    shard_id,
                    stream,
                    held[shard_id],
                    new_id,
                    limit,
                )
                continue  # count again at once: another shard may be due
            last_problem = ""
        except (ClientError, BotoCoreError, ProducerError) as error:
            problem = str(error) if isinstance(error, ProducerError) else explain(error, settings)
            if problem != last_problem:
                log.warning(
                    "shard renewal paused: %s; trying again every %.0f s",
                    problem,
                    settings.shard_renewal_check_seconds,
                )
                last_problem = problem
            counts.forget()
        stop.wait(settings.shard_renewal_check_seconds)


def run() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # botocore's DEBUG lines carry signed request headers: never let them through.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        settings = load_renewal_settings()
    except SettingsError as error:
        log.error("configuration error: %s", error)
        return EXIT_STARTUP
    logging.getLogger().setLevel(settings.producer_log_level)
    if settings.shard_renewal_records == 0:
        log.info("shard renewal is off (SHARD_RENEWAL_RECORDS=0): shards stay as they are")
        return EXIT_OK
    if not settings.kinesis_endpoint_url:
        log.error(
            "shard renewal runs only against LocalStack, and KINESIS_ENDPOINT_URL is empty "
            "(real AWS): nothing renewed; set SHARD_RENEWAL_RECORDS=0 or point it at LocalStack"
        )
        return EXIT_STARTUP
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    log.info(
        "renewing each open shard of stream %s at %d records (checked every %.0f s)",
        settings.kinesis_stream_name,
        settings.shard_renewal_records,
        settings.shard_renewal_check_seconds,
    )
    run_renewals(settings, make_client(settings), stop)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run())
