"""Kinesis' JSON 1.1 answers, and what the proxy reads from a request or record."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass
class Answer:
    """What the proxy sends back; `body` None drops the connection without an answer."""

    status: int
    body: bytes | None
    content_type: str = JSON_CONTENT_TYPE


def error(code: str, message: str, status: int = 400) -> Answer:
    return Answer(status, json.dumps({"__type": code, "message": message}).encode())


def ok(document: dict[str, Any]) -> Answer:
    return Answer(200, json.dumps(document).encode())


def passed_on(status: int, document: dict[str, Any]) -> Answer:
    """LocalStack's answer, as it gave it."""
    return Answer(status, json.dumps(document).encode())


def throttled(message: str) -> Answer:
    return error("ProvisionedThroughputExceededException", message)


def stream_name(request: dict[str, Any]) -> str:
    if "StreamName" in request:
        return str(request["StreamName"])
    return str(request.get("StreamARN", "")).rpartition("/")[2]


def hash_key(entry: dict[str, Any]) -> int:
    if entry.get("ExplicitHashKey"):
        return int(entry["ExplicitHashKey"])
    # Kinesis maps a partition key to a shard by its MD5, as a 128-bit number.
    return int.from_bytes(
        hashlib.md5(entry["PartitionKey"].encode(), usedforsecurity=False).digest(), "big"
    )


def data_size(record: dict[str, Any]) -> int:
    return len(base64.b64decode(record["Data"]))
