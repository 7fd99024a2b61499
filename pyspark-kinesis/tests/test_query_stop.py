"""What Spark does to a Python stream reader when its query stops, and `query_stop`'s answer.

A probe data source (no Kinesis) runs in a real local Spark session: its reader
either records the signal its planner process receives, or has `stop_on_sigterm`
turn that signal into a call of its `stop()`, which leaves a file behind.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark import cloudpickle
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark_kinesis import query_stop

from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

DEADLINE_S = 90.0


class StopProbe(DataSource):
    """`format("stop_probe")`: one empty batch; its reader reports into `directory`."""

    @classmethod
    def name(cls) -> str:
        return "stop_probe"

    def schema(self) -> str:
        return "n int"

    def streamReader(self, schema: Any) -> DataSourceStreamReader:
        return ProbeReader(Path(self.options["directory"]), self.options["mode"])


class ProbeReader(DataSourceStreamReader):
    """Writes `<what>-<pid>` files: `made` (whether `stop_on_sigterm` took effect),
    `signal` (mode "record": the signal received, then the process ends as by default)
    and `stopped` (its `stop()` ran)."""

    def __init__(self, directory: Path, mode: str) -> None:
        self.directory = directory
        if mode == "record":
            installed = query_stop.in_planner_process()
            if installed:
                signal.signal(signal.SIGTERM, self._record_and_end)
        else:
            installed = query_stop.stop_on_sigterm()
        self._note("made", str(installed))

    def _note(self, what: str, text: str) -> None:
        (self.directory / f"{what}-{os.getpid()}").write_text(text)

    def _record_and_end(self, signum: int, frame: Any) -> None:
        self._note("signal", signal.Signals(signum).name)
        os._exit(128 + signum)

    def initialOffset(self) -> dict[str, int]:
        return {"n": 0}

    def latestOffset(self) -> dict[str, int]:
        return {"n": 1}

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> list[InputPartition]:
        return [InputPartition(0)]

    def read(self, partition: InputPartition) -> Iterator[tuple[int]]:
        return iter(())

    def stop(self) -> None:
        self._note("stopped", "stopped")


@pytest.fixture
def probe(spark, tmp_path: Path) -> Any:
    # The planner process cannot import this test module: the classes travel by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark.dataSource.register(StopProbe)

    def run_and_stop(mode: str) -> dict[str, dict[int, str]]:
        query = (
            spark.readStream.format("stop_probe")
            .option("directory", str(tmp_path))
            .option("mode", mode)
            .load()
            .writeStream.format("noop")
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .start()
        )
        wait_until(lambda: bool(query.recentProgress), "the first batch", deadline_s=DEADLINE_S)
        query.stop()
        return reports(tmp_path)

    yield run_and_stop
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def reports(directory: Path) -> dict[str, dict[int, str]]:
    """What the readers wrote: {what: {pid: text}}."""
    found: dict[str, dict[int, str]] = {}
    for path in directory.glob("*-*"):
        what, _, pid = path.name.rpartition("-")
        if pid.isdigit():
            found.setdefault(what, {})[int(pid)] = path.read_text()
    return found


def planner_pid(directory: Path) -> int:
    """The pid of the planner process: the one reader made where `made` is True."""
    (pid,) = [pid for pid, text in reports(directory).get("made", {}).items() if text == "True"]
    return pid


def test_spark_ends_the_planner_process_with_sigterm_when_the_query_stops(probe, tmp_path):
    probe("record")
    pid = planner_pid(tmp_path)
    received = wait_until(
        lambda: reports(tmp_path).get("signal", {}).get(pid), "the planner's signal"
    )
    assert received == "SIGTERM"


def test_stop_on_sigterm_makes_the_query_stop_call_the_readers_stop(probe, tmp_path):
    probe("stop")
    pid = planner_pid(tmp_path)
    wait_until(lambda: pid in reports(tmp_path).get("stopped", {}), "the reader's stop()")


def test_outside_the_planner_process_nothing_changes() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert not query_stop.in_planner_process()
    assert not query_stop.stop_on_sigterm()
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_handler_unwinds_once_and_ignores_the_sigterms_after() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as raised:
            query_stop.exit_for_stop(signal.SIGTERM, None)
        assert raised.value.code == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


def planner_processes() -> list[int]:
    """The pids of this test session's live stream-reader planner processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if query_stop.PLANNER_MODULE.encode() in command and _descends_from_us(int(entry.name)):
            found.append(int(entry.name))
    return found


def _descends_from_us(pid: int) -> bool:
    while pid > 1:
        if pid == os.getpid():
            return True
        try:
            stat = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            return False
        pid = int(stat.rpartition(")")[2].split()[1])  # the field after the state: ppid
    return False
