"""A Kinesis that behaves like AWS: an HTTP proxy on loopback in front of LocalStack.

LocalStack's kinesis-mock is kinder than AWS: it never throttles, never answers
an empty page while records wait, never expires an iterator and shows every
record the instant it arrives. `KinesisProxy` forwards each call to LocalStack
and, as `Behaviours` says, answers the way AWS documents it may:

- per-shard read limits: 5 GetRecords/s and 2 MB/s (a bucket of 2 MB refilled
  at 2 MB/s, so one 10 MB answer shuts the shard for ~4 s), and 5
  GetShardIterator/s, refused with ProvisionedThroughputExceededException;
- per-shard write limits: 1,000 records/s and 1 MiB/s, refused per entry in
  PutRecords (and as an error for PutRecord);
- control-plane limits: ListShards 100/s per stream, DescribeStreamSummary 20/s,
  refused with LimitExceededException;
- empty pages with MillisBehindLatest > 0 where records wait (the first few
  reads of each shard, and/or a random share);
- iterators that expire (AWS: after 5 minutes; short in tests);
- late visibility: a record shows up only some time after its
  ApproximateArrivalTimestamp;
- KMSThrottlingException on reads and writes, 500 and 503 answers, and
  connections dropped without an answer, each at a seeded random rate.

The design decision: the proxy hands out its own shard iterators and keeps
LocalStack's behind them, so it knows which shard each GetRecords reads, can
expire iterators by age, and can answer an empty page whose next iterator
still points at the records it held back. Bodies are Kinesis' JSON 1.1, as
botocore sends them; a body in another encoding (CBOR, from the Java SDK) is
passed through untouched, with no behaviour applied.

It also runs alone, as a service on the Compose network
(`docker-compose.proxy.yml`): `python -m kinesis_proxy --upstream URL --listen
HOST:PORT [--aws] [--iterator-lifetime-s 30] ...`, every behaviour a flag or a
`KINESIS_PROXY_<NAME>` variable (flags win). `GET /_proxy/events` answers its
counters as JSON, `GET /_proxy/health` that it serves.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import takewhile
from typing import Any

import requests

from tests.kinesis_fan_out import (
    EVENT_STREAM_CONTENT_TYPE,
    OPERATIONS,
    ConnectionCut,
    FanOut,
    Reply,
)

# AWS's documented limits (Kinesis Data Streams quotas).
READS_PER_SHARD_PER_S = 5
READ_BYTES_PER_SHARD_PER_S = 2 * 1024 * 1024
ITERATORS_PER_SHARD_PER_S = 5
WRITES_PER_SHARD_PER_S = 1000
WRITE_BYTES_PER_SHARD_PER_S = 1024 * 1024
LIST_SHARDS_PER_STREAM_PER_S = 100
DESCRIBE_STREAM_SUMMARY_PER_S = 20
ITERATOR_LIFETIME_S = 300.0
# Enhanced fan-out: a subscription lasts 5 minutes; the same consumer and shard may subscribe
# again only 5 s after a successful call; a new consumer is CREATING a few seconds (not documented
# as a number: 2 s here).
SUBSCRIPTION_LIFETIME_S = 300.0
SUBSCRIBE_IN_USE_S = 5.0
CONSUMER_CREATING_S = 2.0

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
_HASH_KEY_BITS = 128
_DATA_PLANE = frozenset({"GetRecords", "GetShardIterator", "PutRecord", "PutRecords", "ListShards"})
_KMS_OPERATIONS = frozenset({"GetRecords", "PutRecord", "PutRecords"})


@dataclass
class Behaviours:
    """What the proxy does on top of LocalStack; everything off is a plain pass-through."""

    read_limits: bool = False
    write_limits: bool = False
    control_plane_limits: bool = False
    # Per shard, this many reads that would return records return an empty page instead.
    empty_pages_first: int = 0
    empty_page_probability: float = 0.0
    iterator_lifetime_s: float | None = None
    visibility_delay_s: float = 0.0
    kms_throttling_probability: float = 0.0
    server_error_probability: float = 0.0
    unavailable_probability: float = 0.0
    dropped_connection_probability: float = 0.0
    # Not AWS-like (AWS throttles by rate, not by chance): refuses a random share
    # of reads, for tests of the retry path alone.
    random_throttling_probability: float = 0.0
    faulty_operations: frozenset[str] = _DATA_PLANE
    seed: int = 7
    # Enhanced fan-out served by the proxy (see `kinesis_fan_out`); off: LocalStack's own.
    fan_out: bool = False
    consumer_creating_s: float = 0.0
    subscribe_in_use_s: float = 0.0
    subscription_lifetime_s: float | None = None
    subscription_cut_after_records: int | None = None
    fan_out_read_limits: bool = False
    # The limits themselves, AWS's unless a test needs them lower.
    reads_per_s: int = READS_PER_SHARD_PER_S
    read_bytes_per_s: int = READ_BYTES_PER_SHARD_PER_S
    iterators_per_s: int = ITERATORS_PER_SHARD_PER_S
    writes_per_s: int = WRITES_PER_SHARD_PER_S
    write_bytes_per_s: int = WRITE_BYTES_PER_SHARD_PER_S
    list_shards_per_s: int = LIST_SHARDS_PER_STREAM_PER_S
    describe_stream_summary_per_s: int = DESCRIBE_STREAM_SUMMARY_PER_S

    @classmethod
    def aws(cls, **overrides: Any) -> Behaviours:
        """AWS's limits and iterator lifetime, and no random faults."""
        settings: dict[str, Any] = {
            "read_limits": True,
            "write_limits": True,
            "control_plane_limits": True,
            "iterator_lifetime_s": ITERATOR_LIFETIME_S,
            "fan_out": True,
            "consumer_creating_s": CONSUMER_CREATING_S,
            "subscribe_in_use_s": SUBSCRIBE_IN_USE_S,
            "subscription_lifetime_s": SUBSCRIPTION_LIFETIME_S,
            "fan_out_read_limits": True,
        }
        return cls(**(settings | overrides))


