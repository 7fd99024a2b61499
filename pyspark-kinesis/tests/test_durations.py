"""The one duration parser, with the options' units and the consumer's (Spark's)."""

from __future__ import annotations

import pytest
from pyspark_kinesis.durations import OPTION_UNITS, SPARK_UNITS, duration_s

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("2s", 2.0), ("1.5", 1.5), ("1 minute", 60.0), ("3m", 180.0), ("1h", None)],
)
def test_option_durations(text: str, seconds: float | None) -> None:
    assert duration_s(text, OPTION_UNITS) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500 milliseconds", 0.5),
        ("2 seconds", 2.0),
        ("1 hour", 3600.0),
        ("2", None),
        ("1.5 s", None),
    ],
)
def test_spark_durations_need_a_unit_and_a_whole_number(text: str, seconds: float | None) -> None:
    assert duration_s(text, SPARK_UNITS, unit_required=True, whole=True) == seconds
