"""The whole Compose stack, started once for the integration suite through testcontainers.

The stack runs under its own Compose project name and on free host ports, so a
user's own `docker compose up` is left alone. The producer container sends a
seeded, finite set of events that the tests regenerate to know what to expect.
On any failure the services' logs are printed; the stack is always removed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from producer.events import EventFactory
from testcontainers.compose import DockerCompose

ROOT = Path(__file__).resolve().parents[2]
PRODUCER_SEED = 1234
PRODUCER_COUNT = 300
SHARDS = 2
DEADLINE_S = 240.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Polls `condition` until it returns something truthy, or fails after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {deadline_s:.0f}s waiting for {what}"
        time.sleep(0.5)


@dataclass
class Stack:
    """The running stack, and the events the tests expect its sink to hold."""

    compose: DockerCompose
    endpoint: str
    shards: int = SHARDS
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected_dead_letters: int = 0

    wait_until = staticmethod(wait_until)

    def kinesis(self) -> Any:
        return boto3.client(
            "kinesis",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def report(self) -> dict[str, Any]:
        stdout, stderr, code = self.compose.exec_in_container(
            ["python", "-m", "consumer", "report"], "consumer"
        )
        assert code == 0, stderr
        return dict(json.loads(stdout))

    def service_state(self, service: str) -> str:
        container = self.compose.get_container(service, include_all=True)
        return str(container.State)

    def compose_command(self, *args: str) -> None:
        subprocess.run(
            [*self.compose.compose_command_property, *args],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )

    def expected_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for event in self.expected.values():
            totals = counts.setdefault(event["message_type"], {"events": 0, "count_sum": 0})
            totals["events"] += 1
            totals["count_sum"] += event["count"]
        return dict(sorted(counts.items()))

    def wait_for_sink(self) -> dict[str, Any]:
        """The sink's report once it holds every expected event and dead letter."""

        def caught_up() -> dict[str, Any] | None:
            report = self.report()
            done = report["events"] >= len(self.expected)
            done = done and report["dead_letters"] >= self.expected_dead_letters
            return report if done else None

        return dict(wait_until(caught_up, f"{len(self.expected)} events in the sink"))


_failures: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        _failures.append(item.nodeid)
    return report


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    settings = {
        "COMPOSE_PROJECT_NAME": f"kinesis-it-{uuid.uuid4().hex[:8]}",
        "LOCALSTACK_PORT": str(_free_port()),
        "SPARK_UI_PORT": str(_free_port()),
        "KINESIS_SHARD_COUNT": str(SHARDS),
        "PRODUCER_COUNT": str(PRODUCER_COUNT),
        "PRODUCER_SEED": str(PRODUCER_SEED),
        "PRODUCER_RATE": "100",
        "CONSUMER_TRIGGER_INTERVAL": "1 second",
        "CONSUMER_CONSOLE": "false",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)  # Compose reads them when testcontainers runs it
    compose = DockerCompose(ROOT, build=True, wait=False, quiet_build=True)
    try:
        compose.start()
        stack = Stack(compose, f"http://127.0.0.1:{settings['LOCALSTACK_PORT']}")
        for event in EventFactory(PRODUCER_SEED).random_events(PRODUCER_COUNT):
            stack.expected[event["event_id"]] = event
        yield stack
    finally:
        if _failures:
            stdout, stderr = compose.get_logs()
            print(f"\n===== compose logs (failed: {', '.join(_failures)}) =====\n{stdout}{stderr}")
        compose.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
