"""Answers AWS may give whatever the load: KMS throttling, 500, 503, dropped connections,
and the control plane's rate limits. Each fault is drawn from the state's seeded random."""

from __future__ import annotations

import time
from typing import Any

from kinesis_proxy.answers import Answer, error, stream_name, throttled
from kinesis_proxy.state import ProxyState

KMS_OPERATIONS = frozenset({"GetRecords", "PutRecord", "PutRecords"})
_READS = frozenset({"GetRecords", "GetShardIterator", "ListShards"})


def injected_fault(state: ProxyState, operation: str) -> Answer | None:
    """A fault drawn for this call, or None to answer it."""
    settings = state.behaviours
    draw = state.draw()
    if operation in _READS and draw < settings.random_throttling_probability:
        state.count("throttled_reads")
        return throttled("Rate exceeded")
    draw -= settings.random_throttling_probability
    if operation in KMS_OPERATIONS and 0 <= draw < settings.kms_throttling_probability:
        state.count("kms_throttled")
        return error("KMSThrottlingException", "KMS request rate exceeded")
    if operation not in settings.faulty_operations:
        return None
    return _server_fault(state)


def _server_fault(state: ProxyState) -> Answer | None:
    settings = state.behaviours
    draw = state.draw()
    if draw < settings.server_error_probability:
        state.count("server_errors")
        return error("InternalFailure", "Internal service error", 500)
    draw -= settings.server_error_probability
    if draw < settings.unavailable_probability:
        state.count("unavailable")
        return error("ServiceUnavailable", "Service unavailable", 503)
    draw -= settings.unavailable_probability
    if draw < settings.dropped_connection_probability:
        state.count("dropped_connections")
        return Answer(0, None)
    return None


def over_control_plane_limit(state: ProxyState, operation: str, request: dict[str, Any]) -> bool:
    """Whether ListShards (per stream) or DescribeStreamSummary (per account) is over its rate."""
    settings = state.behaviours
    if not settings.control_plane_limits:
        return False
    limits = {
        "ListShards": (settings.list_shards_per_s, stream_name(request)),
        "DescribeStreamSummary": (settings.describe_stream_summary_per_s, ""),
    }
    if operation not in limits:
        return False
    limit, scope = limits[operation]
    with state.lock:
        return not state.operation_window(operation, scope, limit).admit(time.monotonic())
