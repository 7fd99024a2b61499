"""`python -m consumer.connect_health`: exit 0 once the Spark Connect server answers.

The connect profile's healthcheck. It asks the server for Spark's version (an AnalyzePlan
call, as `spark.version` makes it) and imports only grpc: PySpark's Connect client would
import pandas and pyarrow first, about a CPU second per check on a laptop, every few
seconds for the server's whole life. The request is written out by hand; a unit test
holds it to PySpark's own generated message. Every check uses the same session id, so
no sessions pile up on the server.
"""

from __future__ import annotations

import sys

import grpc

ANALYZE_PLAN = "/spark.connect.SparkConnectService/AnalyzePlan"
SESSION_ID = "5e55c0de-0000-4000-8000-0000000c0de5"
USER_ID = "healthcheck"
# Protobuf field tags of AnalyzePlanRequest: session_id (1), user_context (2, whose user_id
# is 1) and spark_version (10), each length-delimited (wire type 2).
_SESSION_ID, _USER_CONTEXT, _USER_ID, _SPARK_VERSION = 0x0A, 0x12, 0x0A, 0x52


def _field(tag: int, payload: bytes) -> bytes:
    # Every payload here is shorter than 128 bytes: its length is one varint byte.
    return bytes([tag, len(payload)]) + payload


def version_request() -> bytes:
    """An AnalyzePlanRequest for Spark's version, serialized."""
    user_context = _field(_USER_ID, USER_ID.encode())
    return (
        _field(_SESSION_ID, SESSION_ID.encode())
        + _field(_USER_CONTEXT, user_context)
        + _field(_SPARK_VERSION, b"")
    )


def answers(target: str, timeout_s: float) -> bool:
    """Whether the server at `target` (host:port) answered the version request."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(ANALYZE_PLAN)
        try:
            call(version_request(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return True


def main() -> int:
    return 0 if answers("127.0.0.1:15002", timeout_s=4.0) else 1


if __name__ == "__main__":
    sys.exit(main())
