"""The fan-out hub on its own, as real processes: its directory, its start, its end, and a
failure in it reaching the task (against LocalStack). Queries reading through it are in
test_fan_out.py."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from multiprocessing.connection import Client, Connection
from pathlib import Path

import pytest
from pyspark_kinesis.client import KinesisSourceError, make_client
from pyspark_kinesis.fan_out_hub import HubTake, connect_to_hub, hub_address, hub_directory
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON
from pyspark_kinesis.shards import Take

from testkit.waiting import wait_until

pytestmark = pytest.mark.unit


@pytest.fixture
def own_temporary_directory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's own temporary directory, so that its hub is its own; short, as pytest's
    own would make the hub's socket path longer than Unix sockets allow."""
    with tempfile.TemporaryDirectory(prefix="hub-", dir="/tmp") as directory:
        monkeypatch.setattr(tempfile, "tempdir", directory)
        yield Path(directory)


def hub_pid(connection: Connection) -> int:
    """The process at the other end of a connection to the hub (the socket's peer)."""
    with socket.socket(fileno=os.dup(connection.fileno())) as peer:
        credentials = peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", credentials)[0])


@pytest.fixture
def hubs_started() -> Iterator[list[int]]:
    """The hubs a test started, ended after it (an idle hub would live 5 minutes)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        os.kill(pid, signal.SIGTERM)


def test_the_hubs_directory_is_the_users_alone(own_temporary_directory: Path) -> None:
    directory = hub_directory()
    assert directory.parent == own_temporary_directory
    assert directory.stat().st_mode & 0o777 == 0o700


def test_a_directory_others_may_enter_is_refused_naming_the_fix(
    own_temporary_directory: Path,
) -> None:
    shared = own_temporary_directory / f"pyspark-kinesis-fan-out-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.raises(KinesisSourceError, match="remove it, and the fan-out hub makes it again"):
        hub_directory()


def test_a_temporary_directory_too_long_for_a_socket_is_refused_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(KinesisSourceError, match="set TMPDIR to a shorter directory"):
        hub_address()


def test_the_first_task_starts_the_hub_and_the_next_finds_it(
    tmp_path: Path, hubs_started: list[int]
) -> None:
    address = str(tmp_path / "hub.sock")
    # The socket a killed hub left behind: nothing answers at it.
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(address)
    with connect_to_hub(address) as first:
        hubs_started.append(hub_pid(first))
    with connect_to_hub(address) as second:
        assert hub_pid(second) == hubs_started[0]
    assert hubs_started[0] != os.getpid()


def test_an_idle_hub_exits_and_removes_its_socket(tmp_path: Path) -> None:
    address = str(tmp_path / "hub.sock")
    serving = f"from pyspark_kinesis.fan_out_hub import serve; serve({address!r}, idle_s=1.0)"
    hub = subprocess.Popen([sys.executable, "-c", serving])
    try:
        wait_until(lambda: os.path.exists(address), "the hub listening")
        with Client(address, family="AF_UNIX"):
            pass  # a task that went away without asking
        assert hub.wait(timeout=60) == 0
        assert not os.path.exists(address)
    finally:
        hub.kill()


def test_a_failure_in_the_hub_reaches_the_task_as_the_sources_error(
    own_temporary_directory: Path, kinesis_endpoint: str, hubs_started: list[int]
) -> None:
    options = KinesisOptions.parse(
        {
            "streamName": "no-such-stream",
            "endpointUrl": kinesis_endpoint,
            "region": "us-east-1",
            "consumerMode": "efo",
            "consumerName": "reader",
        }
    )
    take = HubTake(make_client(options), options, "shardId-000000000000", TRIM_HORIZON, Take(0.0))
    try:
        with pytest.raises(KinesisSourceError, match="no-such-stream"):
            take.read_to_end()
    finally:
        with connect_to_hub(hub_address()) as connection:
            hubs_started.append(hub_pid(connection))