class SlidingWindow:
    """At most `limit` units in any `period_s` (calls, records or bytes)."""

    def __init__(self, limit: int, period_s: float = 1.0) -> None:
        self.limit = limit
        self.period_s = period_s
        self._entries: deque[tuple[float, int]] = deque()
        self._used = 0

    def admit(self, now: float, weight: int = 1) -> bool:
        while self._entries and self._entries[0][0] <= now - self.period_s:
            self._used -= self._entries.popleft()[1]
        if self._used + weight > self.limit:
            return False
        self._entries.append((now, weight))
        self._used += weight
        return True


class ByteBucket:
    """AWS's read bytes: a call is refused while the shard is in debt; one call may overdraw."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._at = time.monotonic()

    def allows(self, now: float) -> bool:
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens > 0

    def spend(self, size: int) -> None:
        self._tokens -= size


@dataclass
class _Iterator:
    """A proxy iterator: LocalStack's, or a place to open one at (after a held-back page)."""

    stream: str
    shard_id: str
    created_s: float
    upstream: str | None = None
    after_sequence_number: str | None = None


class _ShardState:
    """One shard's limits, as the behaviours in force when it was first seen set them."""

    def __init__(self, limits: Behaviours) -> None:
        self.reads = SlidingWindow(limits.reads_per_s)
        self.read_bytes = ByteBucket(limits.read_bytes_per_s)
        self.iterators = SlidingWindow(limits.iterators_per_s)
        self.writes = SlidingWindow(limits.writes_per_s)
        self.write_bytes = SlidingWindow(limits.write_bytes_per_s)
        self.empty_pages_given = 0


@dataclass
class Answer:
    """What the proxy sends back; `body` None drops the connection without an answer."""

    status: int
    body: bytes | None
    content_type: str = JSON_CONTENT_TYPE
    # An event stream (SubscribeToShard): messages sent as they come, `body` unused.
    frames: Generator[bytes, None, None] | None = None


def _error(code: str, message: str, status: int = 400) -> Answer:
    return Answer(status, json.dumps({"__type": code, "message": message}).encode())


def _ok(document: dict[str, Any]) -> Answer:
    return Answer(200, json.dumps(document).encode())


def _from_reply(reply: Reply) -> Answer:
    if reply.frames is not None:
        return Answer(200, b"", EVENT_STREAM_CONTENT_TYPE, frames=reply.frames)
    if reply.code is not None:
        return _error(reply.code, reply.message, reply.status)
    return Answer(reply.status, json.dumps(reply.document or {}).encode())


def _stream_name(request: dict[str, Any]) -> str:
    if "StreamName" in request:
        return str(request["StreamName"])
    return str(request.get("StreamARN", "")).rpartition("/")[2]


