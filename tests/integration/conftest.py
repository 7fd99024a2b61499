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
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import localstack_client.session
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from key_order import Position, keys_over_several_batches, order_violations
from producer.events import EventFactory
from testcontainers.compose import DockerCompose

from testkit.streams import read_stream, wait_active
from testkit.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PRODUCER_SEED = 1234
PRODUCER_COUNT = 300
SHARDS = 2
# Generous: on a loaded 2-core machine a JVM start alone has taken over two minutes.
DEADLINE_S = 480.0
# The whole suite runs with LocalStack refusing a share of PutRecords calls.
THROTTLING_PROBABILITY = "0.2"
# Whole-call answers a put from the host resends (AWS's, or the proxy's imitation of them).
RETRYABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "KMSThrottlingException",
        "LimitExceededException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
# The pause before resending refused entries: a shard's write limit is per second.
RESEND_PAUSE_S = 0.2
# DockerCompose starts no Ryuk reaper; this keeps any other testcontainers helper from pulling one.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """The running stack, and the events the tests expect its sink to hold."""

    compose: DockerCompose
    endpoint: str
    shards: int = SHARDS
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected_dead_letters: int = 0
    spark_ui: str = ""
    # The Kinesis proxy (docker-compose.proxy.yml) on the host, when the stack runs through it.
    proxy: str = ""

    # The shared helper (testkit/waiting.py), with the stack's generous deadline.
    wait_until = staticmethod(partial(wait_until, deadline_s=DEADLINE_S, poll_s=0.5))

    def kinesis(self) -> Any:
        """A client of the stack's LocalStack, from localstack-client (its endpoint and keys)."""
        host = self.endpoint.removeprefix("http://")
        return localstack_client.session.Session(localstack_host=host).client("kinesis")

    def writer(self) -> Any:
        """The client the tests put with: through the proxy when the stack runs behind one."""
        if not self.proxy:
            return self.kinesis()
        return boto3.client(
            "kinesis",
            endpoint_url=self.proxy,
            region_name="us-east-1",
            # LocalStack's documented dummies, not secrets.
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )

    def put(self, payloads: list[bytes], key: Callable[[int], str] | None = None) -> None:
        """PutRecords from the host, resending entries (or calls) Kinesis refused."""
        key = key or (lambda n: f"key-{n % 7}")
        pending = [{"Data": data, "PartitionKey": key(n)} for n, data in enumerate(payloads)]
        client = self.writer()
        deadline = time.monotonic() + DEADLINE_S
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} records still refused"
            try:
                answer = client.put_records(StreamName="events", Records=pending)
            except (ConnectionClosedError, EndpointConnectionError):
                continue
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in RETRYABLE_CALL_ERRORS:
                    raise
                continue
            results = zip(pending, answer["Records"], strict=True)
            pending = [entry for entry, result in results if "ErrorCode" in result]
            if pending:
                time.sleep(RESEND_PAUSE_S)

    def put_events(self, count: int, message_type: str) -> list[str]:
        """Puts `count` new events of one type; the sink is expected to hold them."""
        events = [
            {
                "event_id": uuid.uuid4().hex,
                "event_time": "2026-11-25T08:00:00.000Z",
                "message_type": message_type,
                "count": 3,
            }
            for _ in range(count)
        ]
        self.put([json.dumps(event).encode() for event in events])
        self.expected.update({event["event_id"]: event for event in events})
        return [event["event_id"] for event in events]

    def expect_seeded(self, seed: int, count: int) -> None:
        """The producer's events for this seed: the sink is expected to hold them."""
        for event in EventFactory(seed).random_events(count):
            self.expected[event["event_id"]] = event

    def assert_sink_holds_exactly_the_expected(self) -> dict[str, Any]:
        report = self.wait_for_sink()
        assert report["event_ids"] == sorted(self.expected)
        assert report["duplicate_event_ids"] == 0
        assert report["counts"] == self.expected_counts()
        assert report["dead_letters"] == self.expected_dead_letters
        return report

    def run(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A `docker compose` command in the stack's project (`input`: its stdin)."""
        return subprocess.run(
            [*self.compose.compose_command_property, *args],
            cwd=ROOT,
            check=check,
            input=input,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )

    def report(self, *, rows: bool = False) -> dict[str, Any]:
        command = ["python", "-m", "consumer", "report", *(["--rows"] if rows else [])]
        stdout, stderr, code = self.compose.exec_in_container(command, "consumer")
        assert code == 0, stderr
        return dict(json.loads(stdout))

    def stream_order(self) -> dict[str, list[Position]]:
        """Per partition key, every record of the stream in stream order.

        Read back from the stream, not taken from the put order: PutRecords keeps no
        order within a request and resends reorder. Parents are read before their
        children, as a key's records move from a parent shard to a child.
        """
        order: dict[str, list[Position]] = {}
        for read in read_stream(self.kinesis(), "events"):
            order.setdefault(read.record["PartitionKey"], []).append(
                (read.shard_id, read.record["SequenceNumber"])
            )
        return order

    def localstack_ready(self) -> bool:
        """Whether LocalStack is up and its init hook has run (the stream exists)."""
        try:
            answer = requests.get(f"{self.endpoint}/_localstack/init/ready", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        return bool(answer.get("completed"))

    def restart_localstack_then_put(self, count: int, message_type: str) -> None:
        """`docker compose restart localstack`, then `count` new events once it is ready;
        a consumer that stopped meanwhile must have said why, and is started again."""
        self.run("restart", "localstack")
        self.wait_until(self.localstack_ready, "LocalStack to be ready again")
        self.put_events(count, message_type)
        if "exited" in self.service_state("consumer"):
            assert "cannot reach Kinesis" in self.run("logs", "consumer").stdout
            self.run("start", "consumer")

    def wait_active(self) -> None:
        """Returns once the stack's stream is ACTIVE (after a split or a merge)."""
        wait_active(self.kinesis(), "events", DEADLINE_S, poll_s=0.5)

    def kill_consumer_mid_stream(self, first_type: str, second_type: str) -> tuple[int, float]:
        """The consumer SIGKILLed while it most likely reads, then started again.

        A first share in the sink, so each key's events span the kill; then killed while
        it is most likely reading the second share. Returns the events sent and when the
        restart began.
        """
        self.wait_for_sink()
        before = len(self.expected)
        self.put_events(50, first_type)
        self.wait_for_sink()
        self.put_events(50, first_type)
        self.run("kill", "-s", "SIGKILL", "consumer")
        self.put_events(100, second_type)
        started = time.monotonic()
        self.run("start", "consumer")
        return len(self.expected) - before, started

    def service_state(self, service: str) -> str:
        container = self.compose.get_container(service, include_all=True)
        return str(container.State)

    def expected_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for event in self.expected.values():
            totals = counts.setdefault(event["message_type"], {"events": 0, "count_sum": 0})
            totals["events"] += 1
            totals["count_sum"] += event["count"]
        return dict(sorted(counts.items()))

    def wait_for_sink(self, deadline_s: float = DEADLINE_S) -> dict[str, Any]:
        """The sink's report once it holds every expected event and dead letter."""

        def caught_up() -> dict[str, Any] | None:
            report = self.report()
            done = report["events"] >= len(self.expected)
            done = done and report["dead_letters"] >= self.expected_dead_letters
            return report if done else None

        return dict(
            wait_until(caught_up, f"{len(self.expected)} events in the sink", deadline_s, 0.5)
        )


def key_order_violations(stack: Stack) -> tuple[list[str], int]:
    """Where the sink breaks per-partition-key order, and how many keys span batches.

    Fails if a sink row is not in the stream.
    """
    batch_of = {
        (row["shard_id"], row["sequence_number"]): row["batch_id"]
        for row in stack.report(rows=True)["rows"]
    }
    stream_order = stack.stream_order()
    in_stream = {position for positions in stream_order.values() for position in positions}
    assert batch_of.keys() <= in_stream, (
        f"sink rows not in the stream: {batch_of.keys() - in_stream}"
    )
    return (
        order_violations(stream_order, batch_of),
        keys_over_several_batches(stream_order, batch_of),
    )


# One row per fault case, printed as docs/reliability.md's table after the run; with
# KINESIS_IT_PROXY=1, what the proxy injected meanwhile.
FAULT_ROWS: list[dict[str, Any]] = []
PROXY_EVENTS: dict[str, int] = {}


@pytest.fixture
def record_fault(stack: Stack) -> Callable[[str, int, float], dict[str, Any]]:
    """Checks the sink holds exactly what was sent, in per-key order; adds the case's row."""

    def record(fault: str, sent: int, recovery_started: float) -> dict[str, Any]:
        report = stack.wait_for_sink()
        recovery_s = time.monotonic() - recovery_started
        row, violations = _exactly_once_row(stack, report)
        FAULT_ROWS.append({"fault": fault, "sent": sent, **row, "recovery": f"{recovery_s:.1f} s"})
        _assert_exactly_once(stack, report, violations)
        return report

    return record


def _exactly_once_row(stack: Stack, report: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A case's row (what the sink holds against what was sent), and any per-key order
    violations."""
    violations, spanning = key_order_violations(stack)
    row = {
        "in_sink": report["events"],
        "lost": len(set(stack.expected) - set(report["event_ids"])),
        "duplicated": report["duplicate_event_ids"],
        "order": (
            f"{len(violations)} violations"
            if violations
            else f"kept ({spanning} keys over several batches)"
        ),
    }
    return row, violations


def _assert_exactly_once(stack: Stack, report: dict[str, Any], violations: list[str]) -> None:
    """Every event sent in the sink once, malformed ones in dead letters, per-key order kept."""
    assert report["event_ids"] == sorted(stack.expected)
    assert report["duplicate_event_ids"] == 0
    assert report["dead_letters"] == stack.expected_dead_letters
    assert not violations, "\n".join(violations)


# The stack through the AWS-faithful proxy (test_aws_faithful.py): one row per case, and
# what the proxy injected over the module (its counters), printed after the run.
AWS_ROWS: list[dict[str, Any]] = []
AWS_COUNTERS: dict[str, Any] = {}


@pytest.fixture
def record_case() -> Callable[..., dict[str, Any]]:
    """Checks a stack's sink holds exactly what was sent, in per-key order, within a bound.

    `stall` is the time from `started` (the case's last put, or the consumer's restart)
    to the sink holding everything; past `stall_bound_s` the case fails, with its row.
    """

    def record(
        stack: Stack, behaviour: str, sent: int, started: float, stall_bound_s: float
    ) -> dict[str, Any]:
        caught_up = True
        try:
            report = stack.wait_for_sink(deadline_s=stall_bound_s)
        except AssertionError:
            caught_up, report = False, stack.report()
        stall_s = time.monotonic() - started
        row, violations = _exactly_once_row(stack, report)
        stall = f"{stall_s:.1f} s" if caught_up else f"> {stall_bound_s:.0f} s"
        AWS_ROWS.append({"behaviour": behaviour, "records": sent, **row, "stall": stall})
        assert caught_up, f"the sink did not catch up within {stall_bound_s:.0f} s"
        _assert_exactly_once(stack, report, violations)
        return report

    return record


def _aws_summary(terminalreporter: Any) -> None:
    terminalreporter.write_sep("=", "under AWS's limits (the Kinesis proxy, every behaviour on)")
    terminalreporter.write_line(
        "| behaviour | records | in sink | lost | duplicated | stall | order |"
    )
    terminalreporter.write_line("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in AWS_ROWS:
        terminalreporter.write_line(
            f"| {row['behaviour']} | {row['records']} | {row['in_sink']} | {row['lost']} "
            f"| {row['duplicated']} | {row['stall']} | {row['order']} |"
        )
    if AWS_COUNTERS:
        terminalreporter.write_line("")
        terminalreporter.write_line("| what the proxy injected | times |")
        terminalreporter.write_line("| --- | ---: |")
        for name, times in AWS_COUNTERS.items():
            terminalreporter.write_line(f"| {name} | {times} |")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    terminalreporter.write_line(f"load average at the end (1, 5, 15 min): {load}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if AWS_ROWS or AWS_COUNTERS:
        _aws_summary(terminalreporter)
    if not FAULT_ROWS:
        return
    terminalreporter.write_sep("=", "fault suite")
    terminalreporter.write_line(
        "| fault | records sent | in sink | duplicates | lost | recovery | order |"
    )
    terminalreporter.write_line("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in FAULT_ROWS:
        terminalreporter.write_line(
            f"| {row['fault']} | {row['sent']} | {row['in_sink']} | {row['duplicated']} "
            f"| {row['lost']} | {row['recovery']} | {row['order']} |"
        )
    if PROXY_EVENTS:
        injected = ", ".join(f"{name} {times}" for name, times in sorted(PROXY_EVENTS.items()))
        terminalreporter.write_line(
            f"through the AWS-faithful proxy; its counters since it last started: {injected}"
        )


def _stacks_of(item: pytest.Item) -> list[DockerCompose]:
    """The Compose stacks a test used: a `Stack`, or a fixture's dict holding its `compose`."""
    stacks = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, dict):
            compose = value.get("compose")
        else:
            compose = getattr(value, "compose", None)
        if isinstance(compose, DockerCompose) and compose not in stacks:
            stacks.append(compose)
    return stacks


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        # Attached to the failing test's own report: a session stack's teardown output is
        # captured and never shown when the last test of the session passed.
        for compose in _stacks_of(item):
            stdout, stderr = compose.get_logs()
            report.sections.append((f"compose logs ({report.when})", f"{stdout}{stderr}"))
    return report


# The override that puts the AWS-faithful Kinesis proxy between the services and LocalStack.
PROXY_COMPOSE_FILES = ["docker-compose.yml", "docker-compose.proxy.yml"]


@contextmanager
def running_stack(
    profiles: list[str] | None = None, *, proxy: bool = False, **overrides: str
) -> Iterator[Stack]:
    """The Compose stack under a fresh project name and free ports, removed afterwards.

    With `proxy`, it runs with docker-compose.proxy.yml: producer and consumer reach
    LocalStack only through the AWS-faithful Kinesis proxy, and so do `Stack.put`'s calls.
    """
    settings = {
        "COMPOSE_PROJECT_NAME": f"kinesis-it-{uuid.uuid4().hex[:8]}",
        "LOCALSTACK_PORT": str(_free_port()),
        "KINESIS_PROXY_PORT": str(_free_port()),
        "SPARK_UI_PORT": str(_free_port()),
        "SPARK_MASTER_UI_PORT": str(_free_port()),
        "KINESIS_SHARD_COUNT": str(SHARDS),
        "KINESIS_ERROR_PROBABILITY": THROTTLING_PROBABILITY,
        "PRODUCER_COUNT": str(PRODUCER_COUNT),
        "PRODUCER_SEED": str(PRODUCER_SEED),
        "PRODUCER_RATE": "100",
        "CONSUMER_TRIGGER_INTERVAL": "1 second",
        "CONSUMER_CONSOLE": "false",
        **overrides,
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)  # Compose reads them when testcontainers runs it
    compose = DockerCompose(
        ROOT,
        compose_file_name=PROXY_COMPOSE_FILES if proxy else None,
        build=True,
        wait=False,
        quiet_build=True,
        profiles=profiles,
    )
    # A stack that fails to come up fails in the fixture, before any test is reported:
    # its logs are printed here (the failing tests' own reports carry them otherwise).
    started = False
    try:
        compose.start()
        started = True
        stack = Stack(compose, f"http://127.0.0.1:{settings['LOCALSTACK_PORT']}")
        stack.spark_ui = f"http://127.0.0.1:{settings['SPARK_UI_PORT']}"
        if proxy:
            stack.proxy = f"http://127.0.0.1:{settings['KINESIS_PROXY_PORT']}"
        stack.expect_seeded(int(settings["PRODUCER_SEED"]), int(settings["PRODUCER_COUNT"]))
        yield stack
    finally:
        if not started:
            stdout, stderr = compose.get_logs()
            print(f"\n===== compose logs (the stack did not start) =====\n{stdout}{stderr}")
        compose.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def stack_factory() -> Callable[..., Any]:
    """`running_stack`, for modules that need a stack of their own (another profile)."""
    return running_stack


@pytest.fixture(scope="session")
def aws_counters() -> dict[str, Any]:
    """Filled with what the proxy injected, printed after the run (test_aws_faithful.py)."""
    return AWS_COUNTERS


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # KINESIS_IT_PROXY=1: the session's stack (test_stack, test_faults, ...) runs through
    # the AWS-faithful Kinesis proxy, every behaviour on (docker-compose.proxy.yml).
    with running_stack(proxy=os.environ.get("KINESIS_IT_PROXY") == "1") as started:
        yield started
        if started.proxy:
            # What the proxy injected over the session, printed with the fault table: the
            # suite did run under it, and met AWS's ways there.
            events = requests.get(f"{started.proxy}/_proxy/events", timeout=5).json()
            PROXY_EVENTS.update(events)
