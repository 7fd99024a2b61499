"""Figure 4: `docker compose up` (images built) to the first event in the sink, and memory.

The stack runs under its own Compose project name on free ports, so a user's
own stack is left alone, and is removed with its volumes afterwards. Peak
memory is each container's cgroup high-water mark (cgroup v1
`memory.max_usage_in_bytes`, v2 `memory.peak`), or the highest `docker stats`
sample where neither is readable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGES = {
    "localstack": "localstack/localstack:4.14.0",
    "producer": "kinesis-stack/producer:0.1.0",
    "consumer": "kinesis-stack/consumer:0.1.0",
}
FIRST_RECORD_DEADLINE_S = 180.0
# Memory keeps being watched this long after the first record: a few steady batches.
STEADY_S = 10.0
SAMPLE_S = 1.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    def __init__(self) -> None:
        # BENCH_PROJECT_PREFIX: a shared machine's naming rule for Compose projects.
        prefix = os.environ.get("BENCH_PROJECT_PREFIX", "bench-cold")
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": f"{prefix}-{uuid.uuid4().hex[:8]}",
            "LOCALSTACK_PORT": str(_free_port()),
            "SPARK_UI_PORT": str(_free_port()),
        }
        # The services whose containers are watched (a figure may add a profile's).
        self.services: tuple[str, ...] = tuple(IMAGES)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        answer = subprocess.run(  # noqa: S603 - docker with this module's own arguments
            ["docker", "compose", *args],  # noqa: S607 - docker from PATH, as the Makefile
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and answer.returncode != 0:
            # What Compose said, in the figure's error: the stack is removed right after.
            raise RuntimeError(
                f"docker compose {' '.join(args)} failed ({answer.returncode}): "
                f"{answer.stderr.strip()[-1500:]}"
            )
        return answer

    def container_ids(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        for service in self.services:
            found = self.compose("ps", "-q", service, check=False).stdout.strip()
            if found:
                ids[service] = found
        return ids

    def first_event_count(self) -> int:
        answer = self.compose(
            "exec", "-T", "consumer", "python", "-m", "consumer", "report", check=False
        )
        if answer.returncode != 0:
            return 0
        try:
            return int(json.loads(answer.stdout)["events"])
        except (ValueError, KeyError):
            return 0


class MemoryWatcher:
    """Samples each container's memory; keeps the highest value seen."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sampled: dict[str, int] = {}
        self.ids: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        peaks: dict[str, dict[str, Any]] = {}
        for service, container in self.ids.items():
            peak = _cgroup_peak(container)
            peaks[service] = {
                "peak_bytes": peak or self.sampled.get(service),
                "source": "cgroup" if peak else "docker stats",
            }
        return peaks

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.ids.update(self.stack.container_ids())
            for service, container in self.ids.items():
                usage = _cgroup_usage(container)
                if usage is not None:
                    self.sampled[service] = max(self.sampled.get(service, 0), usage)


def _cgroup_file(container: str, v1: str, v2: str) -> Path | None:
    for path in (
        Path(f"/sys/fs/cgroup/memory/docker/{container}/{v1}"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container}.scope/{v2}"),
        Path(f"/sys/fs/cgroup/docker/{container}/{v2}"),
    ):
        if path.exists():
            return path
    return None


def _cgroup_peak(container: str) -> int | None:
    path = _cgroup_file(container, "memory.max_usage_in_bytes", "memory.peak")
    return int(path.read_text()) if path else None


def _cgroup_usage(container: str) -> int | None:
    path = _cgroup_file(container, "memory.usage_in_bytes", "memory.current")
    if path:
        return int(path.read_text())
    stats = (
        subprocess.run(  # noqa: S603 - a container id from docker itself
            ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        .stdout.split("/")[0]
        .strip()
    )
    return _bytes(stats) if stats else None


def _bytes(text: str) -> int:
    units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2}
    for unit, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(float(text))