def _hash_key(entry: dict[str, Any]) -> int:
    if entry.get("ExplicitHashKey"):
        return int(entry["ExplicitHashKey"])
    # Kinesis maps a partition key to a shard by its MD5, as a 128-bit number.
    return int.from_bytes(hashlib.md5(entry["PartitionKey"].encode()).digest(), "big")


def _size(record: dict[str, Any]) -> int:
    return len(base64.b64decode(record["Data"]))


class KinesisProxy(ThreadingHTTPServer):
    """Forwards Kinesis' JSON API to `upstream` (LocalStack), behaving as `behaviours` say.

    `behaviours` may be replaced while the proxy runs; `events` counts what it
    did (`records_read`, `throttled_reads`, `empty_pages`, `expired_iterators`, ...)
    and every call it was asked, by operation (`calls:GetRecords`, ...).
    """

    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        behaviours: Behaviours | None = None,
        address: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream
        self.behaviours = behaviours or Behaviours()
        self.events: Counter[str] = Counter()
        self.random = random.Random(self.behaviours.seed)
        self._lock = threading.Lock()
        self._iterators: dict[str, _Iterator] = {}
        self._shards: dict[tuple[str, str], _ShardState] = {}
        self._operation_windows: dict[tuple[str, str], SlidingWindow] = {}
        self._local = threading.local()
        self._fan_out = FanOut(
            lambda: self.behaviours,
            self._call,
            self._count,
            ByteBucket,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def server_close(self) -> None:
        self._fan_out.close()
        super().server_close()

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self.events)

    def answer(self, operation: str, raw: bytes, headers: Message) -> Answer:
        """The answer to one call; the body is parsed only when it is JSON."""
        if not headers.get("Content-Type", "").startswith("application/x-amz-json"):
            return self._forward(operation, raw, headers)
        request = json.loads(raw or b"{}")
        self._count(f"calls:{operation}")
        fault = self._fault(operation)
        if fault is not None:
            return fault
        handlers = {
            "GetShardIterator": self._get_shard_iterator,
            "GetRecords": self._get_records,
            "PutRecords": self._put_records,
            "PutRecord": self._put_record,
        }
        if self._over_control_plane_limit(operation, request):
            self._count("limited_control_plane_calls")
            return _error("LimitExceededException", f"Rate exceeded for {operation}")
        if operation in handlers:
            return handlers[operation](request, headers)
        if operation in OPERATIONS and self.behaviours.fan_out:
            return _from_reply(self._fan_out.answer(operation, request, headers))
        return self._forward(operation, raw, headers)

    # Faults and limits -------------------------------------------------------

    def _fault(self, operation: str) -> Answer | None:
        settings = self.behaviours
        with self._lock:
            draw = self.random.random()
        if (
            operation in {"GetRecords", "GetShardIterator", "ListShards"}
            and draw < settings.random_throttling_probability
        ):
            self._count("throttled_reads")
            return _error("ProvisionedThroughputExceededException", "Rate exceeded")
        draw -= settings.random_throttling_probability
        if operation in _KMS_OPERATIONS and 0 <= draw < settings.kms_throttling_probability:
            self._count("kms_throttled")
            return _error("KMSThrottlingException", "KMS request rate exceeded")
        if operation not in settings.faulty_operations:
            return None
        with self._lock:
            draw = self.random.random()
        if draw < settings.server_error_probability:
            self._count("server_errors")
            return _error("InternalFailure", "Internal service error", 500)
        draw -= settings.server_error_probability
        if draw < settings.unavailable_probability:
            self._count("unavailable")
            return _error("ServiceUnavailable", "Service unavailable", 503)
        draw -= settings.unavailable_probability
        if draw < settings.dropped_connection_probability:
            self._count("dropped_connections")
            return Answer(0, None)
        return None

    def _over_control_plane_limit(self, operation: str, request: dict[str, Any]) -> bool:
        if not self.behaviours.control_plane_limits:
            return False
        limits = {
            "ListShards": (self.behaviours.list_shards_per_s, _stream_name(request)),
            "DescribeStreamSummary": (self.behaviours.describe_stream_summary_per_s, ""),
        }
        if operation not in limits:
            return False
        limit, scope = limits[operation]
        with self._lock:
            window = self._operation_windows.setdefault((operation, scope), SlidingWindow(limit))
            return not window.admit(time.monotonic())

    def _shard(self, stream: str, shard_id: str) -> _ShardState:
        key = (stream, shard_id)
        if key not in self._shards:
            self._shards[key] = _ShardState(self.behaviours)
        return self._shards[key]

    def _count(self, event: str, times: int = 1) -> None:
        with self._lock:
            self.events[event] += times

    # Reads -------------------------------------------------------------------

    def _get_shard_iterator(self, request: dict[str, Any], headers: Message) -> Answer:
        stream, shard_id = _stream_name(request), str(request["ShardId"])
        if self.behaviours.read_limits:
            with self._lock:
                admitted = self._shard(stream, shard_id).iterators.admit(time.monotonic())
            if not admitted:
                self._count("throttled_iterators")
                return _error(
                    "ProvisionedThroughputExceededException",
                    f"Rate exceeded for shard {shard_id} in stream {stream}",
                )
        status, document = self._call("GetShardIterator", request, headers)
        if status != 200:
            return Answer(status, json.dumps(document).encode())
        token = self._issue(_Iterator(stream, shard_id, 0.0, upstream=document["ShardIterator"]))
        return _ok({"ShardIterator": token})

    def _get_records(self, request: dict[str, Any], headers: Message) -> Answer:
        with self._lock:
            state = self._iterators.get(str(request.get("ShardIterator")))
        if state is None:
            return _error("InvalidArgumentException", "Invalid ShardIterator")
        lifetime = self.behaviours.iterator_lifetime_s
        if lifetime is not None and time.monotonic() - state.created_s > lifetime:
            self._count("expired_iterators")
            return _error("ExpiredIteratorException", "Iterator expired")
        refused = self._refuse_read(state)
        if refused is not None:
            return refused
        upstream = self._upstream_iterator(state, headers)
        forwarded = {"ShardIterator": upstream} | (
            {"Limit": request["Limit"]} if "Limit" in request else {}
        )
        status, document = self._call("GetRecords", forwarded, headers)
        if status != 200:
            return Answer(status, json.dumps(document).encode())
        return _ok(self._as_aws_would(state, upstream, document))

    def _refuse_read(self, state: _Iterator) -> Answer | None:
        if not self.behaviours.read_limits:
            return None
        now = time.monotonic()
        with self._lock:
            shard = self._shard(state.stream, state.shard_id)
            admitted = shard.read_bytes.allows(now) and shard.reads.admit(now)
        if admitted:
            return None
        self._count("throttled_reads")
        return _error(
            "ProvisionedThroughputExceededException",
            f"Rate exceeded for shard {state.shard_id} in stream {state.stream}",
        )

    def _upstream_iterator(self, state: _Iterator, headers: Message) -> str:
        if state.upstream is not None:
            return state.upstream
        request = {
            "StreamName": state.stream,
            "ShardId": state.shard_id,
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": state.after_sequence_number,
        }
        status, document = self._call("GetShardIterator", request, headers)
        if status != 200:
            raise RuntimeError(f"LocalStack refused an iterator the proxy needs: {document}")
        return str(document["ShardIterator"])

    def _as_aws_would(
        self, state: _Iterator, upstream: str, document: dict[str, Any]
    ) -> dict[str, Any]:
        """LocalStack's GetRecords answer, with late visibility and empty pages applied."""
        records = document.get("Records", [])
        visible_until = time.time() - self.behaviours.visibility_delay_s
        shown = list(
            takewhile(lambda r: r["ApproximateArrivalTimestamp"] <= visible_until, records)
        )
        follower = _Iterator(state.stream, state.shard_id, 0.0)
        if shown and self._gives_empty_page(state):
            self._count("empty_pages")
            behind_ms = int((time.time() - shown[0]["ApproximateArrivalTimestamp"]) * 1000)
            document["MillisBehindLatest"] = max(
                1, behind_ms, document.get("MillisBehindLatest", 0)
            )
            shown, follower.upstream = [], upstream
        elif len(shown) < len(records):
            self._count("records_held_back", len(records) - len(shown))
            if shown:
                follower.after_sequence_number = shown[-1]["SequenceNumber"]
            else:
                follower.upstream = upstream
        else:
            follower.upstream = document.get("NextShardIterator")
        if self.behaviours.read_limits:
            with self._lock:
                self._shard(state.stream, state.shard_id).read_bytes.spend(
                    sum(_size(r) for r in shown)
                )
        self._count("records_read", len(shown))
        answer = dict(document, Records=shown)
        answer.pop("NextShardIterator", None)
        if follower.upstream is not None or follower.after_sequence_number is not None:
            answer["NextShardIterator"] = self._issue(follower)
        # else: a closed shard, read to its end
        return answer

    def _gives_empty_page(self, state: _Iterator) -> bool:
        settings = self.behaviours
        with self._lock:
            shard = self._shard(state.stream, state.shard_id)
            if shard.empty_pages_given < settings.empty_pages_first:
                shard.empty_pages_given += 1
                return True
            return self.random.random() < settings.empty_page_probability

    def _issue(self, state: _Iterator) -> str:
        state.created_s = time.monotonic()
        token = f"proxy-{uuid.uuid4().hex}"
        with self._lock:
            self._iterators[token] = state
        return token

    # Writes ------------------------------------------------------------------

    def _put_records(self, request: dict[str, Any], headers: Message) -> Answer:
        stream = _stream_name(request)
        entries: list[dict[str, Any]] = request["Records"]
        admitted = self._admit_writes(stream, entries, headers)
        results: list[dict[str, Any]] = [
            {
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": f"Rate exceeded for shard in stream {stream}",
            }
            for _ in entries
        ]
        accepted = [index for index, ok in enumerate(admitted) if ok]
        self._count("refused_writes", len(entries) - len(accepted))
        answer: dict[str, Any] = {"EncryptionType": "NONE"}
        if accepted:
            forwarded = dict(request, Records=[entries[index] for index in accepted])
            status, document = self._call("PutRecords", forwarded, headers)
            if status != 200:
                return Answer(status, json.dumps(document).encode())
            for index, result in zip(accepted, document["Records"], strict=True):
                results[index] = result
            answer = document
        answer["Records"] = results
        answer["FailedRecordCount"] = sum(1 for result in results if "ErrorCode" in result)
        return _ok(answer)

    def _put_record(self, request: dict[str, Any], headers: Message) -> Answer:
        stream = _stream_name(request)
        if not self._admit_writes(stream, [request], headers)[0]:
            self._count("refused_writes")
            return _error(
                "ProvisionedThroughputExceededException", f"Rate exceeded in stream {stream}"
            )
        status, document = self._call("PutRecord", request, headers)
        return Answer(status, json.dumps(document).encode())

    def _admit_writes(
        self, stream: str, entries: list[dict[str, Any]], headers: Message
    ) -> list[bool]:
        if not self.behaviours.write_limits:
            return [True] * len(entries)
        ranges = self._open_shard_ranges(stream, headers)
        now = time.monotonic()
        admitted = []
        with self._lock:
            for entry in entries:
                key = _hash_key(entry)
                shard_id = next(
                    (shard for shard, (low, high) in ranges.items() if low <= key <= high), None
                )
                if shard_id is None:  # an unknown stream: LocalStack answers it
                    admitted.append(True)
                    continue
                shard = self._shard(stream, shard_id)
                size = _size(entry) + len(entry["PartitionKey"].encode())
                admitted.append(shard.writes.admit(now) and shard.write_bytes.admit(now, size))
        return admitted

    def _open_shard_ranges(self, stream: str, headers: Message) -> dict[str, tuple[int, int]]:
        ranges: dict[str, tuple[int, int]] = {}
        request: dict[str, Any] = {"StreamName": stream}
        while True:
            status, document = self._call("ListShards", request, headers)
            if status != 200:
                return ranges
            for shard in document["Shards"]:
                if "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                    hash_range = shard["HashKeyRange"]
                    ranges[shard["ShardId"]] = (
                        int(hash_range["StartingHashKey"]),
                        int(hash_range["EndingHashKey"]),
                    )
            if not document.get("NextToken"):
                return ranges
            request = {"NextToken": document["NextToken"]}

    # LocalStack --------------------------------------------------------------

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session

    def _call(
        self, operation: str, request: dict[str, Any], headers: Message
    ) -> tuple[int, dict[str, Any]]:
        answer = self._forward(operation, json.dumps(request).encode(), headers)
        return answer.status, json.loads(answer.body or b"{}")

    def _forward(self, operation: str, raw: bytes, headers: Message) -> Answer:
        passed = {
            name: value
            for name, value in headers.items()
            if name.lower() not in ("host", "content-length", "x-amz-target")
        }
        passed["X-Amz-Target"] = f"Kinesis_20131202.{operation}"
        try:
            answer = self._session().post(self.upstream + "/", data=raw, headers=passed, timeout=60)
        except requests.RequestException as error:
            # LocalStack away (starting, restarting): a gateway's answer, which clients retry.
            self._count("upstream_unreachable")
            return _error("ServiceUnavailable", f"upstream {self.upstream}: {error}", 503)
        return Answer(answer.status_code, answer.content, answer.headers.get("Content-Type", ""))


