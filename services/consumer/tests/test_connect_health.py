"""The connect profile's healthcheck: its hand-written request is PySpark's own message."""

from __future__ import annotations

import socket

import pytest
from consumer.connect_health import SESSION_ID, USER_ID, answers, version_request
from pyspark.sql.connect.proto import base_pb2

pytestmark = pytest.mark.unit


def test_the_request_is_pysparks_analyze_plan_for_the_version() -> None:
    expected = base_pb2.AnalyzePlanRequest(
        session_id=SESSION_ID,
        user_context=base_pb2.UserContext(user_id=USER_ID),
        spark_version=base_pb2.AnalyzePlanRequest.SparkVersion(),
    )
    assert version_request() == expected.SerializeToString()
    parsed = base_pb2.AnalyzePlanRequest.FromString(version_request())
    assert parsed.WhichOneof("analyze") == "spark_version"


def test_nothing_listening_is_not_healthy() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Bound, not listening: the connection is refused.
    assert answers(f"127.0.0.1:{port}", timeout_s=2.0) is False