# Lines of the consumer's log that split its start-up, and what they mark.
_FIRST_BATCH = re.compile(r"batch \d+: [1-9]\d* events")
_MILESTONES = {
    "container_first_log": re.compile(r"."),
    # SparkContext's first words: the JVM is up.
    "spark_context_starting": re.compile(r"Setting default log level"),
    # Only when the consumer had to wait for LocalStack's stream.
    "stream_found": re.compile(r"stream '[^']+' found after"),
    # The Spark session built, and the stream found: the query is being planned.
    "spark_session_ready": re.compile(r"Spark session ready after"),
    "query_started": re.compile(r"query started"),
    "first_batch_written": _FIRST_BATCH,
}


def _first_batch_logged(stack: Stack) -> bool:
    """The consumer logs a batch's count once its events are visible in the sink. Read
    from Docker's log, not by running a process in the container: a probe every half
    second would take CPU from the start-up it measures."""
    logs = stack.compose("logs", "--no-log-prefix", "consumer", check=False).stdout
    return bool(_FIRST_BATCH.search(logs))


def consumer_milestones(stack: Stack, since: datetime) -> dict[str, float]:
    """Seconds from `docker compose up` to each milestone line of the consumer's log."""
    found: dict[str, float] = {}
    for moment, text in stamped_lines(stack):
        for name, pattern in _MILESTONES.items():
            if name not in found and pattern.search(text):
                found[name] = round((moment - since).total_seconds(), 1)
    return found


def stamped_lines(stack: Stack) -> Iterator[tuple[datetime, str]]:
    """The consumer's log lines with Docker's time stamps. Spark's progress bar ends its
    pieces with "\r", which reads as a line end here: such a piece has no stamp of its own
    and takes the one of the line it belongs to (a batch's count is written after one)."""
    lines = stack.compose("logs", "--timestamps", "--no-log-prefix", "consumer", check=False)
    last: datetime | None = None
    for line in lines.stdout.splitlines():
        stamp, _, text = line.partition(" ")
        moment = log_time(stamp)
        if moment is None:
            moment, text = last, line
        last = moment
        if moment is not None:
            yield moment, text


def log_time(stamp: str) -> datetime | None:
    """Docker's RFC 3339 nanosecond stamp as a UTC datetime (Python parses microseconds)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", stamp)
    if not match:
        return None
    fraction = (match[2] or ".0")[:7]
    return datetime.fromisoformat(match[1] + fraction).replace(tzinfo=UTC)


def image_sizes() -> dict[str, int]:
    sizes = {}
    for service, image in IMAGES.items():
        answer = subprocess.run(  # noqa: S603 - a constant image name
            ["docker", "image", "inspect", "--format", "{{.Size}}", image],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        if answer.returncode == 0:
            sizes[service] = int(answer.stdout.strip())
    return sizes


def measure() -> dict[str, Any]:
    stack = Stack()
    if len(image_sizes()) < len(IMAGES):
        stack.compose("build")  # not timed: the figure is for images already built
    watcher = MemoryWatcher(stack)
    started, started_wall = time.perf_counter(), datetime.now(UTC)
    try:
        watcher.start()
        stack.compose("up", "-d")
        up_returned = time.perf_counter() - started
        deadline = time.monotonic() + FIRST_RECORD_DEADLINE_S
        first_record = None
        while time.monotonic() < deadline:
            if _first_batch_logged(stack):
                first_record = time.perf_counter() - started
                break
            time.sleep(0.5)
        # The sink, read once: the logged batch is really there.
        events_in_sink = stack.first_event_count()
        if first_record is not None and events_in_sink == 0:
            raise RuntimeError("the consumer logged a batch, but its sink holds no event")
        time.sleep(STEADY_S)
        memory = watcher.stop()
        milestones = consumer_milestones(stack, started_wall)
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
    return {
        "up_returned_s": up_returned,
        "first_record_s": first_record,
        "events_in_sink": events_in_sink,
        "consumer_milestones_s": milestones,
        "image_bytes": image_sizes(),
        "memory": memory,
    }