class _Handler(BaseHTTPRequestHandler):
    server: KinesisProxy
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        answer = self.server.answer(operation, body, self.headers)
        if answer.body is None:
            self.close_connection = True  # dropped: the client sees the connection close
            return
        if answer.frames is not None:
            self._send_event_stream(answer)
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _send_event_stream(self, answer: Answer) -> None:
        """Each message as an HTTP chunk as soon as it is made, until the stream ends or
        the client hangs up."""
        assert answer.frames is not None
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        try:
            for frame in answer.frames:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except ConnectionCut:
            pass  # closed with no terminating chunk: the subscriber sees the stream break
        except OSError:
            pass  # the subscriber closed its end
        finally:
            answer.frames.close()

    def do_GET(self) -> None:
        document: dict[str, Any]
        if self.path == "/_proxy/events":
            document = dict(self.server.counters())
        elif self.path == "/_proxy/health":
            document = {"status": "serving", "upstream": self.server.upstream}
        else:
            self.send_error(404)
            return
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def running_proxy(upstream: str, behaviours: Behaviours | None = None) -> Iterator[KinesisProxy]:
    """A proxy serving on a loopback port for the duration of the block."""
    proxy = KinesisProxy(upstream, behaviours)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


# Running alone -----------------------------------------------------------------

