"""A fresh LocalStack container on 127.0.0.1, for the unit suites and `make bench`.

The same emulator the Compose stack runs (`localstack/localstack:4.14.0`),
started with testcontainers. Ryuk, testcontainers' reaper, cannot be pulled on
registry-less machines, so the container is removed by the block that started it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from botocore.exceptions import BotoCoreError, ClientError
from testcontainers.core.container import DockerContainer

from testkit.clients import localstack_kinesis

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"
STARTUP_DEADLINE_S = 90.0
# The stack's own script that has kinesis-mock save every record when LocalStack stops.
SAVE_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "localstack" / "shutdown.d"


@contextmanager
def running_localstack(
    services: str = "kinesis",
    *,
    state_dir: Path | None = None,
    startup_deadline_s: float = STARTUP_DEADLINE_S,
    **settings: str,
) -> Iterator[str]:
    """URL of a new LocalStack serving `services`, with `settings` as its environment.

    With `state_dir`, LocalStack keeps its state there (set PERSISTENCE), loads what an
    earlier one left, and is stopped as the stack stops it, saving every Kinesis record.
    """
    container = DockerContainer(LOCALSTACK_IMAGE).with_env("SERVICES", services)
    # The emulator's artificial 500 ms delay on stream operations only slows tests.
    container.with_env("KINESIS_LATENCY", "0")
    for name, value in settings.items():
        container.with_env(name, value)
    if state_dir is not None:
        container.with_volume_mapping(str(state_dir), "/var/lib/localstack", "rw")
        container.with_volume_mapping(str(SAVE_SCRIPTS), "/etc/localstack/init/shutdown.d", "ro")
    # docker-py binds a (host,) tuple to a free port on that host; testcontainers types it int.
    container.ports["4566/tcp"] = ("127.0.0.1",)  # type: ignore[assignment]
    container.start()
    try:
        port = container.get_docker_client().port(container.get_container_id(), 4566)
        url = f"http://127.0.0.1:{port}"
        _wait_for_kinesis(url, startup_deadline_s)
        yield url
    finally:
        if state_dir is not None:  # docker stop: LocalStack runs the save script first
            container.get_wrapped_container().stop(timeout=120)
        container.stop()  # removes it, and its volumes


def _wait_for_kinesis(url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            services = requests.get(f"{url}/_localstack/health", timeout=2).json()["services"]
            if services.get("kinesis") in ("available", "running"):
                # LocalStack starts its Kinesis engine on the first call, which a busy
                # machine can refuse: the first caller must not be the one to find out.
                localstack_kinesis(url).list_streams()
                return
            last_error = f"kinesis is {services.get('kinesis')!r}"
        except (
            requests.RequestException,
            ValueError,
            KeyError,
            BotoCoreError,
            ClientError,
        ) as error:
            last_error = str(error)
        time.sleep(0.5)
    raise RuntimeError(f"LocalStack at {url} not ready within {deadline_s}s: {last_error}")
