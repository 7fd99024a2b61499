"""The consumer on a Spark standalone cluster (the `cluster` profile), with no code change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(stack_factory) -> Iterator[Any]:
    with stack_factory(
        profiles=["cluster"],
        SPARK_MASTER="spark://spark-master:7077",
        # Sixteen shards: a batch's two reading tasks of eight (shardsPerTask's default)
        # fill the two workers' single cores.
        KINESIS_SHARD_COUNT="16",
    ) as started:
        yield started


def _executors(stack) -> list[dict[str, Any]]:
    applications = requests.get(f"{stack.spark_ui}/api/v1/applications", timeout=5).json()
    url = f"{stack.spark_ui}/api/v1/applications/{applications[0]['id']}/allexecutors"
    return [e for e in requests.get(url, timeout=5).json() if e["id"] != "driver"]


def _application_running(stack) -> bool:
    # A consumer that exited will never start its application: fail now, with its log.
    assert "exited" not in stack.service_state("consumer"), "the consumer exited"
    try:
        return bool(requests.get(f"{stack.spark_ui}/api/v1/applications", timeout=5).json())
    except requests.RequestException:
        return False


def test_both_workers_read_and_the_sink_holds_exactly_what_was_sent(cluster):
    cluster.wait_until(lambda: _application_running(cluster), "the consumer's Spark application")
    cluster.put_events(200, "message1")
    cluster.assert_sink_holds_exactly_the_expected()
    executors = _executors(cluster)
    hosts = {e["hostPort"].split(":")[0] for e in executors if e["totalTasks"] > 0}
    assert hosts == {"spark-worker-1", "spark-worker-2"}, executors
