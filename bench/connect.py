"""Figure 11: the connect profile's Spark Connect server beside the consumer, and a read
through it beside the same read in-process.

The whole stack and the server start together (`docker compose --profile connect up -d`,
images built, its own project on free ports). Start: from `up` to the server's first
answer (polled with its healthcheck's request) and to the consumer's `query started`.
Memory: each container's cgroup peak, and the resident set of its processes once both
are up. Then producer and consumer are stopped, RECORDS records go into a fresh stream,
and the tutorial's read (bench/first_row.py) runs ROUNDS times from a Connect client and
ROUNDS times with Spark in-process on the host, on the same records: the time from
`start()` to the first row in a memory table, and to the query's end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from consumer.connect_health import answers

from bench import coldstart, emulator

RECORDS = 2_000
ROUNDS = 3
START_DEADLINE_S = 300.0
SERVICES = ("consumer", "spark-connect")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _resident_bytes(stack: coldstart.Stack, service: str) -> int:
    """The resident set of every process in the service's container (ps, in KiB)."""
    listing = stack.compose("exec", "-T", service, "ps", "-eo", "rss=").stdout
    return 1024 * sum(int(line) for line in listing.split())


def _first_rows(spark: str, endpoint: str, stream: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.first_row", spark, endpoint, stream]
    answer = subprocess.run(  # noqa: S603 - this interpreter and the bench's own module
        [*command, str(RECORDS), str(ROUNDS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=coldstart.ROOT,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"first_row {spark} failed: {answer.stderr.strip()[-1500:]}")
    return dict(json.loads(answer.stdout.strip().splitlines()[-1]))


def _start(stack: coldstart.Stack, port: int) -> dict[str, float]:
    """Seconds from `up` to the server's first answer and to the consumer's query start."""
    started = time.perf_counter()
    started_wall = datetime.now(UTC)
    stack.compose("--profile", "connect", "up", "-d")
    deadline = time.monotonic() + START_DEADLINE_S
    while not answers(f"127.0.0.1:{port}", timeout_s=2.0):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Connect server did not answer within {START_DEADLINE_S} s")
        time.sleep(0.5)
    server_s = time.perf_counter() - started
    while "query_started" not in coldstart.consumer_milestones(stack, started_wall):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the consumer did not start its query in {START_DEADLINE_S} s")
        time.sleep(0.5)
    milestones = coldstart.consumer_milestones(stack, started_wall)
    return {"connect_answered_s": server_s, "consumer_query_started_s": milestones["query_started"]}


def measure() -> dict[str, Any]:
    stack = coldstart.Stack()
    stack.services = (*coldstart.IMAGES, "spark-connect")
    port = _free_port()
    stack.env["SPARK_CONNECT_PORT"] = str(port)
    stack.compose("--profile", "connect", "build")  # not timed: images already built
    watcher = coldstart.MemoryWatcher(stack)
    try:
        watcher.start()
        start = _start(stack, port)
        time.sleep(coldstart.STEADY_S)
        resident = {service: _resident_bytes(stack, service) for service in SERVICES}
        memory = watcher.stop()
        stack.compose("stop", "producer", "consumer")
        url = f"http://127.0.0.1:{stack.env['LOCALSTACK_PORT']}"
        stream = emulator.create_stream(url, shards=2)
        emulator.put_concurrently(url, stream, emulator.event_records(RECORDS))
        connect = _first_rows(f"sc://127.0.0.1:{port}", "http://localstack:4566", stream)
        in_process = _first_rows("local", url, stream)
    finally:
        stack.compose("--profile", "connect", "down", "--volumes", "--remove-orphans",
                      "--timeout", "5", check=False)  # fmt: skip
    return {
        **start,
        "resident_bytes": resident,
        "peak_bytes": {service: memory[service]["peak_bytes"] for service in SERVICES},
        "records": RECORDS,
        "connect": connect,
        "in_process": in_process,
    }