ENVIRONMENT_PREFIX = "KINESIS_PROXY_"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass
class ProxySettings:
    upstream: str
    host: str
    port: int
    behaviours: Behaviours


def _parse_value(name: str, default: Any, text: str) -> Any:
    """A behaviour's value from text, typed as its default is."""
    lowered = text.strip().lower()
    if isinstance(default, bool):
        if lowered not in _TRUE | _FALSE:
            raise ValueError(f"{name}: {text!r} is not true or false")
        return lowered in _TRUE
    if isinstance(default, int):
        return int(text)
    if isinstance(default, frozenset):
        return frozenset(part.strip() for part in text.split(",") if part.strip())
    # floats, and iterator_lifetime_s (None: never expire)
    return None if lowered in {"", "none", "never"} else float(text)


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ProxySettings:
    """Where to listen and forward, and the behaviours: flags, else KINESIS_PROXY_* variables.

    `--aws` (KINESIS_PROXY_AWS=true) starts from `Behaviours.aws()`, every other
    behaviour from off; each behaviour is named as its `Behaviours` field,
    `--empty-page-probability 0.1` or KINESIS_PROXY_EMPTY_PAGE_PROBABILITY=0.1.
    """
    environ = os.environ if environ is None else environ
    fields = {field.name: field for field in dataclasses.fields(Behaviours)}
    parser = argparse.ArgumentParser(prog="python -m kinesis_proxy", description=__doc__)
    parser.add_argument("--upstream", help="LocalStack's URL (KINESIS_PROXY_UPSTREAM)")
    parser.add_argument("--listen", help="HOST:PORT to serve on (KINESIS_PROXY_LISTEN)")
    parser.add_argument("--aws", action="store_const", const="true", help="AWS's limits")
    for name in fields:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE")
    given = vars(parser.parse_args(argv))

    def setting(name: str) -> str | None:
        value = given.get(name)
        return value if value is not None else environ.get(ENVIRONMENT_PREFIX + name.upper())

    upstream = setting("upstream")
    if not upstream:
        parser.error("--upstream (or KINESIS_PROXY_UPSTREAM) is required")
    host, _, port = (setting("listen") or "127.0.0.1:4567").rpartition(":")
    overrides = {}
    for name, field in fields.items():
        text = setting(name)
        if text is not None:
            try:
                overrides[name] = _parse_value(name, field.default, text)
            except ValueError as error:
                parser.error(str(error))
    aws = _parse_value("aws", False, setting("aws") or "false")
    behaviours = Behaviours.aws(**overrides) if aws else Behaviours(**overrides)
    return ProxySettings(upstream.rstrip("/"), host or "127.0.0.1", int(port), behaviours)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    proxy = KinesisProxy(settings.upstream, settings.behaviours, (settings.host, settings.port))

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(
        f"kinesis proxy on {settings.host}:{proxy.server_address[1]} -> {settings.upstream}: "
        f"{settings.behaviours}",
        file=sys.stderr,
        flush=True,
    )
    try:
        proxy.serve_forever()
    finally:
        print(f"kinesis proxy stopping; it did: {proxy.counters()}", file=sys.stderr, flush=True)
        proxy.server_close()


if __name__ == "__main__":
    main()
