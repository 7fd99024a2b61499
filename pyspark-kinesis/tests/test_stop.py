"""When PySpark calls the stream reader's `stop()`: measured in a real query (local Spark,
LocalStack), so that `KinesisStreamReader.stop`'s docstring says what the installed PySpark does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark import cloudpickle
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType
from pyspark_kinesis.data_source import KinesisDataSource
from pyspark_kinesis.stream_reader import KinesisStreamReader

from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

DEADLINE_S = 90.0


class StopNotingReader(KinesisStreamReader):
    """The stream reader, noting in `folder` the process it plans in and whether `stop()` ran."""

    # Set by the test; travels with the class, which Spark's processes get by value.
    folder = ""

    def initialOffset(self) -> dict[str, Any]:
        (Path(self.folder) / "planner-pid").write_text(str(os.getpid()))
        return super().initialOffset()

    def stop(self) -> None:
        super().stop()
        (Path(self.folder) / "stopped").write_text(str(os.getpid()))


class StopNotingSource(KinesisDataSource):
    @classmethod
    def name(cls) -> str:
        return "kinesis-stop-noting"

    def streamReader(self, schema: StructType) -> KinesisStreamReader:
        return StopNotingReader(self.kinesis_options)


def running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_pyspark_ends_the_planner_process_without_calling_stop(
    spark: SparkSession, kinesis_endpoint: str, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory()
    StopNotingReader.folder = str(tmp_path)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark.dataSource.register(StopNotingSource)
    query = (
        spark.readStream.format("kinesis-stop-noting")
        .options(streamName=stream, endpointUrl=kinesis_endpoint, region="us-east-1")
        .load()
        .writeStream.format("noop")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    planner_pid = tmp_path / "planner-pid"
    try:
        wait_until(planner_pid.exists, "the query's first plan", DEADLINE_S)
    finally:
        query.stop()
    pid = int(planner_pid.read_text())
    assert pid != os.getpid()
    wait_until(lambda: not running(pid), "the planner process to end", DEADLINE_S)
    # Had the process called stop() on its way out, the note would be there by now.
    assert not (tmp_path / "stopped").exists()
